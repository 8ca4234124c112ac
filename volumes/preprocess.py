"""Turning one scan into one training volume while keeping every voxel at its world position.

Steps (each recorded in the returned `transform`): checks (finite, not constant) -> exact reorientation
to RAS (axis permutation/flips, no interpolation) -> optional affine registration to a template
(SimpleITK, Mattes mutual information) -> output grid (RAS axes, the chosen spacing and shape, centred on
the foreground) -> resampling (linear, Gaussian anti-aliasing when coarsening) or, when the grid already
lies on the source lattice, an exact integer crop/pad -> intensity normalisation.

Foreground: voxels above 10% of the way from the volume minimum to its 99.5th percentile (a robust
max). It is cheap, has no failure modes on skull-stripped data (background exactly 0) and separates
head from air on unstripped scans; the centre is the middle of the 0.5-99.5 percentile extent of the
foreground voxels along each axis, so stray bright voxels in the background cannot move it.
Normalisation: clip to the [0.5, 99.5] percentiles of the foreground, then map linearly to [0, 1].
This module does not import TensorFlow (it runs in worker processes).
"""

import os

import numpy as np

from dnnlib.easydict import EasyDict
from dnnlib.errors import InputError
from volumes import volume_io

DEFAULT_BASE_SHAPE = (5, 6, 7)
# Field of view (mm) of the original data: 160x192x224 at 1 mm. Default shapes keep it at any spacing.
DEFAULT_FOV_MM = (160.0, 192.0, 224.0)


# ----------------------------------------------------------------------------------------------
# Shapes the generator can make.


def valid_shapes(base_shape=DEFAULT_BASE_SHAPE, max_dim=512):
    base = np.asarray(base_shape, dtype=np.int64)
    out, k = [], 0
    while np.max(base * 2**k) <= max_dim:
        out.append(tuple(int(v) for v in base * 2**k))
        k += 1
    return out


def check_shape(shape, base_shape=DEFAULT_BASE_SHAPE):
    """ValueError unless shape == base_shape * 2**k for some k >= 0 (what the synthesis network makes)."""
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or shape not in valid_shapes(base_shape, max(max(shape), 1) * 2):
        choices = ", ".join("x".join(map(str, s)) for s in valid_shapes(base_shape))
        base = "x".join(map(str, base_shape))
        raise InputError(
            f"shape {'x'.join(map(str, shape))} does not fit the generator: shapes must be the base shape "
            f"{base} times 2^k. Valid shapes: {choices}"
        )
    return shape


def default_shape(spacing, base_shape=DEFAULT_BASE_SHAPE):
    """The valid shape whose field of view is closest to 160x192x224 mm (80x96x112 at 2 mm)."""
    spacing = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (3,))
    shapes = valid_shapes(base_shape, 4096)
    fov = np.asarray(DEFAULT_FOV_MM)
    err = [np.sum(np.log(np.asarray(s) * spacing / fov) ** 2) for s in shapes]
    return shapes[int(np.argmin(err))]


def default_options(**overrides):
    """Preprocessing options (EasyDict, JSON-able); the CLI fills them from flags."""
    opts = EasyDict(
        shape=None,  # None -> default_shape(spacing)
        spacing=[2.0, 2.0, 2.0],
        base_shape=list(DEFAULT_BASE_SHAPE),
        reorient=True,
        resample=True,
        antialias=True,
        register_to=None,
        center="foreground",  # or "image"
        normalize=True,
        percentiles=[0.5, 99.5],
        foreground_fraction=0.1,
        storage_dtype="uint16",
    )
    opts.update(overrides)
    if opts.shape is None:
        opts.shape = list(default_shape(opts.spacing, opts.base_shape))
    return opts


# ----------------------------------------------------------------------------------------------
# Foreground and intensities.


def foreground_mask(volume, fraction=0.1):
    v = np.asarray(volume)
    lo = float(v.min())
    # The robust max from every 8th voxel: the same percentile to a fraction of a percent, for less work.
    sample = v[::2, ::2, ::2] if v.size > 1e5 else v
    hi = float(np.percentile(sample, 99.5))
    if hi <= lo:
        hi = float(v.max())
    return v > lo + fraction * (hi - lo)


