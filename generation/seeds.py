"""What a seed means: z = RandomState(seed).randn(z_dim) (the same on every machine) and, for per-seed noise,
the noise maps drawn from the same RandomState right after z; plus the label vector of a conditional network.
"""

import numpy as np

from dnnlib.errors import InputError

SEED_LIMIT = 2**32  # numpy.random.RandomState accepts seeds in [0, 2^32)


def seed_rng(seed):
    if not 0 <= int(seed) < SEED_LIMIT:
        raise InputError(f"seed {seed} is out of range: seeds must be in [0, 2^32)")
    return np.random.RandomState(int(seed))


def seed_to_z(seed, z_dim):
    """The latent of one seed: RandomState(seed).randn(z_dim), float32."""
    return seed_rng(seed).randn(z_dim).astype(np.float32)


def seeds_to_z(seeds, z_dim):
    """Latents of several seeds, [N, z_dim]."""
    return np.stack([seed_to_z(s, z_dim) for s in seeds])


def seed_noise(seed, noise_shapes, z_dim):
    """Per-layer noise maps of one seed, drawn after its z from the same stream: list of [1, D, H, W, 1]."""
    rng = seed_rng(seed)
    rng.randn(z_dim)  # z comes first, so z alone matches seed_to_z
    return [rng.randn(*[int(s) for s in shape]).astype(np.float32) for shape in noise_shapes]


def shared_noise(noise_seed, noise_shapes):
    """One noise draw meant for every volume of a run (style mixing, interpolation): list of [1, D, H, W, 1]."""
    rng = seed_rng(noise_seed)
    return [rng.randn(*[int(s) for s in shape]).astype(np.float32) for shape in noise_shapes]


def make_label(c_dim, class_idx=None, label=None):
    """Label vector [c_dim] for a conditional generator (None for an unconditional one).

    class_idx: one-hot class; label: an explicit vector (a list of floats). Exactly one for c_dim > 0.
    """
    if c_dim == 0:
        if class_idx is not None or label is not None:
            raise InputError("a class index or label was given, but the network is unconditional (c_dim = 0); "
                             "drop it")
        return None
    if (class_idx is None) == (label is None):
        raise InputError(f"the network is conditional (c_dim = {c_dim}): give exactly one of a class index or a "
                         "label vector")
    if class_idx is not None:
        if not 0 <= class_idx < c_dim:
            raise InputError(f"class index {class_idx} is out of range: the network has {c_dim} classes "
                             f"(0..{c_dim - 1})")
        c = np.zeros([c_dim], np.float32)
        c[class_idx] = 1
        return c
    c = np.asarray(label, np.float32).reshape(-1)
    if c.shape[0] != c_dim:
        raise InputError(f"the label has {c.shape[0]} values; the network expects c_dim = {c_dim}")
    return c
