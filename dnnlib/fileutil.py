"""Atomic file and directory writes (nothing half-written is ever left under the final name) and output permissions."""

import contextlib
import os
import shutil
import tempfile


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


@contextlib.contextmanager
def atomic_output_dir(final_dir, overwrite=False):
    """Yield a temporary directory beside final_dir; on success it is renamed to final_dir.

    On any exception the temporary directory is removed and final_dir is untouched.
    An existing final_dir is refused unless overwrite=True (then it is replaced only at the end).
    """
    final_dir = os.path.abspath(final_dir)
    if os.path.exists(final_dir) and not overwrite:
        raise FileExistsError(f"{final_dir} already exists; it is replaced only when overwriting is asked for")
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(final_dir)}-")
    os.chmod(tmp, 0o777 & ~current_umask())
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if os.path.exists(final_dir):
        trash = tmp + ".old"
        os.rename(final_dir, trash)
        os.rename(tmp, final_dir)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(tmp, final_dir)
