"""Reading and writing 3D volumes with their world geometry.

Every volume in the port travels as (array [i, j, k], affine 4x4) with a nibabel-style affine:
world (RAS+, mm) = affine @ [i, j, k, 1]. SimpleITK/ITK images use LPS+ physical coordinates and
store arrays as [k, j, i]; the helpers here convert both ways so no caller has to think about it.
NIfTI and MGH/MGZ are read with nibabel (it honours sform/qform the way neuroimaging tools do);
everything else (MHA/MHD, NRRD, DICOM series folders, ...) with SimpleITK.
"""

import os

import numpy as np

from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_write_bytes

# Extensions nibabel reads natively; anything else goes through SimpleITK.
NIBABEL_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")
SITK_SUFFIXES = (".mha", ".mhd", ".nrrd", ".nhdr", ".hdr", ".img", ".dcm", ".vtk", ".gipl", ".tif", ".tiff")
VOLUME_SUFFIXES = NIBABEL_SUFFIXES + (".mha", ".mhd", ".nrrd", ".nhdr", ".dcm")

# RAS <-> LPS: x and y flip sign, z stays.
_LPS_FLIP = np.diag([-1.0, -1.0, 1.0, 1.0])


def has_suffix(path, suffixes):
    name = os.path.basename(str(path)).lower()
    return any(name.endswith(s) for s in suffixes)


def file_stem(path):
    """File or folder name without its volume extension ('sub-01_T1w.nii.gz' -> 'sub-01_T1w')."""
    base = os.path.basename(os.path.normpath(str(path)))
    for ext in sorted(VOLUME_SUFFIXES, key=len, reverse=True):
        if base.lower().endswith(ext):
            return base[: -len(ext)]
    return base


def is_dicom_dir(path):
    """True if path is a folder holding at least one DICOM series (SimpleITK/GDCM decides)."""
    if not os.path.isdir(path):
        return False
    import SimpleITK as sitk

    try:
        return len(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))) > 0
    except RuntimeError:
        return False


# ----------------------------------------------------------------------------------------------
# Conversions between SimpleITK images and (array [i,j,k], RAS affine).


def sitk_to_array_affine(image):
    """SimpleITK.Image -> (np.ndarray [i,j,k] or [i,j,k,c], RAS affine 4x4 float64)."""
    import SimpleITK as sitk

    arr = sitk.GetArrayFromImage(image)  # [k,j,i] (+ components last)
    dim = image.GetDimension()
    arr = np.transpose(arr, tuple(reversed(range(dim))) + tuple(range(dim, arr.ndim)))
    spacing = np.asarray(image.GetSpacing(), dtype=np.float64)
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(dim, dim)
    origin = np.asarray(image.GetOrigin(), dtype=np.float64)
    lps = np.eye(4)
    n = min(dim, 3)
    lps[:n, :n] = (direction * spacing[None, :])[:n, :n]
    lps[:n, 3] = origin[:n]
    return arr, _LPS_FLIP @ lps


def array_affine_to_sitk(volume, affine):
    """(array [i,j,k], RAS affine) -> SimpleITK.Image with matching LPS origin/spacing/direction."""
    import SimpleITK as sitk

    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise InputError(f"expected a 3D array, got shape {volume.shape}")
    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(volume, (2, 1, 0))))
    lps = _LPS_FLIP @ np.asarray(affine, dtype=np.float64)
    m = lps[:3, :3]
    spacing = np.linalg.norm(m, axis=0)
    if np.any(spacing <= 0):
        raise InputError(f"degenerate affine (zero voxel size): {np.asarray(affine).tolist()}")
    image.SetSpacing([float(s) for s in spacing])
    image.SetDirection([float(v) for v in (m / spacing[None, :]).ravel()])
    image.SetOrigin([float(v) for v in lps[:3, 3]])
    return image


def voxel_sizes(affine):
    """Voxel edge lengths (mm) along array axes i, j, k."""
    return np.linalg.norm(np.asarray(affine, dtype=np.float64)[:3, :3], axis=0)


def orientation_codes(affine):
    """Axis codes such as ('R','A','S') or ('L','P','S'): where each array axis points."""
    import nibabel as nib

    return tuple(nib.aff2axcodes(np.asarray(affine, dtype=np.float64)))


