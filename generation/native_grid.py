"""A projection written back where its image target came from: the source file's grid and intensity units."""

import numpy as np


def to_native_grid(volume, dataset_affine, transform, fill=0.0):
    """Resample a dataset-grid volume [D,H,W] back into the source file's own grid (linear interpolation).

    Inverts what preprocessing recorded in `transform`: reorientation and crop/resample keep world
    coordinates, so a source voxel's world point is looked up directly in the dataset grid; with registration
    the point is first carried into template space (x_fixed = inv(fixed_to_moving) @ x_source).
    Returns (array [source_shape], source_affine).
    """
    from scipy import ndimage

    shape = tuple(int(s) for s in transform["source_shape"][:3])
    src_affine = np.asarray(transform["source_affine"], np.float64)
    world_to_data = np.linalg.inv(np.asarray(dataset_affine, np.float64))
    reg = transform.get("registration")
    if reg:
        world_to_data = world_to_data @ np.linalg.inv(np.asarray(reg["fixed_to_moving_ras"], np.float64))
    m = world_to_data @ src_affine  # source voxel -> dataset voxel
    out = np.empty(shape, np.float32)
    ii, jj = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    base = m[:3, 0:1] * ii.ravel() + m[:3, 1:2] * jj.ravel() + m[:3, 3:4]
    for k in range(shape[2]):  # slab by slab: bounded memory for 1 mm scans
        coords = base + m[:3, 2:3] * k
        out[:, :, k] = ndimage.map_coordinates(np.asarray(volume, np.float32), coords, order=1, mode="constant",
                                               cval=fill).reshape(shape[:2])
    return out, src_affine


# Below this [0, 1] value a projection's voxel is taken as background: the normalisation sent everything at or
# below the lower clip (background and the darkest foreground) to 0, and a projection's background is near 0, not
# at it. Between 0 and this value the scan's background ramps linearly up to the exact inverse.
BACKGROUND_RAMP = 0.05


def to_source_intensity(volume01, transform):
    """Undo the dataset's linear intensity normalisation (clip [lo, hi] -> [0, 1]), so the projection written
    in the scan's own grid is also in the scan's own units: lo + v * (hi - lo) from BACKGROUND_RAMP up, and from
    the scan's own background (its minimum, when preprocessing recorded it) at 0 to that value below, so the
    projection's background is the scan's background. Returns (volume, description of the units)."""
    intensity = transform.get("intensity") or {}
    clip = intensity.get("clip")
    if not clip:
        return volume01, "[0, 1] (the dataset's)"
    lo, hi = float(clip[0]), float(clip[1])
    v = np.asarray(volume01, np.float64)
    vol = lo + v * (hi - lo)
    background = intensity.get("background")
    if background is None:
        return vol.astype(np.float32), f"source units: [0, 1] -> [{lo:g}, {hi:g}]"
    top = lo + BACKGROUND_RAMP * (hi - lo)
    ramp = float(background) + np.clip(v, 0, None) / BACKGROUND_RAMP * (top - float(background))
    vol = np.where(v < BACKGROUND_RAMP, ramp, vol).astype(np.float32)
    return vol, (f"source units: [0, 1] -> [{lo:g}, {hi:g}], background {float(background):g} (below "
                 f"{BACKGROUND_RAMP:g} a ramp from the scan's background)")
