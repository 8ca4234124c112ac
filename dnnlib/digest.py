"""The one sha256 of bytes, a file or a folder: pinned downloads, dataset source and record checksums and cache keys
all use it."""

import hashlib
import os

CHUNK = 1 << 20  # bytes read at a time: memory stays flat for files of any size


def sha256_path(path, names=False):
    """Hex sha256 of a file's bytes, or of every file under a folder (a DICOM series, a SavedModel) in sorted
    order. names: also hash each file's path relative to the folder, so a renamed file changes the digest (cache
    keys); without it the digest is of the content alone (the checksums datasets record)."""
    h = hashlib.sha256()
    paths = [path]
    if os.path.isdir(path):
        paths = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs)
    for p in paths:
        if names and p != path:
            h.update(os.path.relpath(p, path).encode())
        with open(p, "rb") as f:
            while block := f.read(CHUNK):
                h.update(block)
    return h.hexdigest()


def sha256_bytes(data):
    """Hex sha256 of bytes in memory (a record's stored volume)."""
    return hashlib.sha256(data).hexdigest()
