"""Atomic file and directory writes (nothing half-written is ever left under the final name), output permissions, and
the rules that keep an output folder from ever replacing something this project did not write."""

import contextlib
import json
import os
import shutil
import socket
import tempfile

# Every folder atomic_output_dir finishes carries this file; only such folders (or empty ones) are ever replaced.
OUTPUT_MARKER = ".stylegan3d-output"
# Outputs written before the marker existed are recognised by their own record file.
_LEGACY_RECORDS = ("generation.json", "projection.json", os.path.join("assets", "generator.json"))
_LEGACY_DATASET_FORMAT_PREFIX = "stylegan3d-"


def current_umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data):
    """Write bytes to path via a temporary file in the same folder, fsync and an atomic rename."""
    path = os.path.abspath(os.fspath(path))
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        # mkstemp makes 0600; the result is an ordinary file that the umask governs.
        os.chmod(tmp, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text):
    atomic_write_bytes(path, text.encode("utf-8"))


def write_record(path, text):
    """Write a record file without losing an earlier, different version: that one is kept as <stem>.<n><ext>.

    Returns the path the earlier version was kept under, or None (no earlier file, or the same content).
    """
    path = os.path.abspath(os.fspath(path))
    kept = None
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return None
        stem, ext = os.path.splitext(path)
        n = 1
        while os.path.exists(f"{stem}.{n}{ext}"):
            n += 1
        kept = f"{stem}.{n}{ext}"
        try:  # the earlier version stays complete under its new name before the new one replaces it
            os.link(path, kept)
        except OSError:
            shutil.copy2(path, kept)
    atomic_write_text(path, text)
    return kept


def share_permissions(root):
    """Give a finished output folder the permissions a plain mkdir/open would have (umask applies).

    Temporary files and folders (mkstemp/mkdtemp) are private (0600/0700); datasets and volumes are
    meant to be read by colleagues and by jobs running as other users.
    """
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for d, subdirs, files in os.walk(root):
        for name in subdirs:
            os.chmod(os.path.join(d, name), 0o777 & ~mask)
        for name in files:
            os.chmod(os.path.join(d, name), 0o666 & ~mask)


def _is_our_dataset(path):
    try:
        with open(os.path.join(path, "dataset.json")) as f:
            return str(json.load(f).get("format", "")).startswith(_LEGACY_DATASET_FORMAT_PREFIX)
    except (OSError, ValueError, AttributeError):
        return False


def written_by_us(path):
    """True for a folder this project wrote (its marker, or a record of ours from before the marker existed)."""
    if os.path.isfile(os.path.join(path, OUTPUT_MARKER)):
        return True
    return any(os.path.isfile(os.path.join(path, r)) for r in _LEGACY_RECORDS) or _is_our_dataset(path)


def _within(inner, outer):
    return os.path.commonpath([inner, outer]) == outer


def check_output_dir(output, inputs=(), overwrite=False):
    """Refuse an output folder whose writing could lose data; return its absolute path.

    Refused: the file system root, the home folder, the current folder; a folder that is, contains or lies inside
    one of `inputs` (files or folders the command reads); an existing folder unless overwrite; and, even with
    overwrite, an existing folder that is neither empty nor written by this project.
    """
    out = os.path.realpath(os.fspath(output))
    protected = {os.path.realpath(os.sep): "the file system root", os.path.realpath(os.path.expanduser("~")):
                 "the home folder", os.path.realpath(os.getcwd()): "the current folder"}
    if out in protected:
        raise ValueError(f"output {output} is {protected[out]}; choose a new folder for the output")
    for inp in inputs:
        real = os.path.realpath(os.fspath(inp))
        if out == real or _within(real, out) or _within(out, real):
            relation = "is" if out == real else ("contains" if _within(real, out) else "lies inside")
            raise ValueError(f"output {output} {relation} the input {inp}; choose an output folder apart from "
                             "the inputs")
    if os.path.lexists(out):
        if not os.path.isdir(out) or os.path.islink(output):
            raise FileExistsError(f"{output} exists and is not a folder; choose a new output folder")
        if not overwrite:
            raise FileExistsError(f"{output} already exists; it is replaced only when overwriting is asked for")
        entries = sorted(os.listdir(out))
        if entries and not written_by_us(out):
            shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
            raise ValueError(f"{output} holds files this project did not write ({shown}); it is never replaced: "
                             "choose a new output folder")
    return out


def _stale_temporaries(parent, name):
    """Temporary folders of earlier runs for `name` whose writer process on this host is gone."""
    prefix = f".tmp-{name}-"
    for entry in os.listdir(parent):
        path = os.path.join(parent, entry)
        if not entry.startswith(prefix) or not os.path.isdir(path) or os.path.islink(path):
            continue
        try:
            with open(os.path.join(path, OUTPUT_MARKER)) as f:
                owner = json.load(f)
        except (OSError, ValueError):
            continue  # not ours to judge
        if owner.get("host") != socket.gethostname() or not isinstance(owner.get("pid"), int):
            continue
        try:
            os.kill(owner["pid"], 0)
        except ProcessLookupError:
            yield path
        except PermissionError:
            pass


@contextlib.contextmanager
def atomic_output_dir(final_dir, overwrite=False, inputs=()):
    """Yield a temporary directory beside final_dir; on success it is renamed to final_dir.

    On any exception the temporary directory is removed and final_dir is untouched. final_dir is checked with
    check_output_dir first (existing folders only with overwrite=True, and only when this project wrote them); it
    is replaced only at the end. The finished folder carries OUTPUT_MARKER. Temporary folders left for the same
    output by a killed earlier run on this host are removed.
    """
    final_dir = check_output_dir(os.path.abspath(final_dir), inputs, overwrite)
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    for stale in _stale_temporaries(parent, os.path.basename(final_dir)):
        shutil.rmtree(stale, ignore_errors=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(final_dir)}-")
    os.chmod(tmp, 0o777 & ~current_umask())
    try:
        with open(os.path.join(tmp, OUTPUT_MARKER), "w") as f:
            json.dump({"writer": "stylegan3d-tf2", "pid": os.getpid(), "host": socket.gethostname()}, f)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(os.path.join(tmp, OUTPUT_MARKER), 0o666 & ~current_umask())
    if os.path.exists(final_dir):
        trash = tmp + ".old"
        os.rename(final_dir, trash)
        os.rename(tmp, final_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final_dir)
