"""3D kernels as tf.functions, each beside the NumPy reference it is tested against."""
