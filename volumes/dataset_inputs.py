"""Finding the scans a user points at: a folder (searched recursively), a glob, or a list file.

A folder that holds DICOM files is one input (a series), not many. MHD headers are inputs, their .raw
data files are not.
"""

import glob
import os

from dnnlib.errors import InputError
from volumes.volume_io import VOLUME_SUFFIXES, has_suffix

LIST_SUFFIXES = (".txt", ".lst", ".list")
_SKIP_SUFFIXES = (".raw", ".zraw", ".json", ".csv", ".txt", ".md", ".png", ".jpg")


def _looks_dicom(path):
    if path.lower().endswith((".dcm", ".ima")):
        return True
    if os.path.splitext(path)[1]:  # other extensions are not DICOM
        return False
    try:
        with open(path, "rb") as f:
            f.seek(128)
            return f.read(4) == b"DICM"
    except OSError:
        return False


def find_in_folder(root):
    """Volume files and DICOM series folders under root (sorted, deterministic)."""
    found = []
    for d, subdirs, files in os.walk(root):
        subdirs.sort()
        files = sorted(f for f in files if not f.startswith("."))
        dicom = [f for f in files if _looks_dicom(os.path.join(d, f))]
        if dicom:
            found.append(d)
        for f in files:
            if f in dicom or has_suffix(f, _SKIP_SUFFIXES):
                continue
            if has_suffix(f, VOLUME_SUFFIXES):
                found.append(os.path.join(d, f))
    return sorted(found)


def _glob_root(spec):
    """The folder part of a glob before its first wildcard."""
    return os.path.dirname(spec.split("*")[0].split("?")[0].split("[")[0]) or "."


def find_inputs(spec):
    """Resolve an input spec: folder, glob pattern or list file (one path per line, relative to the list).

    Returns (paths, root) where root is the folder relative to which label file names are matched.
    """
    spec = str(spec)
    if os.path.isdir(spec):
        paths, root = find_in_folder(spec), spec
        what = f"folder {spec}"
    elif any(ch in spec for ch in "*?["):
        paths = []
        for p in sorted(glob.glob(spec, recursive=True)):
            paths += find_in_folder(p) if os.path.isdir(p) else [p]
        root = _glob_root(spec)
        what = f"pattern {spec}"
    elif os.path.isfile(spec) and has_suffix(spec, LIST_SUFFIXES):
        base = os.path.dirname(os.path.abspath(spec))
        paths = []
        with open(spec) as f:
            for line in f:
                line = line.strip()
                if line and not line.startswith("#"):
                    paths.append(line if os.path.isabs(line) else os.path.join(base, line))
        root, what = base, f"list file {spec}"
    elif os.path.isfile(spec):
        paths, root, what = [spec], os.path.dirname(spec) or ".", spec
    else:
        raise FileNotFoundError(f"{spec}: no such folder, file, list file or matching pattern")
    if not paths:
        raise InputError(
            f"{spec}: {what} holds no images (looked for {', '.join(VOLUME_SUFFIXES)} and DICOM folders)"
        )
    return paths, root


def spec_paths(spec):
    """The paths an input spec itself names, which an output must neither be, contain nor lie inside: the
    folder, the list file, the single file, or the folder a glob searches (unless that is just the current
    folder, where the matched files themselves are what counts)."""
    spec = str(spec)
    if os.path.isdir(spec) or os.path.isfile(spec):
        return [spec]
    if any(ch in spec for ch in "*?["):
        root = _glob_root(spec)
        return [] if os.path.realpath(root) == os.path.realpath(os.getcwd()) else [root]
    return [spec]
