"""Training and bad storage: a corrupt shard is refused before the run folder exists, and a disk that fills during
a checkpoint leaves no partial checkpoint, the last complete one intact and resumable."""

import errno
import os
import subprocess

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.errors import InputError
from tests.utils import fail_save_as_on_a_full_disk, make_tiny_dataset, tiny_options
from training.checkpoints import latest_intact_checkpoint, save_checkpoint


def _damage(path, how):
    data = bytearray(open(path, "rb").read())
    if how == "flipped":
        mid = len(data) // 2
        data[mid : mid + 8] = bytes(b ^ 0xFF for b in data[mid : mid + 8])
    else:
        data = data[: len(data) * 2 // 3]
    open(path, "wb").write(bytes(data))


@pytest.mark.parametrize("how", ["flipped", "truncated"])
def test_corrupt_shard_is_refused_before_the_run_folder_exists(tmp_path, how):
    from training.training_loop import training_loop

    data = make_tiny_dataset(str(tmp_path / "DS"), num=4)
    shard = next(n for n in os.listdir(data) if n.endswith(".tfrecord.gz"))
    _damage(os.path.join(data, shard), how)
    opts = tiny_options(tmp_path, data)
    with pytest.raises(InputError, match=f"{shard}: corrupt shard: record"):
        training_loop(opts)
    assert not os.path.exists(tmp_path / "results") or os.listdir(tmp_path / "results") == []


def test_shard_damaged_during_the_run_stops_with_a_checkpoint_and_one_line(tmp_path):
    """The start's check passed, then a shard was damaged: training saves where it is, stops with an InputError
    naming the dataset and the command that finds the shard, and resumes once the shard is whole again."""
    from training.training_loop import training_loop

    data = make_tiny_dataset(str(tmp_path / "DS"), num=4)
    shard = os.path.join(data, next(n for n in os.listdir(data) if n.endswith(".tfrecord.gz")))
    whole = open(shard, "rb").read()

    def damage_once(cur_nimg, G_ema):
        if cur_nimg == 0:
            _damage(shard, "flipped")

    opts = tiny_options(tmp_path, data, kimg=0.004)
    with pytest.raises(InputError) as error:
        training_loop(opts, tick_callback=damage_once)
    text = str(error.value)
    assert f"{data}: a record could not be read at step 0" in text and "dataset_tool.py info" in text, text
    (run_dir,) = [str(p) for p in (tmp_path / "results").iterdir()]
    assert f"checkpoint {run_dir}" in text and "\n" not in text
    assert "error: " + text in open(os.path.join(run_dir, "log.txt")).read()
    assert latest_intact_checkpoint(os.path.join(run_dir, "checkpoints")).endswith("ckpt-0")
    open(shard, "wb").write(whole)
    result = training_loop(tiny_options(tmp_path, data, kimg=0.004, resume=run_dir))
    assert result.cur_nimg == 4 and result.run_dir == run_dir


def test_a_shard_checked_before_is_skipped_only_while_its_identity_is_unchanged(tmp_path, monkeypatch):
    from volumes.manifest import load_manifest
    from volumes.records import check_shards, shard_identity

    data = make_tiny_dataset(str(tmp_path / "DS"), num=4)
    manifest = load_manifest(data)
    (name,) = manifest.shards
    shard = os.path.join(data, name)
    checked = check_shards(data, manifest)
    assert checked == {name: shard_identity(shard)}
    reads = []
    real = tf.data.TFRecordDataset

    def counted(*args, **kw):
        reads.append(args[0])
        return real(*args, **kw)

    monkeypatch.setattr(tf.data, "TFRecordDataset", counted)
    assert check_shards(data, manifest, checked) == checked and reads == []  # unchanged: not read again
    os.utime(shard)  # touched, same bytes: read again
    assert check_shards(data, manifest, checked) != checked and reads == [shard]
    checked = check_shards(data, manifest)
    _damage(shard, "flipped")  # damaged after the check: its identity changed, so it is read and refused
    with pytest.raises(InputError, match=f"{name}: corrupt shard"):
        check_shards(data, manifest, checked)


@pytest.mark.parametrize("stranger", [False, True])
def test_a_run_stopped_before_its_first_checkpoint_leaves_no_run_folder(tmp_path, stranger):
    """SIGTERM (or any error) after the run folder was made and before anything was trained into it: the folder,
    holding only what every run writes at its start, is removed; a file somebody else put there keeps it whole."""
    from dnnlib.cli import SigtermInterrupt
    from training.training_loop import training_loop

    data = make_tiny_dataset(str(tmp_path / "DS"), num=4)
    results = tmp_path / "results"
    (results / "00007-earlier-run").mkdir(parents=True)  # another run beside it is never touched

    def stop_at_start(cur_nimg, G_ema):
        (run_dir,) = [p for p in results.iterdir() if p.name != "00007-earlier-run"]
        assert {"log.txt", "training_options.json", "run.json", "dataset.json"} <= set(os.listdir(run_dir))
        if stranger:
            (run_dir / "notes.txt").write_text("mine")
        raise SigtermInterrupt("stopped by SIGTERM")

    with pytest.raises(SigtermInterrupt):
        training_loop(tiny_options(tmp_path, data), tick_callback=stop_at_start)
    left = sorted(p.name for p in results.iterdir())
    if stranger:
        (run_dir,) = [results / n for n in left if n != "00007-earlier-run"]
        assert (run_dir / "notes.txt").read_text() == "mine" and (run_dir / "log.txt").exists()
    else:
        assert left == ["00007-earlier-run"]


@pytest.fixture()
def small_disk(tmp_path):
    """A 3 MiB tmpfs (needs root); without it, the disk-full case is simulated by the test below."""
    mount = tmp_path / "disk"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root); test_disk_full_simulated covers the same rule")
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def _checkpoint():
    v = tf.Variable(tf.zeros([256 * 1024]))  # 1 MiB per checkpoint: the third does not fit in 3 MiB
    return v, tf.train.Checkpoint(v=v)


