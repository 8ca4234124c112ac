"""Interpolation between seeds, in Z or W, linear or spherical."""

import numpy as np

from dnnlib.errors import InputError
from generation.seeds import seeds_to_z


def slerp(a, b, t):
    """Spherical interpolation along the last axis (magnitude interpolated linearly); lerp when parallel."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na, nb = np.linalg.norm(a, axis=-1, keepdims=True), np.linalg.norm(b, axis=-1, keepdims=True)
    ua, ub = a / np.maximum(na, 1e-12), b / np.maximum(nb, 1e-12)
    dot = np.clip(np.sum(ua * ub, axis=-1, keepdims=True), -1.0, 1.0)
    omega = np.arccos(dot)
    so = np.sin(omega)
    safe = so > 1e-6
    wa = np.where(safe, np.sin((1 - t) * omega) / np.where(safe, so, 1), 1 - t)
    wb = np.where(safe, np.sin(t * omega) / np.where(safe, so, 1), t)
    # Direction by slerp on the unit sphere, length by lerp: for Gaussian z this keeps the typical norm.
    direction = wa * ua + wb * ub
    direction /= np.maximum(np.linalg.norm(direction, axis=-1, keepdims=True), 1e-12)
    return direction * ((1 - t) * na + t * nb)


def lerp(a, b, t):
    return (1 - t) * np.asarray(a, np.float64) + t * np.asarray(b, np.float64)


INTERPOLATIONS = {"linear": lerp, "slerp": slerp}
SPACES = ("z", "w")


def interpolation_ts(num_seeds, frames):
    """(segment, t) pairs: `frames` (at least 2) per segment including both ends, shared ends counted once."""
    out = []
    for seg in range(num_seeds - 1):
        for f in range(frames if seg == num_seeds - 2 else frames - 1):
            out.append((seg, f / (frames - 1)))
    return out


def interpolate(runner, seeds, frames=8, space="z", kind="linear", psi=1.0, noise_mode="const", c=None,
                truncation_cutoff=None, noise_seed=0):
    """Volumes along the path seeds[0] -> seeds[1] -> ... (at least two seeds) in Z or W, linear or spherical.

    Returns (volumes [F, D, H, W, C] in [-1, 1], list of (segment, t)). Noise is the same for every frame.
    """
    if space not in SPACES or kind not in INTERPOLATIONS:
        raise InputError(f"interpolation {kind!r} in space {space!r}: expected space z or w and kind "
                         f"{' or '.join(INTERPOLATIONS)}")
    fn = INTERPOLATIONS[kind]
    z = seeds_to_z(seeds, runner.z_dim)
    ts = interpolation_ts(len(seeds), frames)
    if space == "z":
        zs = np.stack([fn(z[s], z[s + 1], t) for s, t in ts]).astype(np.float32)
        ws = runner.map(zs, c, psi=psi, truncation_cutoff=truncation_cutoff)
    else:
        w = runner.map(z, c, psi=psi, truncation_cutoff=truncation_cutoff)
        ws = np.stack([fn(w[s], w[s + 1], t) for s, t in ts]).astype(np.float32)
    return runner.synthesize_shared_noise(ws, noise_mode, noise_seed), ts
