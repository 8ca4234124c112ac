"""What the metrics ask of a generator, without TensorFlow: anything with z_dim, c_dim and
__call__(z, c, psi=, noise_mode=) -> [N,D,H,W,C] in [-1, 1], noise_mode one of NOISE_MODES.

training.networks' Generator is one. The noise modes are defined here, on the lowest floor that calls a
generator, so that every option table offering them (metrics, generation) imports them without TensorFlow.
"""

# random: fresh noise maps per call; const: the network's fixed maps; none: no noise.
NOISE_MODES = ("random", "const", "none")
