"""What a projection through a degradation restores, and how well: the network-grid voxels whose values the
degraded target does not pin down and the metrics measured there (beside those of the trivial inverse), restored
volumes on a requested grid, and the per-target files of a reconstruction study.

"Missing information" (where the study's metrics are measured): network voxels between thick-slice centres
along a thickened axis (every slice but those at a centre start + j * factor), outside what a crop keeps, or
feeding a voxel the mask excludes. Volumes here are [D,H,W] or [D,H,W,C] arrays in [-1, 1] unless said.
"""

import json
import math
import os

import numpy as np

from generation.restoration.data_term import masked_mse
from generation.restoration.trivial_inverse import trivial_inverse_volume

_CENTRE_EPS = 1e-6


def missing_information(deg, net_shape):
    """bool [D,H,W]: network voxels whose values the degraded target does not pin down (module docstring)."""
    import tensorflow as tf

    net_shape = tuple(int(s) for s in net_shape)[:3]
    known = np.ones(net_shape, bool)
    for op in deg.ops:
        centres = op.centres(net_shape[op.axis])
        i = np.arange(net_shape[op.axis], dtype=np.float64)
        at_centre = np.min(np.abs(i[:, None] - centres[None, :]), axis=1) < _CENTRE_EPS
        shape = [1, 1, 1]
        shape[op.axis] = -1
        known &= at_centre.reshape(shape)
    w = deg.weights()
    if w is not None:
        excluded = (np.asarray(w).reshape(-1, *w.shape[-3:]).min(axis=0) <= 0).astype(np.float32)
        if excluded.any():  # back through the ops (their adjoint): every network voxel an excluded one averages
            x = tf.zeros([1, *net_shape, 1])
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(deg(x) * excluded[None, ..., None])
            known &= tape.gradient(total, x).numpy()[0, ..., 0] <= 0
    return ~known


def fov_grid(net_affine, fov_affine, fov_shape, spacing):
    """(affine, shape) of an isotropic `spacing` mm grid along the network's axes covering the box of the field
    of view (fov_affine, fov_shape) voxel edges; voxel centres half a voxel inside the box."""
    net = np.asarray(net_affine, np.float64)
    rot = net[:3, :3] / np.linalg.norm(net[:3, :3], axis=0)[None, :]
    fa = np.asarray(fov_affine, np.float64)
    corners = np.array(np.meshgrid(*[[-0.5, n - 0.5] for n in fov_shape[:3]], indexing="ij")).reshape(3, -1)
    world = fa[:3, :3] @ corners + fa[:3, 3:4]
    u = rot.T @ world  # coordinates along the network's axes
    lo, hi = u.min(axis=1), u.max(axis=1)
    shape = tuple(max(1, int(math.ceil((h - l) / spacing - 1e-6))) for l, h in zip(lo, hi, strict=True))
    out = np.eye(4)
    out[:3, :3] = rot * float(spacing)
    out[:3, 3] = rot @ (lo + spacing / 2.0)
    return out, shape


def on_grid(volume_unit, net_affine, grid_affine, grid_shape):
    """A network-grid volume [D,H,W] in [0, 1] resampled (linearly, 0 outside) onto (grid_affine, grid_shape)."""
    from generation.native_grid import to_native_grid

    grid = {"source_shape": list(grid_shape), "source_affine": np.asarray(grid_affine).tolist()}
    return to_native_grid(volume_unit, net_affine, grid)[0]


def missing_metrics(truth, restored, missing):
    """{mse, psnr} in [0, 1] units over the `missing` voxels (truth and restored in [-1, 1])."""
    from metrics.reconstruction import mse, psnr
    from volumes.volume_io import to_unit_range

    a = to_unit_range(np.asarray(truth))[..., 0] if np.ndim(truth) == 4 else to_unit_range(np.asarray(truth))
    b = to_unit_range(np.asarray(restored))[..., 0] if np.ndim(restored) == 4 else to_unit_range(np.asarray(restored))
    if not missing.any():
        return {"mse": 0.0, "psnr": float("inf")}
    return {"mse": mse(a[missing], b[missing]), "psnr": psnr(a[missing], b[missing], data_range=1.0)}


def write_reconstruction_outputs(out, t, volume, output_grid=None, uint8=False):
    """The study files of target t (degraded, see projection_targets) projected to `volume` [D,H,W,C] in [-1,1]:
    degraded.nii.gz (the projection through t's degradation) beside target_degraded.nii.gz (both on the degraded
    grid), mask.nii.gz, trivial_inverse.nii.gz (network grid), restored_<S>mm.nii.gz (with output_grid = S mm:
    over t's field of view, in the scan's units for image files) and degradation.json. Returns metrics: the data
    fit on the degraded grid and, when the truth is known (dataset and seed targets), missing-information MSE and
    PSNR of the projection and of the trivial inverse."""
    from dnnlib.fileutil import atomic_write_text
    from generation.native_grid import to_source_intensity
    from generation.outputs import write_volume
    from volumes import volume_io

    deg = t.degradation
    net_shape = tuple(volume.shape[:3])
    degraded = deg(volume[None]).numpy()[0]
    write_volume(os.path.join(out, "degraded.nii.gz"), degraded, t.grid_affine, uint8)
    write_volume(os.path.join(out, "target_degraded.nii.gz"), t.degraded, t.grid_affine, uint8)
    w = deg.weights()
    if w is not None:
        volume_io.write_nifti(os.path.join(out, "mask.nii.gz"), (np.asarray(w) > 0).astype(np.float32),
                              t.grid_affine, dtype="uint8")
    baseline = trivial_inverse_volume(deg, t.degraded, net_shape)
    write_volume(os.path.join(out, "trivial_inverse.nii.gz"), baseline, t.affine, uint8)
    # The data fit in [0, 1] units (the loss compares in [-1, 1]: a factor 4 in squared error).
    fit = masked_mse(degraded[None], t.degraded[None], None if w is None else w).numpy()[0] / 4.0
    metrics = {"degraded_mse": float(fit)}
    if output_grid:
        grid_affine, grid_shape = fov_grid(t.affine, *t.fov, float(output_grid))
        restored = on_grid(volume_io.to_unit_range(volume)[..., 0], t.affine, grid_affine, grid_shape)
        restored, _ = to_source_intensity(restored, (t.get("transform") or {}))
        volume_io.write_nifti(os.path.join(out, f"restored_{output_grid:g}mm.nii.gz"), restored, grid_affine)
        metrics["restored_grid"] = {"spacing_mm": float(output_grid), "shape": list(grid_shape)}
    if t.get("volume") is not None:
        missing = missing_information(deg, net_shape)
        metrics["missing_fraction"] = float(missing.mean())
        for name, vol in (("projection", volume), ("trivial_inverse", baseline)):
            for k, v in missing_metrics(t.volume, vol, missing).items():
                metrics[f"missing_{k}_{name}"] = v
    atomic_write_text(os.path.join(out, "degradation.json"), json.dumps(deg.describe(), indent=2) + "\n")
    return metrics
