"""Files made from generated volumes: NIfTI with the training data's geometry, PNG slices and grids, strip/GIF."""

import io
import math
import os
import warnings

import numpy as np

from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_write_bytes
from volumes.volume_io import to_unit_range

ORIENTATIONS = ("sagittal", "coronal", "axial")  # slice across array axis 0, 1, 2 (RAS data)


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


def png_scale(img_shape):
    """Integer enlargement so small (demo) volumes still give pictures about 128 pixels across."""
    return max(1, math.ceil(128 / max(int(d) for d in img_shape)))


def slice_to_uint8(sl, value_range=(-1.0, 1.0)):
    lo, hi = value_range
    return np.clip(np.rint((np.asarray(sl, np.float64) - lo) / (hi - lo) * 255), 0, 255).astype(np.uint8)


def encode_image(img, fmt="PNG", **kwargs):
    """A PIL image as file bytes (written with atomic_write_bytes, so no half-written picture is left)."""
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def write_grids(prefix, vols, rows, cols):
    """One rows x cols grid of mid-slices per orientation: <prefix>_sagittal.png, _coronal.png, _axial.png."""
    from volumes import visualize

    for axis, name in enumerate(ORIENTATIONS):
        visualize.grid_png(f"{prefix}_{name}.png", to_unit_range(vols), rows, cols, axis, drange=(0, 1),
                           scale=png_scale(vols.shape[1:4]))


def write_mid_slices(path, vol):
    """Sagittal, coronal and axial mid-slices of one [-1, 1] volume as one PNG."""
    from volumes import visualize

    visualize.mid_slices_png(path, to_unit_range(vol), (0, 1), png_scale(np.shape(vol)[:3]))


def write_strip_and_gif(png_path, gif_path, vols, axis=2, duration_ms=80):
    """Mid-slices of the frames side by side (PNG) and as an animation that loops forth and back (GIF)."""
    from PIL import Image

    from volumes import visualize

    frames = [slice_to_uint8(visualize.slice_2d(squeeze_channels(v), axis)) for v in vols]
    scale = png_scale(np.shape(vols)[1:4])
    big = [np.repeat(np.repeat(f, scale, axis=0), scale, axis=1) for f in frames]
    strip = np.concatenate([np.pad(f, ((0, 0), (0, 2))) for f in big], axis=1)[:, :-2]
    atomic_write_bytes(png_path, encode_image(Image.fromarray(strip), "PNG"))
    loop = [Image.fromarray(f) for f in big + big[-2:0:-1]]
    gif = encode_image(loop[0], "GIF", save_all=True, append_images=loop[1:], duration=duration_ms, loop=0)
    atomic_write_bytes(gif_path, gif)
