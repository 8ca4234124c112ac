"""Seeds -> volumes, and the average volume of many seeds.

Volumes are NumPy arrays in the generator's range [-1, 1], shaped [N, D, H, W, C] (writing files is
generation.outputs' job, so tests can check the arrays directly).
"""

import numpy as np

from generation.seeds import seeds_to_z


def generate(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None):
    """Volumes of the given seeds, [N, D, H, W, C] in [-1, 1]. 'random' noise comes from each seed."""
    seeds = list(seeds)
    out = []
    for a in range(0, len(seeds), runner.batch_size):  # chunked: seed noise of many seeds is large at 1 mm
        chunk = seeds[a : a + runner.batch_size]
        ws = runner.map(seeds_to_z(chunk, runner.z_dim), c, psi=psi, truncation_cutoff=truncation_cutoff)
        out.append(runner.synthesize_seed_noise(ws, chunk, noise_mode))
    return np.concatenate(out, axis=0)


def average_volume(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None):
    """Voxel-wise mean over the seeds' volumes [D, H, W, C], accumulated batch by batch (float64 sum)."""
    total = None
    for a in range(0, len(seeds), runner.batch_size):
        vols = generate(runner, seeds[a : a + runner.batch_size], psi, noise_mode, c, truncation_cutoff)
        s = vols.astype(np.float64).sum(axis=0)
        total = s if total is None else total + s
    return (total / len(seeds)).astype(np.float32)


def average_w_volume(runner, seeds, psi=1.0, noise_mode="const", c=None, truncation_cutoff=None, noise_seed=0):
    """The volume of the mean W of the seeds ([D, H, W, C]): the 'average brain' as the generator sees it."""
    ws = runner.map(seeds_to_z(seeds, runner.z_dim), c, psi=psi, truncation_cutoff=truncation_cutoff)
    return runner.synthesize_shared_noise(ws.mean(axis=0, keepdims=True), noise_mode, noise_seed)[0]
