"""The one home for a training run's files, used by resume and by every loader.

A run folder results/NNNNN-<desc>/ holds training_options.json (written before the first step), run.json (what
the run learned: built network kwargs, shards checked), dataset.json (a copy of its data's manifest), log.txt,
TensorBoard events, snapshots/ and checkpoints/ckpt-N. A user names a run's weights in one of three ways: the
run folder (its newest intact checkpoint), its checkpoints/ folder (the same), or one checkpoint prefix
<run>/checkpoints/ckpt-N. Which checkpoint is intact and how a torn one is skipped is training/checkpoints.py.
"""

import json
import os

from dnnlib import EasyDict
from dnnlib.errors import InputError
from training.checkpoints import intact_checkpoints
from volumes.manifest import MANIFEST_NAME

OPTIONS_NAME = "training_options.json"
RECORD_NAME = "run.json"
MANIFEST_COPY_NAME = MANIFEST_NAME
CHECKPOINTS_NAME = "checkpoints"
SNAPSHOTS_NAME = "snapshots"
LOG_NAME = "log.txt"


def is_run_dir(path):
    """A training run's folder: it holds the run's options (written before the first step)."""
    if not isinstance(path, str | os.PathLike):
        return False
    return os.path.isdir(path) and os.path.isfile(os.path.join(path, OPTIONS_NAME))


def checkpoints_dir(run_dir):
    return os.path.join(run_dir, CHECKPOINTS_NAME)


def snapshots_dir(run_dir):
    return os.path.join(run_dir, SNAPSHOTS_NAME)


def is_checkpoint_prefix(path):
    return os.path.isfile(os.fspath(path) + ".index")


def run_of_checkpoint(prefix):
    """The run folder of a checkpoint prefix <run>/checkpoints/ckpt-N."""
    return os.path.dirname(os.path.dirname(os.path.abspath(prefix)))


def older_checkpoints(prefix):
    """The intact checkpoints beside prefix other than prefix itself, newest first: where a torn one falls back."""
    return [p for p in intact_checkpoints(os.path.dirname(prefix)) if os.path.abspath(p) != os.path.abspath(prefix)]


def resolve_resume(path):
    """(run_dir, checkpoint prefix) to resume from, given a run directory, its checkpoints/ or a ckpt-N prefix."""
    path = os.path.abspath(os.fspath(path))
    if is_checkpoint_prefix(path):
        return run_of_checkpoint(path), path
    if os.path.isdir(path):
        run_dir = path if os.path.isdir(checkpoints_dir(path)) else os.path.dirname(path)
        found = intact_checkpoints(checkpoints_dir(run_dir))
        if not found:
            raise FileNotFoundError(f"{path}: no checkpoint in {checkpoints_dir(run_dir)} to resume from")
        return run_dir, found[0]
    raise FileNotFoundError(f"{path}: not a run directory or a checkpoint prefix (<run>/checkpoints/ckpt-N) "
                            "to resume from")


def checkpoints_to_load(path):
    """(run_dir, checkpoint prefixes to try in order) for a run folder, its checkpoints/ folder or a ckpt-N prefix;
    None when path is none of these (a SavedModel, a shipped name: the loader tells)."""
    if is_run_dir(path):
        candidates = intact_checkpoints(checkpoints_dir(path))
        if not candidates:
            raise FileNotFoundError(f"{path}: run directory has no checkpoint in {checkpoints_dir(path)}")
        return os.fspath(path), candidates
    if is_checkpoint_prefix(path):
        run_dir = run_of_checkpoint(path)
        if not os.path.isfile(os.path.join(run_dir, OPTIONS_NAME)):
            raise FileNotFoundError(f"{path}: checkpoint found but {run_dir}/{OPTIONS_NAME} is missing "
                                    f"(a checkpoint prefix must sit in <run>/{CHECKPOINTS_NAME}/)")
        return run_dir, [os.fspath(path)]
    parent = os.path.dirname(os.path.abspath(path))
    if intact_checkpoints(path) and is_run_dir(parent):  # <run>/checkpoints itself: its checkpoints, newest first
        return parent, intact_checkpoints(path)
    return None


def read_json(path, what):
    """An EasyDict from a JSON file this project wrote; errors name the file and what it should have held."""
    try:
        with open(path) as f:
            return EasyDict.from_obj(json.load(f))
    except OSError as e:
        raise type(e)(f"{path}: cannot read {what}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise InputError(f"{path}: {what} is not valid JSON ({e})") from None


def load_run_options(run_dir):
    """The resolved options a run was started with (its training_options.json)."""
    path = os.path.join(run_dir, OPTIONS_NAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} is missing; cannot tell how the run in {run_dir} was configured")
    try:
        return EasyDict.load_json(path)
    except ValueError as e:
        raise InputError(f"{path}: not valid JSON ({e})") from None


def load_run_record(run_dir):
    """The run's run.json, or {} when it has none yet."""
    path = os.path.join(run_dir, RECORD_NAME)
    return EasyDict.load_json(path) if os.path.isfile(path) else EasyDict()


def load_manifest_copy(run_dir):
    """The copy of the data's manifest a run keeps (dataset.json), or None when it has none."""
    path = os.path.join(run_dir, MANIFEST_COPY_NAME)
    return read_json(path, "dataset manifest") if os.path.isfile(path) else None


def resumed_architecture(run_dir):
    """G/D kwargs as built, img_shape and c_dim of the run a checkpoint belongs to.

    run.json records the kwargs as built; runs without it saved them in training_options.json instead.
    """
    before = load_run_options(run_dir)
    record = load_run_record(run_dir)
    before.update({k: record[k] for k in ("G_kwargs", "D_kwargs") if k in record})
    return before
