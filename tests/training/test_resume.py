"""Exact resume: N steps in one go == N/2 + resume + N/2; torn checkpoints fall back; other configs refused."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from dnnlib import EasyDict
from tests.utils import REPO, fail_save_as_on_a_full_disk, make_tiny_dataset, tiny_options

# demo-tiny, batch 2: 4 steps in all, a tick (and checkpoint) every 2 steps. Deterministic data order.
ARGS = dict(kimg_per_tick=0.004, snap=1, samples=1, data_shuffle=False)


def _weights(prefix):
    """Every variable of a checkpoint (networks, Adam slots, EMA, counters, RNG state) by name."""
    reader = tf.train.load_checkpoint(prefix)
    names = [n for n in reader.get_variable_to_shape_map() if "OBJECT_GRAPH" not in n]
    return {n: reader.get_tensor(n) for n in names}


def _assert_same(a, b):
    assert set(a) == set(b)
    for n in a:
        np.testing.assert_array_equal(a[n], b[n], err_msg=n)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    from training.training_loop import training_loop

    tmp = tmp_path_factory.mktemp("resume")
    data = make_tiny_dataset(str(tmp / "data"), num=4)
    one_go = training_loop(tiny_options(tmp / "a", data, kimg=0.008, **ARGS))
    half = training_loop(tiny_options(tmp / "b", data, kimg=0.004, **ARGS))
    assert half.cur_nimg == 4
    record = EasyDict.load_json(os.path.join(half.run_dir, "run.json"))  # before the resume rewrites it
    assert record.resumed_from is None
    # With a metric: its JSON line must name the step, kimg and snapshot (test_resume_keeps_earlier_snapshots).
    resumed = training_loop(tiny_options(tmp / "b", data, kimg=0.008, resume=half.run_dir,
                                         metrics=["mmd_linear_unbiased"], metric_num=2, **ARGS))
    return one_go, half, resumed, data, tmp


def test_n_steps_equal_half_resume_half(runs):
    one_go, half, resumed, data, tmp = runs
    assert resumed.run_dir == half.run_dir  # continued in place
    a = _weights(tf.train.latest_checkpoint(os.path.join(one_go.run_dir, "checkpoints")))
    b = _weights(tf.train.latest_checkpoint(os.path.join(resumed.run_dir, "checkpoints")))
    assert int(a["state/cur_nimg/.ATTRIBUTES/VARIABLE_VALUE"]) == 8
    _assert_same(a, b)
    log = open(os.path.join(half.run_dir, "log.txt")).read()
    assert "Resumed from" in log and "kimg 0.004" in log
    # The run record says where this session started from; the options stay the options given.
    record = EasyDict.load_json(os.path.join(half.run_dir, "run.json"))
    assert record.resumed_from.endswith("ckpt-2") and record.run_dir == half.run_dir
    options = EasyDict.load_json(os.path.join(half.run_dir, "training_options.json"))
    assert options.resume.endswith("ckpt-2") and "run_dir" not in options and options.total_kimg == 0.008
    # The shards the first session read whole are recorded; the resume is given them, so it skips re-reading them.
    from training.resume import checked_shards as _checked_shards
    from volumes.records import shard_identity

    shards = {n: shard_identity(os.path.join(data, n)) for n in os.listdir(data) if n.endswith(".tfrecord.gz")}
    assert record.shards_checked == {"data": os.path.realpath(data), "shards": shards}
    assert _checked_shards(tiny_options(tmp, data, resume=half.run_dir)) == shards
    assert _checked_shards(tiny_options(tmp, data)) == {}
    # A garbled record (hand-edited) means only that the shards are read again, not a traceback.
    path = os.path.join(half.run_dir, "run.json")
    saved = open(path).read()
    try:
        for garbled in ({"data": os.path.realpath(data), "shards": "x"}, ["x"], "x"):
            json.dump({**json.loads(saved), "shards_checked": garbled}, open(path, "w"))
            assert _checked_shards(tiny_options(tmp, data, resume=half.run_dir)) == {}
    finally:
        open(path, "w").write(saved)


def test_resume_keeps_earlier_snapshots_and_metric_lines_say_where_they_are(runs):
    """Every snapshot here is below 1 kimg: named by step, the resumed session's is a new folder beside the first's."""
    import nibabel as nib

    from metrics.metric_main import checkpoint_position

    one_go, half, _, _, _ = runs
    snaps = os.path.join(half.run_dir, "snapshots")
    assert sorted(os.listdir(snaps)) == ["step00000002-kimg00000.004", "step00000004-kimg00000.008"]
    # The first session's snapshot is intact: the same volume as the uninterrupted run's at step 2.
    for run in (half, one_go):
        assert os.path.isdir(os.path.join(run.run_dir, "snapshots", "step00000002-kimg00000.004", "generator"))
    vol = [nib.load(os.path.join(run.run_dir, "snapshots", "step00000002-kimg00000.004", "fakes_00.nii.gz"))
           .get_fdata() for run in (half, one_go)]
    np.testing.assert_allclose(vol[0], vol[1], atol=1e-6)
    lines = [json.loads(x) for x in open(os.path.join(half.run_dir, "metric-mmd_linear_unbiased.jsonl"))]
    assert [(x["step"], x["kimg"], x["snapshot"]) for x in lines] == [
        (4, 0.008, os.path.join(snaps, "step00000004-kimg00000.008"))]
    ckpt = os.path.join(half.run_dir, "checkpoints", "ckpt-2")
    assert checkpoint_position(ckpt) == {"step": 2, "kimg": 0.004}
    assert checkpoint_position(os.path.join(half.run_dir, "snapshots")) == {}


def test_torn_checkpoint_falls_back_to_previous(runs):
    """A kill during a save leaves a torn newest checkpoint: resume uses the previous one and ends the same."""
    from training.training_loop import training_loop

    one_go, half, _, data, tmp = runs
    ckpt_dir = os.path.join(half.run_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(ckpt_dir)
    expected = _weights(latest)
    for f in os.listdir(ckpt_dir):
        if f.startswith(os.path.basename(latest) + ".data"):
            path = os.path.join(ckpt_dir, f)
            with open(path, "r+b") as fh:
                fh.truncate(os.path.getsize(path) // 3)
    result = training_loop(tiny_options(tmp / "b", data, kimg=0.008, resume=half.run_dir, **ARGS))
    log = open(os.path.join(half.run_dir, "log.txt")).read()
    assert "is unreadable" in log and "resumed from" in log
    _assert_same(expected, _weights(tf.train.latest_checkpoint(os.path.join(result.run_dir, "checkpoints"))))

    # A lost index file (killed before it was written): the previous intact checkpoint is picked up.
    os.remove(latest + ".index")
    from training.run_files import resolve_resume

    _, prefix = resolve_resume(half.run_dir)
    assert prefix != latest and os.path.isfile(prefix + ".index")


# The child trains 4 steps with a checkpoint every 2 and SIGKILLs itself inside the second save: after TF has
# written the new checkpoint's files, before CheckpointManager records it as the latest.
_KILLED_CHILD = textwrap.dedent("""
    import os, signal, sys
    from tensorflow.python.checkpoint import checkpoint_management as cm
    from tests.training.test_resume import ARGS
    from tests.utils import tiny_options
    from training.training_loop import training_loop

    saves = []
    record_state = cm.CheckpointManager._record_state

    def record_then_die(self):
        saves.append(1)
        if len(saves) == 3:  # _record_state runs twice per save: this is the second save's first
            os.kill(os.getpid(), signal.SIGKILL)
        return record_state(self)

    cm.CheckpointManager._record_state = record_then_die
    from pathlib import Path
    training_loop(tiny_options(Path(sys.argv[1]), sys.argv[2], kimg=0.008, **ARGS))
