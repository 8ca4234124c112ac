"""The one rule for choosing a checkpoint, shared by training (resume) and every loader.

Checkpoints are found from the files on disk, newest (largest N) first: `<dir>/ckpt-N.index` plus every
`ckpt-N.data-K-of-M` shard it needs. The `checkpoint` state file is not consulted: a kill mid-save, a full disk
or a hand edit can leave it empty, wrong or pointing at a checkpoint whose files are gone. A checkpoint that
exists but cannot be read (a truncated data shard) is skipped when restoring, with the next older one used.
"""

import os
import re

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
