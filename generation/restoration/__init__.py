"""Restoration: projection through a forward model of how a clinical scan was acquired (thick slices, a mask, a
noise level), what it restores and how well. run_projector.py's --degradation reaches it through
generation.projection_command; the projector (generation.projector) puts the forward model inside its loss.

forward_models    the differentiable degradation: slice thickening (box / Gaussian profiles, crops) and
                  Degradation, the composition of thickenings, a mask and a noise level
forward_models_ref    its NumPy reference (explicit loops, for the tests)
masks             which voxels of the degraded grid are compared; mask files
data_term         the masked, noise-weighted MSE (the Gaussian likelihood per compared voxel); data_term_ref
spec              the --degradation spec string: parse_spec, is_no_degradation (importable without TensorFlow)
grid_matching     the thickenings and crops a target's own grid implies, the grid a raw scan is resampled onto
trivial_inverse   the baseline restoration: thick slices interpolated back onto the network grid; trivial_inverse_ref
restored          missing information and its metrics, restored volumes on a requested grid, a target's study files
"""