def reorient_to_ras(volume, affine):
    """Permute/flip array axes so they point R, A, S. Exact (no interpolation); the affine follows.

    Returns (volume, affine, ornt_transform) where the transform is nibabel's (axis, flip) table.
    """
    import nibabel as nib

    affine = np.asarray(affine, dtype=np.float64)
    src = nib.orientations.io_orientation(affine)
    dst = nib.orientations.axcodes2ornt(("R", "A", "S"))
    xform = nib.orientations.ornt_transform(src, dst)
    shape = np.asarray(volume).shape[:3]
    out = nib.orientations.apply_orientation(np.asarray(volume), xform)
    new_affine = affine @ nib.orientations.inv_ornt_aff(xform, shape)
    return np.ascontiguousarray(out), new_affine, xform


# ----------------------------------------------------------------------------------------------
# Reading.


def _read_dicom_series(path):
    import SimpleITK as sitk

    ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
    if not ids:
        raise InputError(f"{path}: folder holds no DICOM series")
    # A study folder may also hold localisers; the series with the most slices is the volume.
    files = max((sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), sid) for sid in ids), key=len)
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files)
    return reader.Execute()


def _read_nibabel(path):
    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    return data, np.asarray(img.affine, dtype=np.float64)


def read_image(path):
    """Read any image SimpleITK reads (and NIfTI/MGZ via nibabel, DICOM series folders) as SimpleITK.Image.

    Raises FileNotFoundError or ValueError naming the file when it cannot be read.
    """
    import SimpleITK as sitk

    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    try:
        if os.path.isdir(path):
            return _read_dicom_series(path)
        if has_suffix(path, (".mgz", ".mgh")):
            data, affine = _read_nibabel(path)
            if data.ndim != 3:
                raise InputError(f"{path}: expected a 3D image, got shape {data.shape}")
            return array_affine_to_sitk(data, affine)
        return sitk.ReadImage(path)
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault here
        raise _unreadable(path, e) from None


# A generous default for max_voxels: 512^3 is beyond any routine head MRI; an image declaring more is read only
# when the caller raises the limit.
DEFAULT_MAX_VOXELS = 512**3


def declared_voxels(path):
    """Voxel count (times components) a file or DICOM folder declares in its header, without reading the data.

    Compressed files can declare far more than they hold (a gzip bomb), and reading them in full is what
    exhausts memory; the header alone is enough to judge the size. Raises like read_volume when unreadable.
    """
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    try:
        if os.path.isfile(path) and has_suffix(path, NIBABEL_SUFFIXES):
            import nibabel as nib

            return int(np.prod([int(s) for s in nib.load(path).shape], dtype=np.float64))
        import SimpleITK as sitk

        if os.path.isdir(path):
            ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(path)
            if not ids:
                raise InputError(f"{path}: folder holds no DICOM series")
            files = max((sitk.ImageSeriesReader.GetGDCMSeriesFileNames(path, sid) for sid in ids), key=len)
            first, count = files[0], len(files)
        else:
            first, count = path, 1
        reader = sitk.ImageFileReader()
        reader.SetFileName(first)
        reader.ReadImageInformation()
        n = float(np.prod([int(s) for s in reader.GetSize()], dtype=np.float64))
        return int(n * count * max(1, reader.GetNumberOfComponents()))
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault here
        raise _unreadable(path, e) from None


def check_size(path, max_voxels):
    """ValueError naming the file when its header declares more than max_voxels voxels (None: no limit)."""
    if max_voxels is None:
        return
    n = declared_voxels(path)
    if n > int(max_voxels):
        raise InputError(f"{path}: too large: the header declares {n} voxels, more than the limit of "
                         f"{int(max_voxels)}; skipped before reading its data")


