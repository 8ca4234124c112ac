"""Per-snapshot outputs: sample volumes (NIfTI with the dataset affine), mid-slice PNG grids, SavedModel of G_ema."""

import os

import numpy as np
import tensorflow as tf

from dnnlib.fileutil import atomic_output_dir
from volumes.visualize import mid_slices_image, mid_slices_png
from volumes.volume_io import to_unit_range, write_nifti


class SnapshotInputs:
    """Fixed latents (and labels) so successive snapshots show the same samples evolving."""

    def __init__(self, G, num, seed, labels=None):
        rnd = np.random.RandomState(seed + 123)
        self.z = rnd.standard_normal([num, G.z_dim]).astype(np.float32)
        self.c = None
        if G.c_dim > 0:
            self.c = labels[:num] if labels is not None and len(labels) >= num else np.zeros([num, G.c_dim], np.float32)


def generate_fakes(G_ema, inputs, batch=4):
    """G_ema volumes for the fixed latents, 'const' noise, psi 1: [N, D, H, W, C] float32 in about [-1, 1]."""
    out = []
    for i in range(0, len(inputs.z), batch):
        z = tf.constant(inputs.z[i:i + batch])
        c = None if inputs.c is None else tf.constant(inputs.c[i:i + batch])
        out.append(G_ema(z, c, noise_mode="const").numpy())
    return np.concatenate(out, axis=0)


def snapshot_name(step, cur_nimg):
    """Folder name of the snapshot at training step `step` (batch index): 'step00001234-kimg00012.345'. Named by
    step, which only grows over a run and its resumes; kimg alone repeats for small ticks and after a resume."""
    return f"step{int(step):08d}-kimg{int(cur_nimg) / 1000:09.3f}"


def new_snapshot_dir(snapshots_root, step, cur_nimg):
    """A path under snapshots_root for a new snapshot that names no existing folder: snapshot_name, or with
    '-again<K>' appended when a run killed before its checkpoint and resumed wrote that step's snapshot before."""
    base = os.path.join(snapshots_root, snapshot_name(step, cur_nimg))
    path, k = base, 1
    while os.path.lexists(path):
        path, k = f"{base}-again{k}", k + 1
    return path


def write_snapshot(snap_dir, fakes, reals, affine, G_ema=None, geometry=None, options=None, overwrite=False):
    """snap_dir/: fakes_NN.nii.gz, fakes.png, reals.png, generator/ (SavedModel). Written atomically; an existing
    snap_dir is refused (FileExistsError) unless overwrite."""
    from training.network_io import export_generator

    with atomic_output_dir(snap_dir, overwrite=overwrite) as tmp:
        for i, vol in enumerate(fakes):
            v = to_unit_range(vol[..., 0] if vol.shape[-1] == 1 else vol)
            write_nifti(os.path.join(tmp, f"fakes_{i:02d}.nii.gz"), v, affine)
        # One row per volume: sagittal, coronal and axial mid-slices.
        mid_slices_png(os.path.join(tmp, "fakes.png"), fakes, drange=(-1, 1), scale=2)
        if reals is not None and len(reals):
            mid_slices_png(os.path.join(tmp, "reals.png"), reals, drange=(-1, 1), scale=2)
        if G_ema is not None:
            export_generator(G_ema, geometry, os.path.join(tmp, "generator"), overwrite=True, options=options)
    return snap_dir


def mid_slice_image(volumes):
    """Mid-slices of the volumes as a [1, H, W, 1] uint8 array for TensorBoard."""
    return np.asarray(mid_slices_image(volumes, drange=(-1, 1)))[None, :, :, None]
