"""The one rule for choosing a checkpoint, shared by training (resume) and every loader.

Checkpoints are found from the files on disk, newest (largest N) first: `<dir>/ckpt-N.index` plus every
`ckpt-N.data-K-of-M` shard it needs. The `checkpoint` state file is not consulted: a kill mid-save, a full disk
or a hand edit can leave it empty, wrong or pointing at a checkpoint whose files are gone. A checkpoint that
exists but cannot be read (a truncated data shard) is skipped when restoring, with the next older one used.
"""

import contextlib
import errno
import os
import re
import shutil

from dnnlib.errors import InputError

_INDEX = re.compile(r"^ckpt-(\d+)\.index$")
_DATA = re.compile(r"^ckpt-(\d+)\.data-(\d+)-of-(\d+)$")

# What TensorFlow raises for a checkpoint that is torn, truncated or of another model.
READ_ERRORS = (AssertionError, ValueError, IndexError, KeyError)


def _complete(ckpt_dir, names, n):
    shards = [m for m in (_DATA.match(x) for x in names) if m and int(m.group(1)) == n]
    if not shards:
        return False
    total = int(shards[0].group(3))
    present = {int(m.group(2)) for m in shards if int(m.group(3)) == total}
    return present == set(range(total)) and all(os.path.getsize(os.path.join(ckpt_dir, m.group(0))) > 0
                                                 for m in shards if int(m.group(3)) == total)


def intact_checkpoints(ckpt_dir):
    """Prefixes of the checkpoints in ckpt_dir whose index and data files are all present, newest first."""
    if not os.path.isdir(ckpt_dir):
        return []
    names = os.listdir(ckpt_dir)
    numbers = sorted((int(m.group(1)) for m in (_INDEX.match(x) for x in names) if m), reverse=True)
    return [os.path.join(ckpt_dir, f"ckpt-{n}") for n in numbers if _complete(ckpt_dir, names, n)]


def latest_intact_checkpoint(ckpt_dir):
    """The newest intact checkpoint prefix in ckpt_dir, or None."""
    found = intact_checkpoints(ckpt_dir)
    return found[0] if found else None


def read_first_readable(read, candidates):
    """Call read(prefix) on each candidate in order until one succeeds; return (prefix, errors of those before).

    read must raise one of READ_ERRORS or tf.errors.OpError for an unreadable checkpoint. Raises ValueError
    listing the first error when none can be read.
    """
    import tensorflow as tf

    errors = []
    for prefix in candidates:
        try:
            read(prefix)
            return prefix, errors
        except (tf.errors.OpError, *READ_ERRORS) as e:
            text = str(e).strip()
            errors.append(f"{prefix}: {text.splitlines()[0][:200] if text else type(e).__name__}")
    if not errors:
        raise InputError("no checkpoint to read")
    raise InputError(f"no readable checkpoint ({errors[0]})")


def restore_first_readable(checkpoint, candidates, partial=False):
    """Restore tf.train.Checkpoint `checkpoint` from the first readable of the candidate prefixes (restore with
    fallback); return (prefix read, errors of those before). partial: the files may hold more than checkpoint
    tracks (a training checkpoint read for its generator alone)."""

    def read(prefix):
        status = checkpoint.read(prefix)
        if partial:
            status.expect_partial()
        status.assert_existing_objects_matched()

    return read_first_readable(read, candidates)


def _disk_full(error):
    text = f"{getattr(error, 'message', '')} {error}"
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in text \
        or type(error).__name__ == "ResourceExhaustedError" and "Op:SaveV2" in text


def save_checkpoint(manager, number):
    """manager.save(checkpoint_number=number), leaving nothing partial behind.

    If the save fails (a full disk, a quota, an I/O error), every file and folder this save began (ckpt-N.*,
    ckpt-N_temp/) is removed, so the disk holds what it held before; the previous checkpoints are untouched, and
    the newest intact one stays what a resume and every loader choose. A full disk is raised as OSError(ENOSPC)
    naming the checkpoint and the last complete one (an input error: one line, exit 2); anything else unchanged.
    """
    directory = manager.directory
    before = set(os.listdir(directory)) if os.path.isdir(directory) else set()
    try:
        return manager.save(checkpoint_number=number)
    except Exception as e:
        for name in set(os.listdir(directory)) - before if os.path.isdir(directory) else ():
            if name.startswith((f"ckpt-{number}.", f"ckpt-{number}_temp")):
                path = os.path.join(directory, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
        if not _disk_full(e):
            raise
        last = latest_intact_checkpoint(directory)
        raise OSError(errno.ENOSPC, f"disk full while writing checkpoint ckpt-{number} in {directory}: the partial "
                      f"checkpoint was removed; the last complete one is {last or 'none'} (free space, then "
                      "resume)") from None