def read_volume(path, max_voxels=None):
    """Read a 3D scalar volume as (float32 array [i,j,k], RAS affine 4x4 float64).

    Trailing singleton axes are dropped. 2D images, 4D series and multi-component images are refused
    with a ValueError naming the file (callers that want them must read them themselves). With max_voxels,
    a file whose header declares more voxels is refused (ValueError "too large") before any data is read.
    """
    path = str(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file or folder")
    check_size(path, max_voxels)
    try:
        if os.path.isfile(path) and has_suffix(path, NIBABEL_SUFFIXES):
            data, affine = _read_nibabel(path)
        else:
            image = read_image(path)
            if image.GetNumberOfComponentsPerPixel() > 1:
                raise InputError(
                    f"{path}: image has {image.GetNumberOfComponentsPerPixel()} components per voxel; "
                    "expected a scalar 3D volume"
                )
            data, affine = sitk_to_array_affine(image)
            data = data.astype(np.float32, copy=False)
    except Exception as e:  # noqa: BLE001 - any reader failure is the file's fault here
        raise _unreadable(path, e) from None
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 4:
        raise InputError(f"{path}: 4D image (shape {tuple(data.shape)}); expected a single 3D volume")
    if data.ndim != 3 or min(data.shape) < 2:
        real_dims = sum(int(s) > 1 for s in data.shape)
        raise InputError(f"{path}: {real_dims}D image (shape {tuple(data.shape)}); expected a 3D volume")
    return np.ascontiguousarray(data, dtype=np.float32), affine


def _unreadable(path, e):
    """A reader's failure as one ValueError naming the file; our own such errors pass through unchanged."""
    if isinstance(e, ValueError) and str(e).startswith(path):
        return e
    return ValueError(f"{path}: unreadable ({error_summary(e)})")


def error_summary(e):
    """'TypeName: last line of the message' (at most 200 characters of it): a reason that fits one line."""
    text = str(e).strip().splitlines()
    text = text[-1] if text else ""
    return f"{type(e).__name__}: {text[:200]}" if text else type(e).__name__


# ----------------------------------------------------------------------------------------------
# Writing.


# Integer storage keeps viewers' values in [0, 1] through scl_slope, so no reader has to know our scale.
_NIFTI_DTYPES = {"float32": (np.float32, None), "uint8": (np.uint8, 255.0), "uint16": (np.uint16, 65535.0)}


def write_nifti(path, volume, affine, dtype="float32"):
    """Write a volume [i,j,k] or [i,j,k,c] as NIfTI-1 (.nii or .nii.gz), atomically.

    qform and sform are both set to the affine (code 1, scanner) and pixdim follows from it, so every
    viewer places the voxels at the same world coordinates. dtype "uint8"/"uint16" expects values in
    [0, 1] (clipped), stores round(v * max) and sets scl_slope = 1/max so readers get [0, 1] back.
    """
    import nibabel as nib

    path = str(path)
    if not has_suffix(path, (".nii", ".nii.gz")):
        raise InputError(f"{path}: NIfTI output must end in .nii or .nii.gz")
    if dtype not in _NIFTI_DTYPES:
        raise InputError(f"{path}: unsupported NIfTI dtype {dtype!r}; choose one of {sorted(_NIFTI_DTYPES)}")
    volume = np.asarray(volume)
    if volume.ndim == 4 and volume.shape[-1] == 1:
        volume = volume[..., 0]  # viewers expect a plain 3D volume for one channel
    if volume.ndim not in (3, 4):
        raise InputError(f"write_nifti: expected [i,j,k] or [i,j,k,c], got shape {volume.shape}")
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError(f"write_nifti: affine must be 4x4, got {affine.shape}")
    np_dtype, scale = _NIFTI_DTYPES[dtype]
    if scale is None:
        data = volume.astype(np_dtype)
    else:
        data = np.round(np.clip(np.nan_to_num(volume.astype(np.float64)), 0.0, 1.0) * scale).astype(np_dtype)
    img = nib.Nifti1Image(data, affine)
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    img.header.set_xyzt_units("mm", "sec")
    if scale is not None:
        img.header.set_slope_inter(1.0 / scale, 0.0)
    else:
        img.header.set_slope_inter(1.0, 0.0)
    atomic_write_bytes(path, _nifti_bytes(img, path))


def _nifti_bytes(img, path):
    """Serialise a NIfTI image (gzip when the name asks for it) to bytes."""
    import gzip
    import io

    buf = io.BytesIO()
    file_map = img.make_file_map({"image": buf, "header": buf})
    img.to_file_map(file_map)
    raw = buf.getvalue()
    if path.lower().endswith(".gz"):
        return gzip.compress(raw, compresslevel=6, mtime=0)
    return raw


def to_unit_range(x):
    """Network range [-1, 1] -> file range [0, 1], clipped: what every written volume holds."""
    return np.clip((np.asarray(x, np.float32) + 1) / 2, 0, 1)


def from_unit_range(x):
    """File range [0, 1] -> network range [-1, 1] (NumPy arrays and tensors alike): what every network input holds."""
    return x * 2 - 1
