"""What a folder holds, judged from its files alone: a dataset, a training run or network, scans, or none of these.

The front ends use it to turn "no such dataset" into a hint when a folder was given to the wrong flag.
"""

import os

from volumes.manifest import MANIFEST_NAME
from volumes.volume_io import VOLUME_SUFFIXES, has_suffix

# Files that only a run directory, a checkpoint folder or an exported generator has.
_NETWORK_MARKERS = ("checkpoints", "training_options.json", "saved_model.pb", "checkpoint",
                    os.path.join("generator", "saved_model.pb"))  # a snapshot folder or a shipped network


def _holds_scans(root, max_depth=2):
    """True when a scan file (NIfTI, MGZ, MHA, NRRD, DICOM .dcm/.ima) lies at most max_depth folders below root;
    stops at the first one."""
    for d, subdirs, files in os.walk(root):
        depth = os.path.relpath(d, root).count(os.sep) + (d != root)
        if depth >= max_depth:
            subdirs.clear()
        for f in files:
            if has_suffix(f, VOLUME_SUFFIXES + (".ima",)):
                return True
    return False


def folder_kind(path):
    """'network' (run directory, checkpoints, SavedModel), 'dataset', 'scans', or None (not a folder, or none)."""
    if not path:
        return None
    path = os.fspath(path)
    if not os.path.isdir(path):
        return None
    if any(os.path.exists(os.path.join(path, m)) for m in _NETWORK_MARKERS):
        return "network"  # checked first: a run directory also keeps a copy of its dataset.json
    if os.path.isfile(os.path.join(path, MANIFEST_NAME)):
        return "dataset"
    if _holds_scans(path):
        return "scans"
    return None