""")


def test_sigkill_during_checkpoint_write_resumes_from_the_newest_complete_checkpoint(runs):
    """The newest checkpoint's files are complete but the state file never named it: the files on disk decide."""
    from training.checkpoints import latest_intact_checkpoint
    from training.training_loop import training_loop

    one_go, _, _, data, tmp = runs
    from tests.utils import REPO as root
    proc = subprocess.run([sys.executable, "-c", _KILLED_CHILD, str(tmp / "k"), data], cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    (run_dir,) = [str(p) for p in (tmp / "k" / "results").iterdir()]
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    assert any(f.startswith("ckpt-4.") for f in os.listdir(ckpt_dir))  # written, but never recorded
    assert tf.train.latest_checkpoint(ckpt_dir).endswith("ckpt-2")  # the state file is stale
    assert latest_intact_checkpoint(ckpt_dir).endswith("ckpt-4")
    result = training_loop(tiny_options(tmp / "k", data, kimg=0.008, resume=run_dir, **ARGS))
    assert result.cur_nimg == 8 and "Resumed from" in open(os.path.join(run_dir, "log.txt")).read()
    _assert_same(_weights(latest_intact_checkpoint(os.path.join(one_go.run_dir, "checkpoints"))),
                 _weights(latest_intact_checkpoint(ckpt_dir)))


def test_disk_full_at_a_checkpoint_mid_run_then_resume_ends_as_the_uninterrupted_run(runs, monkeypatch):
    """The disk fills while the second checkpoint is written: training stops with one ENOSPC line naming the last
    complete checkpoint, nothing partial is left, and a resume (space freed) ends with the uninterrupted run's
    weights."""
    import errno

    from training.checkpoints import latest_intact_checkpoint
    from training.training_loop import training_loop

    one_go, _, _, data, tmp = runs
    real_save = tf.train.CheckpointManager.save

    def save_until_the_disk_fills(self, checkpoint_number=None, **kw):
        if checkpoint_number < 4:
            return real_save(self, checkpoint_number=checkpoint_number, **kw)
        fail_save_as_on_a_full_disk(self.directory, checkpoint_number)

    monkeypatch.setattr(tf.train.CheckpointManager, "save", save_until_the_disk_fills)
    with pytest.raises(OSError) as error:
        training_loop(tiny_options(tmp / "full", data, kimg=0.008, **ARGS))
    assert error.value.errno == errno.ENOSPC and "\n" not in str(error.value)
    assert "ckpt-4" in str(error.value) and "ckpt-2" in str(error.value)
    (run_dir,) = [str(p) for p in (tmp / "full" / "results").iterdir()]
    ckpt_dir = os.path.join(run_dir, "checkpoints")
    assert sorted(os.listdir(ckpt_dir)) == ["checkpoint", "ckpt-2.data-00000-of-00001", "ckpt-2.index"]
    monkeypatch.setattr(tf.train.CheckpointManager, "save", real_save)
    result = training_loop(tiny_options(tmp / "full", data, kimg=0.008, resume=run_dir, **ARGS))
    assert result.cur_nimg == 8
    _assert_same(_weights(latest_intact_checkpoint(os.path.join(one_go.run_dir, "checkpoints"))),
                 _weights(latest_intact_checkpoint(ckpt_dir)))


def test_resume_with_other_architecture_is_refused(runs):
    from training.training_loop import training_loop

    one_go, _, _, data, tmp = runs
    opts = tiny_options(tmp / "c", data, kimg=0.008, resume=one_go.run_dir, **ARGS)
    opts.G_kwargs.w_dim = 8
    opts.G_kwargs.mapping_kwargs.layer_features = 8
    with pytest.raises(ValueError, match="cannot resume from .*different config or dataset.*w_dim"):
        training_loop(opts)


def test_resume_of_missing_run_is_refused(tmp_path):
    from training.run_files import resolve_resume

    with pytest.raises(FileNotFoundError, match="not a run directory or a checkpoint prefix"):
        resolve_resume(str(tmp_path / "nothing"))
    os.makedirs(tmp_path / "run" / "checkpoints")
    with pytest.raises(FileNotFoundError, match="no checkpoint in"):
        resolve_resume(str(tmp_path / "run"))


def test_the_shipped_demo_run_can_be_resumed_by_todays_networks():
    # The shipped run (pretrained/demo/run) was trained by an older commit: its recorded kwargs hold keys that no
    # longer select anything. Resuming it must pass the architecture check against the demo config as built now.
    from training.configs import build_networks
    from training.resume import check_resume_compatible
    from training.run_files import resumed_architecture

    run = os.path.join(REPO, "pretrained", "demo", "run")
    before = resumed_architecture(run)
    assert "fused_modconv" in before["G_kwargs"]["synthesis_kwargs"]  # what made the check fail
    G, D = build_networks("demo")
    now = dict(G_kwargs=json.loads(json.dumps(G.get_config())), D_kwargs=json.loads(json.dumps(D.get_config())),
               img_shape=[40, 48, 56], c_dim=0)
    check_resume_compatible(now, before, run)
    other = json.loads(json.dumps(now))
    other["G_kwargs"]["synthesis_kwargs"]["fmap_max"] = 32
    with pytest.raises(ValueError, match="fmap_max"):
        check_resume_compatible(other, before, run)


def _files(folder):
    return {os.path.relpath(os.path.join(d, f), folder): os.stat(os.path.join(d, f)).st_mtime_ns
            for d, _, fs in os.walk(folder) for f in fs}


def test_a_shipped_run_is_continued_in_a_new_run_folder_and_left_as_it_was(runs, monkeypatch):
    from training import pretrained
    from training.training_loop import training_loop

    _, half, _, data, tmp = runs
    shipped = os.path.dirname(half.run_dir)
    monkeypatch.setattr(pretrained, "ROOT", shipped)  # as if the run lay in pretrained/
    before = _files(half.run_dir)
    out = tmp / "continued"
    res = training_loop(tiny_options(out, data, kimg=0.012, resume=half.run_dir, **ARGS))
    assert os.path.dirname(res.run_dir) == str(out / "results") and res.run_dir.endswith("-resume")
    assert _files(half.run_dir) == before
    ckpts = sorted(f for f in os.listdir(os.path.join(res.run_dir, "checkpoints")) if f.endswith(".index"))
    assert ckpts[-1] == "ckpt-6.index"  # continued from the run's newest intact checkpoint to step 6
    assert "Resumed from" in open(os.path.join(res.run_dir, "log.txt")).read()


@pytest.mark.parametrize("where, writable, in_place", [
    ("own", True, True), ("own", False, False), ("shipped", True, False)])
def test_where_a_resume_continues(runs, monkeypatch, where, writable, in_place):
    from training import pretrained, resume
    from training.checkpoints import latest_intact_checkpoint

    half = runs[1]
    latest = latest_intact_checkpoint(os.path.join(half.run_dir, "checkpoints"))
    monkeypatch.setattr(pretrained, "ROOT", os.path.dirname(half.run_dir) if where == "shipped" else "/nonexistent")
    monkeypatch.setattr(os, "access", lambda path, mode: writable)
    assert resume.continues_in_place(half.run_dir, latest) is in_place
    assert not resume.continues_in_place(half.run_dir, os.path.join(os.path.dirname(latest), "ckpt-1"))