def _assert_clean_disk_full(manager, directory, error):
    assert error.value.errno == errno.ENOSPC
    assert "ckpt-3" in str(error.value) and "ckpt-2" in str(error.value) and "\n" not in str(error.value)
    assert sorted(n for n in os.listdir(directory) if n.startswith("ckpt-")) == [
        "ckpt-1.data-00000-of-00001", "ckpt-1.index", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    latest = latest_intact_checkpoint(directory)
    assert latest.endswith("ckpt-2")
    v, ckpt = _checkpoint()
    ckpt.restore(latest).assert_consumed()
    np.testing.assert_array_equal(v.numpy(), np.full(v.shape, 2.0, np.float32))  # resume gets the last complete


def test_disk_full_during_a_checkpoint_on_a_small_tmpfs(small_disk):
    directory = str(small_disk / "checkpoints")
    v, ckpt = _checkpoint()
    manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=10, checkpoint_name="ckpt")
    for n in (1, 2):
        v.assign(tf.fill(v.shape, float(n)))
        save_checkpoint(manager, n)
    v.assign(tf.fill(v.shape, 3.0))
    with pytest.raises(OSError) as error:
        save_checkpoint(manager, 3)
    _assert_clean_disk_full(manager, directory, error)
    os.remove(os.path.join(directory, "ckpt-1.data-00000-of-00001"))  # space freed: saving works again
    os.remove(os.path.join(directory, "ckpt-1.index"))
    assert save_checkpoint(manager, 3).endswith("ckpt-3")


def test_disk_full_simulated(tmp_path, monkeypatch):
    directory = str(tmp_path / "checkpoints")
    v, ckpt = _checkpoint()
    manager = tf.train.CheckpointManager(ckpt, directory, max_to_keep=10, checkpoint_name="ckpt")
    for n in (1, 2):
        v.assign(tf.fill(v.shape, float(n)))
        save_checkpoint(manager, n)
    real_save = tf.train.CheckpointManager.save

    def save_on_a_full_disk(self, checkpoint_number=None, **kw):
        fail_save_as_on_a_full_disk(directory, checkpoint_number)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_on_a_full_disk)
    with pytest.raises(OSError) as error:
        save_checkpoint(manager, 3)
    _assert_clean_disk_full(manager, directory, error)
    assert not [n for n in os.listdir(directory) if "_temp" in n]
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    assert save_checkpoint(manager, 3).endswith("ckpt-3")
