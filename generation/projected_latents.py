"""Latents written by the projector, read back so a projection can be re-synthesised, style-mixed, interpolated.

Accepted: a latent.npy ([num_ws, w_dim] or [N, num_ws, w_dim]), an .npz holding `w` or `ws` (StyleGAN2-ADA's
projected_w.npz), a projected target's folder (latent.npy, noise.npz) or a run_projector.py output folder (one
such folder per target). The projection's own noise maps (noise.npz) come along when every latent has them.
"""

import os

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError

LATENT_FILE = "latent.npy"  # written by generation.projection_outputs.write_target_outputs
NOISE_FILE = "noise.npz"


def _latent_files(path):
    """[(name, latent file)] that `path` names, in a stable order."""
    if os.path.isfile(path):
        return [(os.path.splitext(os.path.basename(path))[0], path)]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{path}: no such latent file or projection folder")
    if os.path.isfile(os.path.join(path, LATENT_FILE)):
        return [(os.path.basename(os.path.normpath(path)), os.path.join(path, LATENT_FILE))]
    found = [(d, os.path.join(path, d, LATENT_FILE)) for d in sorted(os.listdir(path))
             if os.path.isfile(os.path.join(path, d, LATENT_FILE))]
    if not found:
        raise FileNotFoundError(f"{path}: holds no {LATENT_FILE} (expected a run_projector.py output folder, one "
                                "of its target folders, or a latent .npy/.npz file)")
    return found


def _read_ws(file):
    if file.endswith(".npz"):
        with np.load(file) as z:
            key = next((k for k in ("ws", "w") if k in z.files), None)
            if key is None:
                raise InputError(f"{file}: expected an array named 'w' or 'ws', found {', '.join(z.files) or 'none'}")
            ws = z[key]
    else:
        ws = np.load(file, allow_pickle=False)
    ws = np.asarray(ws, np.float32)
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3:
        raise InputError(f"{file}: latent of shape {list(ws.shape)}; expected [num_ws, w_dim] or [N, num_ws, w_dim]")
    return ws


def _read_noise(latent_file):
    noise_file = os.path.join(os.path.dirname(latent_file), NOISE_FILE)
    if os.path.basename(latent_file) != LATENT_FILE or not os.path.isfile(noise_file):
        return None
    with np.load(noise_file) as z:
        return [z[f"arr_{i}"] for i in range(len(z.files))]


def load_projected(path, num_ws=None, w_dim=None):
    """EasyDict(names, ws [N, num_ws, w_dim] float32, noise: list per noised layer of [N, D, H, W, 1] or None).

    num_ws, w_dim: the network's, checked when given (a latent of another network is a ValueError naming the file).
    """
    names, ws, noise = [], [], []
    for name, file in _latent_files(os.fspath(path)):
        w = _read_ws(file)
        if (num_ws is not None and w.shape[1] != num_ws) or (w_dim is not None and w.shape[2] != w_dim):
            raise InputError(f"{file}: latent [{w.shape[1]}, {w.shape[2]}] does not fit this network "
                             f"([{num_ws}, {w_dim}] ws)")
        names += [name] if len(w) == 1 else [f"{name}-{i:02d}" for i in range(len(w))]
        ws.append(w)
        noise.append(_read_noise(file) if len(w) == 1 else None)
    maps = None
    if all(n is not None for n in noise):
        maps = [np.stack([n[layer] for n in noise]) for layer in range(len(noise[0]))]
    return EasyDict(names=names, ws=np.concatenate(ws), noise=maps)
