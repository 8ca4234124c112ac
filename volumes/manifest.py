"""The dataset manifest, dataset.json: the one source of truth for a dataset's geometry, storage and labels.

Written by dataset_tool.py (create, split, demo) next to the TFRecord shards of volumes.records; read by
every stage that needs geometry (training, snapshots, generation, the projector, metrics).
"""

import json
import os

import numpy as np

from dnnlib.easydict import EasyDict
from dnnlib.errors import InputError

MANIFEST_NAME = "dataset.json"
# storage_dtype name -> (NumPy little-endian dtype, full-scale value for [0, 1] data or None when stored as floats);
# volumes/records.py encodes and decodes with it.
STORAGE_DTYPES = {"uint16": ("<u2", 65535.0), "uint8": ("|u1", 255.0), "float16": ("<f2", None)}
FORMAT = "stylegan3d-tfrecord-v1"
_REQUIRED_KEYS = ("format", "shape", "spacing", "affine", "orientation", "mirror_axis", "storage_dtype", "shards")


def load_manifest(dataset_dir):
    """Read and check <dataset_dir>/dataset.json.

    FileNotFoundError when the folder, the manifest or a shard is missing; ValueError when the manifest is invalid.
    """
    dataset_dir = str(dataset_dir)
    path = os.path.join(dataset_dir, MANIFEST_NAME)
    if not os.path.isdir(dataset_dir):
        raise FileNotFoundError(f"{dataset_dir}: dataset folder not found (create one with dataset_tool.py create)")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: missing; {dataset_dir} is not a dataset made by dataset_tool.py")
    try:
        m = EasyDict.load_json(path)
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in _REQUIRED_KEYS if k not in m]
    if missing:
        raise InputError(f"{path}: missing keys {missing}")
    if m.format != FORMAT:
        raise InputError(f"{path}: format {m.format!r} is not {FORMAT!r}")
    if m.storage_dtype not in STORAGE_DTYPES:
        raise InputError(f"{path}: unknown storage_dtype {m.storage_dtype!r}")
    if len(m.shape) != 3 or np.asarray(m.affine).shape != (4, 4):
        raise InputError(f"{path}: shape must have 3 entries and affine must be 4x4")
    check_affine(m.affine, f"{path}: affine")
    for f in m.get("files") or []:
        if isinstance(f, dict) and f.get("affine") is not None:
            check_affine(f["affine"], f"{path}: the affine of record {f.get('index')} ({f.get('path')})")
    check_covariates(m, path)
    spacing = np.asarray(m.spacing, dtype=np.float64)
    if spacing.shape != (3,) or not np.all(np.isfinite(spacing)) or not np.all(spacing > 0):
        raise InputError(f"{path}: spacing {m.spacing} must be three finite positive numbers")
    if not m.shards:
        raise InputError(f"{path}: the dataset has no shards")
    for s in m.shards:
        if not os.path.isfile(os.path.join(dataset_dir, s)):
            raise FileNotFoundError(f"{path}: shard {s} listed but missing from {dataset_dir}")
    m.setdefault("channels", 1)
    m.setdefault("labels", None)
    m.setdefault("compression", "GZIP")
    m.setdefault("synthetic", False)
    return m


def check_affine(affine, what):
    """Refuse an affine that cannot place voxels in the world: not 4x4 numbers, not finite, or singular."""
    try:
        a = np.asarray(affine, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{what} is not a 4x4 matrix of numbers") from None
    if a.shape != (4, 4):
        raise InputError(f"{what} is not a 4x4 matrix (shape {a.shape})")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{what} holds non-finite numbers (NaN or infinity)")
    scale = max(float(np.abs(a[:3, :3]).max()), 1e-300)
    if abs(np.linalg.det(a[:3, :3] / scale)) < 1e-9:
        raise InputError(f"{what} is singular: its 3x3 part maps the grid onto a plane, line or point")
    return a


def check_covariates(m, path):
    """Refuse covariates whose layout is wrong: the description must map names to {"kind": ...}, each record's
    covariates must be {name: value}. Values are not judged here (a text age is legal in a table); what reads them
    as numbers says which one is not."""
    described = m.get("covariates")
    if described is None:
        return
    if not isinstance(described, dict) or not all(isinstance(d, dict) for d in described.values()):
        raise InputError(f"{path}: 'covariates' must map each covariate's name to its description "
                         '({"kind": "continuous" | "categorical", ...})')
    for f in m.get("files") or []:
        if isinstance(f, dict) and f.get("covariates") is not None and not isinstance(f["covariates"], dict):
            raise InputError(f"{path}: the covariates of record {f.get('index')} ({f.get('path')}) must be "
                             "{name: value}")


def label_dim(manifest):
    return int(manifest.labels.c_dim) if manifest.get("labels") else 0


def volume_affine(manifest, index):
    """The world affine of record `index`: its own grid if the manifest lists one, else the shared grid."""
    for f in manifest.get("files") or []:
        if int(f.get("index", -1)) == int(index) and f.get("affine") is not None:
            return np.asarray(f["affine"], dtype=np.float64)
    return np.asarray(manifest.affine, dtype=np.float64)


def write_manifest(out_dir, manifest):
    EasyDict.from_obj(manifest).save_json(os.path.join(out_dir, MANIFEST_NAME))


def mirror_axis_of(affine):
    """The array axis that runs left-right in the world (read from the affine, not assumed)."""
    from volumes.volume_io import orientation_codes

    codes = orientation_codes(affine)
    return next(a for a, c in enumerate(codes) if c in ("L", "R"))


def make_manifest(
    shape,
    spacing,
    affine,
    storage_dtype,
    shards,
    files,
    skipped=(),
    normalisation=None,
    labels=None,
    synthetic=False,
    **extra,
):
    """The dataset.json dict (docs/DESIGN.md). `files` entries need index and shard; extra keys are kept."""
    from volumes.volume_io import orientation_codes

    affine = check_affine(affine, "the dataset's affine")
    manifest = {
        "format": FORMAT,
        "synthetic": bool(synthetic),
        "shape": [int(s) for s in shape],
        "channels": 1,
        "spacing": [float(s) for s in spacing],
        "affine": affine.tolist(),
        "orientation": "".join(orientation_codes(affine)),
        "mirror_axis": mirror_axis_of(affine),
        "storage_dtype": storage_dtype,
        "storage_scale": STORAGE_DTYPES[storage_dtype][1],
        "normalisation": normalisation or {},
        "labels": labels,
        "num_volumes": len(files),
        "shards": list(shards),
        "compression": "GZIP",
        "files": list(files),
        "skipped": list(skipped),
    }
    manifest.update(extra)
    return manifest


def data_fingerprint(manifest):
    """A digest of the stored volumes (their per-record sha256s), so a run can tell when it is given other data."""
    import hashlib

    files = manifest.get("files") or []
    digests = sorted(str(f.get("stored_sha256") or f.get("sha256") or "") for f in files)
    if not any(digests):  # a manifest without per-file digests: fall back to what it does list
        digests = [json.dumps({k: manifest.get(k) for k in ("shards", "num_volumes", "shape")}, sort_keys=True)]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()
