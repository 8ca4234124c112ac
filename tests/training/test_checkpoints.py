"""training/checkpoints.py: the files on disk choose the checkpoint, newest intact first; unreadable ones skipped."""

import os

import numpy as np
import pytest
import tensorflow as tf

from training.checkpoints import intact_checkpoints, latest_intact_checkpoint, read_first_readable

SIZE = 256  # values per variable: a data shard large enough that truncating it loses whole tensors


def _variables(value=0.0):
    return dict(a=tf.Variable(np.full([SIZE], value, np.float32)), b=tf.Variable(np.full([3], value, np.float32)))


def _save(ckpt_dir, numbers):
    """ckpt-N for each N, holding the value N in every variable."""
    os.makedirs(ckpt_dir, exist_ok=True)
    for n in numbers:
        tf.train.Checkpoint(**_variables(float(n))).write(os.path.join(ckpt_dir, f"ckpt-{n}"))


def _data_shard(ckpt_dir, n):
    (name,) = [f for f in os.listdir(ckpt_dir) if f.startswith(f"ckpt-{n}.data-")]
    return os.path.join(ckpt_dir, name)


def _state_file(text):
    def damage(ckpt_dir):
        with open(os.path.join(ckpt_dir, "checkpoint"), "w") as f:
            f.write(text)

    return damage


def _remove_index(n):
    return lambda ckpt_dir: os.remove(os.path.join(ckpt_dir, f"ckpt-{n}.index"))


def _remove_data(n):
    return lambda ckpt_dir: os.remove(_data_shard(ckpt_dir, n))


def _truncate_data(n, keep):
    def damage(ckpt_dir):
        path = _data_shard(ckpt_dir, n)
        with open(path, "r+b") as f:
            f.truncate(int(os.path.getsize(path) * keep))

    return damage


# (saved checkpoint numbers, damage done, intact numbers newest first, number read by read_first_readable)
CASES = {
    "state file empty": ([1, 2, 3], _state_file(""), [3, 2, 1], 3),
    "state file garbage": ([1, 2, 3], _state_file("\x00not a checkpoint state {"), [3, 2, 1], 3),
    "state file names an older one": ([1, 2, 3], _state_file('model_checkpoint_path: "ckpt-1"\n'), [3, 2, 1], 3),
    "state file names a missing one": ([1, 2], _state_file('model_checkpoint_path: "ckpt-9"\n'), [2, 1], 2),
    "newest index missing": ([1, 2, 3], _remove_index(3), [2, 1], 2),
    "newest data shard missing": ([1, 2, 3], _remove_data(3), [2, 1], 2),
    "newest data shard empty": ([1, 2, 3], _truncate_data(3, 0.0), [2, 1], 2),
    # Present and non-empty, so it looks intact on disk; only reading it shows the damage.
    "newest data shard truncated": ([1, 2, 3], _truncate_data(3, 1 / 3), [3, 2, 1], 2),
    "older one damaged": ([1, 2, 3], _remove_data(2), [3, 1], 3),
    "no checkpoints": ([], None, [], None),
    "only unrelated files": ([], _state_file('model_checkpoint_path: "ckpt-1"\n'), [], None),
}


@pytest.mark.parametrize("saved,damage,intact,read", list(CASES.values()), ids=list(CASES))
def test_newest_intact_checkpoint_is_chosen(tmp_path, saved, damage, intact, read):
    ckpt_dir = str(tmp_path / "checkpoints")
    _save(ckpt_dir, saved)
    os.makedirs(ckpt_dir, exist_ok=True)
    if damage is not None:
        damage(ckpt_dir)

    found = intact_checkpoints(ckpt_dir)
    assert found == [os.path.join(ckpt_dir, f"ckpt-{n}") for n in intact]
    assert latest_intact_checkpoint(ckpt_dir) == (found[0] if found else None)

    variables = _variables()
    ckpt = tf.train.Checkpoint(**variables)
    if read is None:
        with pytest.raises(ValueError, match="no checkpoint to read"):
            read_first_readable(lambda p: ckpt.read(p).assert_existing_objects_matched(), found)
        return
    prefix, errors = read_first_readable(lambda p: ckpt.read(p).assert_existing_objects_matched(), found)
    assert prefix == os.path.join(ckpt_dir, f"ckpt-{read}")
    for v in variables.values():
        np.testing.assert_array_equal(v.numpy(), float(read))
    skipped = [n for n in intact if n > read]
    assert len(errors) == len(skipped)
    for n, error in zip(skipped, errors, strict=True):
        assert error.startswith(os.path.join(ckpt_dir, f"ckpt-{n}") + ": ")


def test_missing_directory_has_no_checkpoints(tmp_path):
    assert intact_checkpoints(str(tmp_path / "nowhere")) == []
    assert latest_intact_checkpoint(str(tmp_path / "nowhere")) is None


def test_no_readable_checkpoint_names_the_first_error(tmp_path):
    ckpt_dir = str(tmp_path / "checkpoints")
    _save(ckpt_dir, [1, 2])
    for n in (1, 2):
        _truncate_data(n, 1 / 3)(ckpt_dir)
    ckpt = tf.train.Checkpoint(**_variables())
    with pytest.raises(ValueError, match=r"no readable checkpoint \(.*ckpt-2: "):
        read_first_readable(lambda p: ckpt.read(p).assert_existing_objects_matched(), intact_checkpoints(ckpt_dir))
