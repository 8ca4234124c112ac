"""3D ops (NDHWC) for the networks: conv3d, upfirdn_3d (FIR resampling, fused resampling convs; C++ kernel
upfirdn_3d_kernel.cc), fused_bias_act and modulated_conv3d (with add_noise). Each op with several paths picks one
by measurement on this machine (autotune.py: timed at first trace, cached per user, overridable), among those its
device, dtype and tracing context allow, and sits beside its NumPy reference (*_ref.py) that the tests check
every path against."""
