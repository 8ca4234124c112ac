"""Volumes made by the generator as files: NIfTI with the training data's geometry (their pictures:
volumes/visualize.py)."""

import os
import warnings

import numpy as np

from dnnlib.errors import InputError
from volumes.volume_io import to_unit_range


def output_affine(geometry, img_shape):
    """4x4 affine for written volumes: the training data's, or identity (with a warning) for a bare network."""
    aff = (geometry or {}).get("affine")
    if aff is None:
        warnings.warn("the network carries no dataset geometry: writing volumes with an identity affine "
                      "(1 mm voxels, no world position)", stacklevel=2)
        return np.eye(4)
    aff = np.asarray(aff, np.float64)
    if aff.shape != (4, 4) or not np.all(np.isfinite(aff)):
        raise InputError(f"the network's geometry has an invalid affine {aff.tolist()}")
    shape = (geometry or {}).get("shape")
    if shape is not None and tuple(int(s) for s in shape[:3]) != tuple(int(s) for s in img_shape):
        warnings.warn(f"the network's geometry shape {list(shape)} differs from its output {list(img_shape)}; "
                      "using the geometry's affine anyway", stacklevel=2)
    return aff


def squeeze_channels(vol):
    """[D, H, W, 1] -> [D, H, W]; anything else unchanged."""
    vol = np.asarray(vol)
    return vol[..., 0] if vol.ndim == 4 and vol.shape[-1] == 1 else vol


def write_volume(path, vol, affine, uint8=False):
    """Write one [-1, 1] volume [D,H,W,C] as float32 NIfTI in [0, 1] at `path` (+ '_uint8' copy when asked)."""
    from volumes import volume_io

    unit = squeeze_channels(to_unit_range(vol))
    volume_io.write_nifti(path, unit, affine, dtype="float32")
    if uint8:
        stem = path[: -len(".nii.gz")] if path.endswith(".nii.gz") else os.path.splitext(path)[0]
        volume_io.write_nifti(stem + "_uint8.nii.gz", unit, affine, dtype="uint8")
