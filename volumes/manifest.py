"""The dataset manifest, dataset.json: the one source of truth for a dataset's geometry, storage and labels.

Written by dataset_tool.py (create, split, demo) next to the TFRecord shards of volumes.records; read by
every stage that needs geometry (training, snapshots, generation, the projector, metrics).
"""

import json
import os

import numpy as np

from dnnlib.easydict import EasyDict
from volumes.records import STORAGE_DTYPES

MANIFEST_NAME = "dataset.json"
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
        raise ValueError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in _REQUIRED_KEYS if k not in m]
    if missing:
        raise ValueError(f"{path}: missing keys {missing}")
    if m.format != FORMAT:
        raise ValueError(f"{path}: format {m.format!r} is not {FORMAT!r}")
    if m.storage_dtype not in STORAGE_DTYPES:
        raise ValueError(f"{path}: unknown storage_dtype {m.storage_dtype!r}")
    if len(m.shape) != 3 or np.asarray(m.affine).shape != (4, 4):
        raise ValueError(f"{path}: shape must have 3 entries and affine must be 4x4")
    if not m.shards:
        raise ValueError(f"{path}: the dataset has no shards")
    for s in m.shards:
        if not os.path.isfile(os.path.join(dataset_dir, s)):
            raise FileNotFoundError(f"{path}: shard {s} listed but missing from {dataset_dir}")
    m.setdefault("channels", 1)
    m.setdefault("labels", None)
    m.setdefault("compression", "GZIP")
    m.setdefault("synthetic", False)
    return m


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

    affine = np.asarray(affine, dtype=np.float64)
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