def foreground_centre(mask):
    """Voxel coordinates of the centre of the robust (0.5-99.5 percentile) extent of the mask.

    Per axis, the percentiles of the foreground voxels' coordinates come from the cumulative count of
    foreground voxels per slice: exact, and no list of millions of coordinates is ever made.
    """
    mask = np.asarray(mask, dtype=bool)
    total = int(mask.sum())
    if total == 0:
        return (np.asarray(mask.shape, dtype=np.float64) - 1) / 2
    centre = []
    for axis in range(mask.ndim):
        counts = mask.sum(axis=tuple(a for a in range(mask.ndim) if a != axis))
        cdf = np.cumsum(counts) / total
        lo = int(np.searchsorted(cdf, 0.005, side="right"))
        hi = int(np.searchsorted(cdf, 0.995, side="left"))
        centre.append((lo + min(hi, mask.shape[axis] - 1)) / 2)
    return np.asarray(centre, dtype=np.float64)


def normalize_intensity(volume, mask, percentiles=(0.5, 99.5)):
    """Clip to percentiles of the foreground voxels and map to [0, 1]. Returns (volume01, info)."""
    v = np.asarray(volume, dtype=np.float32)
    fg = v[mask] if np.any(mask) else v.ravel()
    lo, hi = (float(x) for x in np.percentile(fg, percentiles))
    if hi <= lo:
        lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        raise InputError("constant volume")
    out = np.clip((v - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    return out, {"method": "foreground_percentile_clip", "percentiles": list(percentiles), "clip": [lo, hi]}


# ----------------------------------------------------------------------------------------------
# Registration.


def register_affine(moving, fixed, seed=0):
    """Affine (12 dof) registration of moving onto fixed (both SimpleITK images).

    Returns a SimpleITK transform mapping fixed physical points to moving points (what Resample wants).
    Mattes mutual information tolerates different contrasts; three resolution levels for robustness;
    a fixed sampling seed and one thread make it reproducible.
    """
    import SimpleITK as sitk

    fixed = sitk.Cast(fixed, sitk.sitkFloat32)
    moving = sitk.Cast(moving, sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(
        fixed, moving, sitk.AffineTransform(3), sitk.CenteredTransformInitializerFilter.MOMENTS
    )
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    # About 100k random samples: all voxels of small images, a fraction of 1 mm ones.
    fraction = min(1.0, 1e5 / max(np.prod(fixed.GetSize()), 1))
    if fraction < 1.0:
        reg.SetMetricSamplingStrategy(reg.RANDOM)
        reg.SetMetricSamplingPercentage(fraction, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=1.0, minStep=1e-4, numberOfIterations=200, gradientMagnitudeTolerance=1e-6
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    small = min(fixed.GetSize())
    levels = [f for f in (4, 2, 1) if small // f >= 8] or [1]
    reg.SetShrinkFactorsPerLevel(levels)
    reg.SetSmoothingSigmasPerLevel([max(f - 1, 0) for f in levels])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOff()
    reg.SetInitialTransform(init, inPlace=False)
    reg.SetNumberOfThreads(1)
    return reg.Execute(fixed, moving)


def transform_to_ras_matrix(transform):
    """4x4 matrix (RAS world) of an ITK affine transform (LPS world): x_moving = M @ x_fixed."""
    # Any affine ITK transform (also composites): its action on 4 points gives the 4x4 map exactly.
    pts = np.asarray([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=np.float64)
    img = np.asarray([transform.TransformPoint(tuple(float(v) for v in p)) for p in pts])
    lps = np.eye(4)
    lps[:3, 3] = img[0]
    lps[:3, :3] = (img[1:] - img[0]).T
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ lps @ flip


# ----------------------------------------------------------------------------------------------
# The output grid.


def output_grid(src_affine, src_shape, centre_vox, opts, direction=None):
    """Affine of the output grid: axes `direction` (3x3 unit columns, RAS identity by default), spacing,
    centre at the world point of centre_vox, origin snapped to the source lattice so that a grid that
    matches the source spacing and axes lands exactly on source voxels (no interpolation)."""
    src_affine = np.asarray(src_affine, dtype=np.float64)
    shape = np.asarray(opts.shape, dtype=np.float64)
    spacing = np.asarray(opts.spacing, dtype=np.float64) if opts.resample else volume_io.voxel_sizes(src_affine)
    rot = np.eye(3) if direction is None else np.asarray(direction, dtype=np.float64)
    m = rot * spacing[None, :]
    centre_world = src_affine[:3, :3] @ centre_vox + src_affine[:3, 3]
    origin = centre_world - m @ ((shape - 1) / 2)
    p0 = src_affine[:3, 3]
    origin = p0 + m @ np.round(np.linalg.solve(m, origin - p0))
    out = np.eye(4)
    out[:3, :3] = m
    out[:3, 3] = origin
    return out


def lattice_offset(src_affine, out_affine, tol=1e-4):
    """Integer source index of output voxel (0,0,0) when the output grid is a sub/super-lattice-free
    translate of the source grid (same axes and spacing); None when resampling is needed."""
    src_affine = np.asarray(src_affine, dtype=np.float64)
    if not np.allclose(src_affine[:3, :3], out_affine[:3, :3], atol=tol):
        return None
    off = np.linalg.solve(src_affine[:3, :3], out_affine[:3, 3] - src_affine[:3, 3])
    if not np.allclose(off, np.round(off), atol=tol):
        return None
    return np.round(off).astype(np.int64)


def coverage(src_affine, src_shape, out_affine, out_shape, fixed_to_moving=None, step=2):
    """Fraction of the output grid's voxels whose centre lies inside the source scan (every `step`-th voxel
    along each axis is checked). fixed_to_moving: the registration's 4x4 world map (output world -> source
    world), or None."""
    axes = [np.arange(0, int(n), step, dtype=np.float64) for n in out_shape]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    world = grid @ np.asarray(out_affine)[:3, :3].T + np.asarray(out_affine)[:3, 3]
    if fixed_to_moving is not None:
        world = world @ np.asarray(fixed_to_moving)[:3, :3].T + np.asarray(fixed_to_moving)[:3, 3]
    inv = np.linalg.inv(np.asarray(src_affine, np.float64))
    vox = world @ inv[:3, :3].T + inv[:3, 3]
    inside = np.all((vox > -0.5) & (vox < np.asarray(src_shape, np.float64) - 0.5), axis=1)
    return float(np.mean(inside))


def crop_pad(volume, offset, shape, fill):
    """out[i] = volume[i + offset] where inside, else fill. Exact; used when no resampling is needed."""
    out = np.full(tuple(shape), fill, dtype=np.float32)
    src_sl, dst_sl = [], []
    for n, o, s in zip(volume.shape, offset, shape, strict=True):
        a, b = max(0, o), min(n, o + s)
        if b <= a:
            return out
        src_sl.append(slice(a, b))
        dst_sl.append(slice(a - o, b - o))
    out[tuple(dst_sl)] = volume[tuple(src_sl)]
    return out


def resample(volume, affine, out_affine, shape, fill, transform=None):
    """Linear resampling of (volume, affine) onto the grid (out_affine, shape), through transform if given."""
    import SimpleITK as sitk

    moving = volume_io.array_affine_to_sitk(volume.astype(np.float32, copy=False), affine)
    reference = volume_io.array_affine_to_sitk(np.zeros(tuple(shape), np.uint8), out_affine)
    tx = transform if transform is not None else sitk.Transform(3, sitk.sitkIdentity)
    out = sitk.Resample(moving, reference, tx, sitk.sitkLinear, float(fill), sitk.sitkFloat32)
    return volume_io.sitk_to_array_affine(out)[0]


def antialias(volume, affine, spacing):
    """Gaussian pre-filter when coarsening: sigma = sqrt(s_out^2 - s_in^2) / 2.355 (FWHM match), per axis."""
    from scipy import ndimage

    s_in = volume_io.voxel_sizes(affine)
    s_out = np.asarray(spacing, dtype=np.float64)
    sigma_mm = np.sqrt(np.maximum(s_out**2 - s_in**2, 0.0)) / 2.355
    sigma_vox = sigma_mm / s_in
    if np.all(sigma_vox < 0.2):
        return volume, [0.0, 0.0, 0.0]
    return ndimage.gaussian_filter(volume, sigma_vox, mode="nearest"), [float(s) for s in sigma_mm]


# ----------------------------------------------------------------------------------------------
# One volume.


class Template:
    """A registration target read once: image, and its foreground centre in world coordinates."""

    def __init__(self, path):
        vol, aff = volume_io.read_volume(path, max_voxels=volume_io.DEFAULT_MAX_VOXELS)
        vol, aff, _ = volume_io.reorient_to_ras(vol, aff)
        self.path = str(path)
        self.volume, self.affine = vol, aff
        self.image = volume_io.array_affine_to_sitk(vol, aff)
        self.centre_vox = foreground_centre(foreground_mask(vol))


def check_values(volume, name):
    """ValueError for NaN/Inf or constant volumes (reasons name the file)."""
    bad = int(np.count_nonzero(~np.isfinite(volume)))
    if bad:
        raise InputError(f"{name}: {bad} NaN/Inf voxels")
    if float(volume.max()) == float(volume.min()):
        raise InputError(f"{name}: empty volume (every voxel is {float(volume.min()):g})")


def preprocess_volume(volume, affine, opts, template=None, name="volume"):
    """(volume, affine as read) -> (volume01 float32 [shape], out_affine 4x4, transform dict)."""
    volume = np.asarray(volume, dtype=np.float32)
    affine = np.asarray(affine, dtype=np.float64)
    check_values(volume, name)
    t = EasyDict(
        source_shape=list(volume.shape),
        source_affine=affine.tolist(),
        source_orientation="".join(volume_io.orientation_codes(affine)),
        source_spacing=volume_io.voxel_sizes(affine).tolist(),
    )
    if opts.reorient:
        volume, affine, ornt = volume_io.reorient_to_ras(volume, affine)
        t.reorient = {"to": "RAS", "ornt": ornt.tolist()}
        direction = np.eye(3)
    else:
        direction = affine[:3, :3] / volume_io.voxel_sizes(affine)[None, :]
    fill = float(volume.min())
    tx = None
    if template is not None:
        tx = register_affine(volume_io.array_affine_to_sitk(volume, affine), template.image)
        t.registration = {
            "template": template.path,
            "type": "affine",
            "metric": "mattes_mi",
            "fixed_to_moving_ras": transform_to_ras_matrix(tx).tolist(),
        }
        out_affine = output_grid(template.affine, template.volume.shape, template.centre_vox, opts, direction)
    else:
        if opts.center == "foreground":
            centre = foreground_centre(foreground_mask(volume, opts.foreground_fraction))
        else:
            centre = (np.asarray(volume.shape, np.float64) - 1) / 2
        t.centre_world = (affine[:3, :3] @ centre + affine[:3, 3]).tolist()
        out_affine = output_grid(affine, volume.shape, centre, opts, direction)
    shape = tuple(int(s) for s in opts.shape)
    t.coverage = round(coverage(affine, volume.shape, out_affine, shape,
                          None if tx is None else t.registration["fixed_to_moving_ras"]), 4)
    offset = lattice_offset(affine, out_affine) if tx is None else None
    if offset is not None:
        out = crop_pad(volume, offset, shape, fill)
        t.resample = {"method": "crop_pad", "offset": offset.tolist()}
    else:
        sigma = [0.0, 0.0, 0.0]
        if opts.antialias:
            volume, sigma = antialias(volume, affine, np.asarray(opts.spacing, np.float64))
        out = resample(volume, affine, out_affine, shape, fill, tx)
        t.resample = {"method": "linear", "antialias_sigma_mm": sigma, "spacing": list(map(float, opts.spacing))}
    if float(out.max()) == float(out.min()):
        raise InputError(f"{name}: the output grid holds no image (constant after crop/resample)")
    if opts.normalize:
        out, t.intensity = normalize_intensity(out, foreground_mask(out, opts.foreground_fraction), opts.percentiles)
        t.intensity["background"] = fill  # the scan's minimum: what 0 stands for when going back to its units
    else:
        out = np.clip(out, 0.0, 1.0)
        t.intensity = {"method": "clip01"}
    t.affine = out_affine.tolist()
    return out.astype(np.float32), out_affine, t


def preprocess_file(path, opts, template=None, max_voxels=None):
    """Read and preprocess one scan. FileNotFoundError or ValueError (one line, naming the file) for bad input;
    with max_voxels, a scan whose header declares more voxels is refused before its data is read."""
    vol, aff = volume_io.read_volume(path, max_voxels=max_voxels)
    return preprocess_volume(vol, aff, opts, template=template, name=str(path))


def options_from_manifest(manifest):
    """The preprocessing options a dataset was made with (defaults for datasets that do not record them,
    e.g. the synthetic demo set), with the manifest's shape and spacing."""
    recorded = dict(manifest.get("preprocessing") or {})
    recorded.update(shape=list(manifest["shape"]), spacing=list(manifest["spacing"]))
    if manifest.get("storage_dtype"):
        recorded["storage_dtype"] = manifest["storage_dtype"]
    return default_options(**recorded)


def preprocess_like_manifest(path, manifest):
    """Preprocess one scan exactly as the dataset behind `manifest` was made (same grid, registration,
    normalisation). Returns (volume01 [shape], affine, transform); ValueError/FileNotFoundError for bad input."""
    opts = options_from_manifest(manifest)
    template = None
    if opts.register_to:
        if not os.path.isfile(opts.register_to):
            raise FileNotFoundError(
                f"{path}: the dataset was registered to {opts.register_to}, which no longer exists; "
                "put the template back at that path"
            )
        template = Template(opts.register_to)
    return preprocess_file(path, opts, template)
