"""Resuming a run: what must match (architecture, data), which checkpoint is read (with fallback), and which of the
data's shards need no second read. Where a run's files are and which path names which checkpoint: run_files."""

import os

from dnnlib import EasyDict
from dnnlib.errors import InputError
from training.checkpoints import latest_intact_checkpoint, restore_first_readable
from training.run_files import MANIFEST_COPY_NAME, RECORD_NAME, checkpoints_dir, load_manifest_copy, older_checkpoints
from volumes.manifest import data_fingerprint


def check_resume_compatible(now, before, prefix):
    """Refuse to resume with another architecture or dataset geometry; the message names what differs.

    now, before: dicts with G_kwargs, D_kwargs (as built), img_shape and c_dim of this run and of the checkpoint's.
    """
    problems = []
    for key in ("G_kwargs", "D_kwargs"):
        a, b = _arch(before.get(key, {})), _arch(now[key])
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                problems.append(f"{key}.{k}: checkpoint {a.get(k)!r} vs now {b.get(k)!r}")
    if before.get("img_shape") and list(before["img_shape"]) != list(now["img_shape"]):
        problems.append(f"dataset shape: checkpoint {tuple(before['img_shape'])} vs now {tuple(now['img_shape'])}")
    if before.get("c_dim", 0) != now["c_dim"]:
        problems.append(f"label dimension: checkpoint {before.get('c_dim', 0)} vs now {now['c_dim']}")
    if problems:
        raise InputError(f"cannot resume from {prefix}: the run was trained with a different config or dataset ("
                         + "; ".join(problems[:4]) + "); resume with the same config and a dataset of the same shape")


def _arch(kwargs):
    """Architecture-defining kwargs, flattened; compute dtype is allowed to change on resume, and keys that no
    longer select anything (networks.LEGACY_SYNTHESIS_KWARGS) are left out."""
    from training.networks import LEGACY_SYNTHESIS_KWARGS

    out = {}
    for k, v in dict(kwargs).items():
        if isinstance(v, dict):
            for k2, v2 in _arch(v).items():
                out[f"{k}.{k2}"] = v2
        elif not k.endswith("compute_dtype") and k not in LEGACY_SYNTHESIS_KWARGS:
            out[k] = v
    return out


def check_same_data(manifest, resumed_run, allow_change=False):
    """Refuse to continue a run on other data than it was trained on, unless allowed (then it is only logged)."""
    before = None if allow_change else load_manifest_copy(resumed_run)
    if before is None:
        return
    path = os.path.join(resumed_run, MANIFEST_COPY_NAME)
    if data_fingerprint(before) != data_fingerprint(manifest):
        raise InputError(f"{resumed_run} was trained on other data ({before.get('num_volumes')} volumes listed in "
                         f"{path}) than the dataset given now ({manifest.get('num_volumes')} volumes); continue with "
                         "the same dataset, or allow the data change explicitly")


def continues_in_place(run_dir, prefix):
    """Does resuming from `prefix` continue in run_dir itself? Only from its newest intact checkpoint, and only in a
    folder this run may write: a run shipped under pretrained/ or a read-only folder is continued in a new run
    folder (results/NNNNN-<desc>-resume), so that its files stay as they are."""
    from training import pretrained

    shipped = os.path.commonpath([os.path.realpath(run_dir), os.path.realpath(pretrained.ROOT)]) == \
        os.path.realpath(pretrained.ROOT)
    return is_latest_checkpoint(run_dir, prefix) and not shipped and os.access(run_dir, os.W_OK) and \
        os.access(checkpoints_dir(run_dir), os.W_OK)


def is_latest_checkpoint(run_dir, prefix):
    """Is prefix the newest intact checkpoint of run_dir (resuming from it continues the run's own line)."""
    latest = latest_intact_checkpoint(checkpoints_dir(run_dir))
    return latest is not None and os.path.abspath(latest) == os.path.abspath(prefix)


def restore_checkpoint(ckpt, prefix, log):
    """Restore `prefix`; if it is torn (killed mid-write, truncated), fall back to older intact checkpoints."""
    try:
        found, errors = restore_first_readable(ckpt, [prefix] + older_checkpoints(prefix))
    except ValueError as e:
        raise InputError(f"cannot resume from {prefix}: {e}") from None
    if errors:
        log(f"warning: checkpoint {errors[0]} is unreadable; resumed from {found} instead")
    return found


def checked_shards(opts):
    """{shard: identity} the resumed run's record says were read whole from this same dataset folder, else {}."""
    if not opts.get("resume"):
        return {}
    try:
        checked = EasyDict.load_json(os.path.join(opts.resume_run, RECORD_NAME)).get("shards_checked") or {}
    except (OSError, ValueError):
        return {}
    same_data = isinstance(checked, dict) and checked.get("data") == os.path.realpath(opts.data)
    shards = checked.get("shards") if same_data else None
    return shards if isinstance(shards, dict) else {}  # a hand-edited record only costs the re-read
