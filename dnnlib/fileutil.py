"""Atomic file and directory writes: nothing half-written is ever left under the final name."""

import contextlib
import os
import shutil
import tempfile

from dnnlib.errors import UserError


def _umask():
    # mkstemp/mkdtemp create owner-only entries; outputs must be readable like any other file.
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path, text):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_output_dir(final_dir, overwrite=False):
    """Yield a temporary directory beside final_dir; on success it is renamed to final_dir.

    On any exception the temporary directory is removed and final_dir is untouched.
    An existing final_dir is refused unless overwrite=True (then it is replaced only at the end).
    """
    final_dir = os.path.abspath(final_dir)
    if os.path.exists(final_dir) and not overwrite:
        raise UserError(f"{final_dir} already exists; pass --overwrite to replace it")
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=parent, prefix=f".tmp-{os.path.basename(final_dir)}-")
    os.chmod(tmp, 0o777 & ~_umask())
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
