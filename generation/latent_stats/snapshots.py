"""progress: synthesis over training, the same seeds through every snapshot of a run (a PNG grid, one row per
snapshot, and an animated GIF, one frame per snapshot).

A run's snapshots are its snapshots/<step...>/generator SavedModels in step order; a run without snapshot
generators falls back to its intact checkpoints, oldest first (the shipped runs keep only their last).
"""

import os
import re

import numpy as np

from dnnlib import EasyDict
from dnnlib.errors import InputError


def snapshot_networks(run):
    """[(name, path for load_generator)] of a run directory, oldest first."""
    from training.checkpoints import intact_checkpoints
    from training.run_files import checkpoints_dir, snapshots_dir

    snap_dir = snapshots_dir(run)
    found = []
    if os.path.isdir(snap_dir):
        found = [(d, os.path.join(snap_dir, d)) for d in sorted(os.listdir(snap_dir))
                 if os.path.isfile(os.path.join(snap_dir, d, "generator", "saved_model.pb"))]
    if not found:
        found = [(os.path.basename(p), p) for p in reversed(intact_checkpoints(checkpoints_dir(run)))]
    if not found:
        raise FileNotFoundError(f"{run}: no snapshot generators (snapshots/*/generator) and no intact checkpoints "
                                "(checkpoints/ckpt-N); give a training run directory")
    return found


def _step_of(name):
    m = re.search(r"step(\d+)", name) or re.search(r"ckpt-(\d+)", name)
    return int(m.group(1)) if m else None


def run_progress(opts, out):
    """Write progress.png, progress.gif, one NIfTI per snapshot and seed; returns the summary."""
    from PIL import Image

    from dnnlib.fileutil import atomic_write_bytes
    from generation.outputs import output_affine, write_volume
    from generation.runner import Runner
    from generation.sampling import generate
    from training.network_io import load_generator
    from volumes import visualize
    from volumes.visualize import encode_image, png_scale
    from volumes.volume_io import to_unit_range
    from volumes.work_pool import Progress

    snaps = snapshot_networks(opts.run)
    seeds = list(opts.seeds)
    bar = Progress(len(snaps), label="snapshots ")
    rows, names, shape = [], [], None
    os.makedirs(os.path.join(out, "volumes"))
    for name, path in snaps:
        net = load_generator(path)
        if shape is not None and tuple(net.G.img_shape) != shape:
            raise InputError(f"{path}: makes volumes of shape {list(net.G.img_shape)}, the run's earlier snapshots "
                             f"{list(shape)}")
        shape = tuple(net.G.img_shape)
        vols = generate(Runner(net.G, int(opts.get("batch", 4))), seeds, noise_mode=opts.get("noise_mode", "const"))
        affine = output_affine(net.geometry, net.G.img_shape)
        for s, v in zip(seeds, vols, strict=True):
            write_volume(os.path.join(out, "volumes", f"{name}_seed{s:04d}.nii.gz"), v, affine)
        rows.append(visualize.grid_image(to_unit_range(vols), 1, len(seeds), int(opts.get("axis", 2)), (0, 1)))
        names.append(name)
        bar.update(1)
    scale = png_scale(shape)
    big = [np.repeat(np.repeat(r, scale, axis=0), scale, axis=1) for r in rows]
    gap = np.zeros((2 * scale, big[0].shape[1]), np.uint8)
    grid = np.concatenate([x for r in big for x in (r, gap)][:-1], axis=0)
    atomic_write_bytes(os.path.join(out, "progress.png"), encode_image(Image.fromarray(grid), "PNG"))
    frames = [Image.fromarray(r) for r in big]
    gif = encode_image(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=500, loop=0)
    atomic_write_bytes(os.path.join(out, "progress.gif"), gif)
    return EasyDict(snapshots=[{"name": n, "step": _step_of(n)} for n in names], seeds=seeds,
                    rows="one per snapshot, oldest first; columns: seeds", files=["progress.png", "progress.gif"],
                    noise_mode=opts.get("noise_mode", "const"))
