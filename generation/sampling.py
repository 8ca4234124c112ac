"""Seeds -> volumes, and the average volume of many seeds.

Volumes are NumPy arrays in the generator's range [-1, 1], shaped [N, D, H, W, C] (writing files is
generation.outputs' job, so tests can check the arrays directly). Long runs stream: generate_batches yields one
runner batch at a time and the averages keep running sums, so memory does not grow with the number of seeds.
"""

import numpy as np

from dnnlib.errors import InputError
from generation.seeds import seeds_to_z


def generate_batches(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None, progress=None):
    """Yield (seeds of the batch, volumes [n, D, H, W, C] in [-1, 1]), one runner batch at a time.

    'random' noise comes from each seed. progress: an object with update(n) (e.g. volumes.work_pool.Progress),
    told after each batch.
    """
    seeds = list(seeds)
    for a in range(0, len(seeds), runner.batch_size):  # chunked: seed noise of many seeds is large at 1 mm
        chunk = seeds[a : a + runner.batch_size]
        ws = runner.map(seeds_to_z(chunk, runner.z_dim), c, psi=psi, truncation_cutoff=truncation_cutoff)
        vols = runner.synthesize_seed_noise(ws, chunk, noise_mode)
        if progress is not None:
            progress.update(len(chunk))
        yield chunk, vols


def generate(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None):
    """Volumes of the given seeds, [N, D, H, W, C] in [-1, 1], all in memory (for a few seeds; stream many with
    generate_batches)."""
    batches = [v for _, v in generate_batches(runner, seeds, psi, noise_mode, c, truncation_cutoff)]
    return np.concatenate(batches, axis=0)


def average_volume(runner, seeds, psi=1.0, noise_mode="random", c=None, truncation_cutoff=None, progress=None):
    """Voxel-wise mean over the seeds' volumes [D, H, W, C], a running float64 sum over batches."""
    seeds = list(seeds)
    if not seeds:
        raise InputError("no seeds to average")
    total = None
    for _, vols in generate_batches(runner, seeds, psi, noise_mode, c, truncation_cutoff, progress):
        s = vols.astype(np.float64).sum(axis=0)
        total = s if total is None else total + s
    return (total / len(seeds)).astype(np.float32)


def mean_w(runner, seeds, psi=1.0, c=None, truncation_cutoff=None):
    """Mean W of the seeds [num_ws, w_dim], a running float64 sum over batches (ws of many seeds are large)."""
    seeds = list(seeds)
    if not seeds:
        raise InputError("no seeds to average")
    total = np.zeros([runner.num_ws, runner.w_dim], np.float64)
    for a in range(0, len(seeds), runner.batch_size):
        chunk = seeds[a : a + runner.batch_size]
        ws = runner.map(seeds_to_z(chunk, runner.z_dim), c, psi=psi, truncation_cutoff=truncation_cutoff)
        total += ws.astype(np.float64).sum(axis=0)
    return (total / len(seeds)).astype(np.float32)


def average_w_volume(runner, seeds, psi=1.0, noise_mode="const", c=None, truncation_cutoff=None, noise_seed=0):
    """The volume of the mean W of the seeds ([D, H, W, C]): the 'average brain' as the generator sees it."""
    w = mean_w(runner, seeds, psi, c, truncation_cutoff)
    return runner.synthesize_shared_noise(w[None], noise_mode, noise_seed)[0]
