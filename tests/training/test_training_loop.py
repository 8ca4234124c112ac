"""The training loop end to end on the demo-tiny config and a tiny dataset made here."""

import copy
import json
import os
import shutil

import numpy as np
import pytest

from dnnlib import EasyDict, UserError
from tests.utils import TINY_SHAPE, make_tiny_dataset, tiny_options


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(str(tmp_path_factory.mktemp("data") / "tiny"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_data):
    from training.training_loop import training_loop

    tmp = tmp_path_factory.mktemp("run")
    opts = tiny_options(tmp, tiny_data)
    given = copy.deepcopy(opts)
    result = training_loop(opts)
    assert opts == given  # the loop leaves its options alone
    return result, opts


def test_run_directory_layout(tiny_run):
    result, _ = tiny_run
    run = result.run_dir
    assert os.path.basename(run).startswith("00000-demo-tiny")
    for name in ("training_options.json", "run.json", "dataset.json", "log.txt"):
        assert os.path.isfile(os.path.join(run, name)), name
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(run))
    ckpts = os.listdir(os.path.join(run, "checkpoints"))
    assert "checkpoint" in ckpts and any(f.endswith(".index") for f in ckpts)
    snap = result.snapshot_dir
    names = os.listdir(snap)
    for name in ("fakes_00.nii.gz", "fakes_01.nii.gz", "fakes.png", "reals.png", "generator"):
        assert name in names, name
    log = open(os.path.join(run, "log.txt")).read()
    assert "tick 1" in log and "sec/kimg" in log and "peak_mem" in log
    assert "Samples (NIfTI + PNG) are in" in log
    # 8 images at batch 2 = 4 steps, ticks every 4 images -> 2 ticks.
    assert result.cur_nimg == 8


def test_options_json_is_the_options_given_and_reruns(tiny_run, capsys):
    from training.training_loop import training_loop

    result, opts = tiny_run
    saved = EasyDict.load_json(os.path.join(result.run_dir, "training_options.json"))
    assert saved == json.loads(json.dumps(opts))  # exactly the resolved options, nothing learnt at run time
    assert "run_dir" not in saved
    assert training_loop(saved, dry_run=True).run_dir is None  # enough to rerun
    assert "dry run: phase Gmain" in capsys.readouterr().out


def test_run_record_holds_what_the_run_learnt(tiny_run):
    import tensorflow as tf

    from training.networks import Discriminator, Generator

    result, opts = tiny_run
    record = EasyDict.load_json(os.path.join(result.run_dir, "run.json"))
    assert record.run_dir == result.run_dir and record.resumed_from is None
    assert record.tensorflow == tf.__version__ and record.num_replicas == 1 and record.devices
    assert record.started[:2] == "20" and record.strategy
    # Every constructor argument of the networks as built, defaults included.
    assert record.G_kwargs == json.loads(json.dumps(Generator(**opts.G_kwargs).get_config()))
    assert record.D_kwargs == json.loads(json.dumps(Discriminator(**opts.D_kwargs).get_config()))


def test_loader_reads_new_and_old_runs(tiny_run, tmp_path):
    """New runs: options + run.json. Older runs: the built kwargs and run_dir inside training_options.json."""
    from training.network_io import load_generator
    from training.run_files import resumed_architecture

    result, _ = tiny_run
    old = str(tmp_path / "old-run")
    shutil.copytree(result.run_dir, old)
    record = EasyDict.load_json(os.path.join(old, "run.json"))
    os.remove(os.path.join(old, "run.json"))
    options = EasyDict.load_json(os.path.join(old, "training_options.json"))
    options.update(run_dir=old, G_kwargs=record.G_kwargs, D_kwargs=record.D_kwargs)
    options.save_json(os.path.join(old, "training_options.json"))
    for run in (result.run_dir, old):
        assert resumed_architecture(run).G_kwargs == record.G_kwargs, run
        assert tuple(load_generator(run).G.img_shape) == TINY_SHAPE, run


def test_loader_reads_the_run(tiny_run):
    from training.network_io import load_generator

    result, _ = tiny_run
    net = load_generator(result.run_dir)
    assert tuple(net.G.img_shape) == TINY_SHAPE
    # The EMA generator of the checkpoint is the one in the snapshot SavedModel.
    snap_net = load_generator(os.path.join(result.snapshot_dir, "generator"))
    for a, b in zip(net.G.variables, snap_net.G.variables, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_fakes_carry_dataset_affine(tiny_run):
    import nibabel as nib

    result, _ = tiny_run
    manifest = json.load(open(os.path.join(result.run_dir, "dataset.json")))
    img = nib.load(os.path.join(result.snapshot_dir, "fakes_00.nii.gz"))
    assert img.shape[:3] == TINY_SHAPE
    np.testing.assert_allclose(img.affine, np.asarray(manifest["affine"]), atol=1e-4)
    data = np.asarray(img.dataobj)
    assert data.min() >= 0.0 and data.max() <= 1.0


def test_tensorboard_tags(tiny_run):
    import tensorflow as tf

    result, _ = tiny_run
    tags = set()
    for f in os.listdir(result.run_dir):
        if f.startswith("events.out"):
            for e in tf.compat.v1.train.summary_iterator(os.path.join(result.run_dir, f)):
                for v in e.summary.value:
                    tags.add(v.tag)
    for tag in ("Loss/G/loss", "Loss/D/loss", "Loss/scores/real", "Loss/scores/fake", "Progress/pl_mean",
                "Progress/lr_G", "Timing/sec_per_kimg", "Images/fakes_mid_slices"):
        assert tag in tags, (tag, sorted(tags))
    # demo-tiny: G reg every 4 steps and D reg every 16: step 0 runs both.
    assert "Loss/pl_penalty" in tags and "Loss/r1_penalty" in tags


def test_dry_run_writes_nothing(tmp_path, tiny_data, capsys):
    from training.training_loop import training_loop

    opts = tiny_options(tmp_path, tiny_data)
    result = training_loop(opts, dry_run=True)
    assert result.run_dir is None
    assert not os.path.exists(tmp_path / "results")
    out = capsys.readouterr().out
    assert "Total" in out and "dry run: phase Gmain" in out


def test_nan_loss_stops_with_step_and_term(tmp_path, tiny_data):
    from training.training_loop import TrainingDiverged, training_loop

    # A learning rate this large blows the weights up within a few steps; with max_skipped_steps=1 the loop stops
    # at the first non-finite step, names the step and the term, and never checkpoints the broken state.
    opts = tiny_options(tmp_path, tiny_data, kimg=0.2, kimg_per_tick=0.1, max_skipped_steps=1)
    opts.G_opt_kwargs.lr = 1e30
    opts.D_opt_kwargs.lr = 1e30
    with pytest.raises(TrainingDiverged, match=r"step \d+ .*phase \w+: .*NaN/Inf") as info:
        training_loop(opts)
    assert not isinstance(info.value, UserError)  # a library error; run_training.py turns it into exit 2
    assert os.listdir(opts.outdir) == []  # stopped before its first checkpoint: the new run folder is removed


def _poison_d_steps(monkeypatch, bad_steps):
    """D phases see NaN reals at the steps (0-based) in bad_steps; the step function itself must skip them."""
    from training import train_step

    real_call = train_step.TrainSteps.__call__

    def call(self, phase, reals, c):
        if phase.startswith("D") and int(self.state.batch_idx.numpy()) in bad_steps:
            reals = reals * float("nan")
        return real_call(self, phase, reals, c)

    monkeypatch.setattr(train_step.TrainSteps, "__call__", call)


def test_nonfinite_step_is_skipped_and_counted(tmp_path, tiny_data, monkeypatch):
    from training.training_loop import training_loop

    # The original's optimiser skipped a non-finite update and trained on: 4 steps in 2 ticks, step 1 poisoned.
    _poison_d_steps(monkeypatch, {1})
    result = training_loop(tiny_options(tmp_path, tiny_data))
    assert result.cur_nimg == 8 and result.skipped_steps == 1 and not result.get("stopped")
    log = open(os.path.join(result.run_dir, "log.txt")).read()
    assert "step 1 (kimg 0.002): phase Dmain: Loss/D/loss" in log and "update skipped, training goes on" in log
    ticks = [line for line in log.splitlines() if line.startswith("tick ")]
    assert ["skipped 1" in t for t in ticks] == [True, False] and "skipped 0" in ticks[1]
    assert "1 step(s) skipped a non-finite update" in log


def test_nonfinite_steps_stop_after_the_limit(tmp_path, tiny_data, monkeypatch):
    from training.training_loop import TrainingDiverged, training_loop

    _poison_d_steps(monkeypatch, {1, 2, 3})
    opts = tiny_options(tmp_path, tiny_data, kimg=0.02, max_skipped_steps=3)
    with pytest.raises(TrainingDiverged, match=r"step 3 .*Dmain.* 3 consecutive step\(s\) skipped"):
        training_loop(opts)


def test_sigterm_finishes_step_checkpoints_and_stops(tmp_path, tiny_data):
    import signal

    from training.training_loop import training_loop

    def send_once(cur_nimg, G_ema):
        if cur_nimg == 0:  # arrives before the first step: the loop must still finish that step
            os.kill(os.getpid(), signal.SIGTERM)

    opts = tiny_options(tmp_path, tiny_data, kimg=0.2, kimg_per_tick=0.1)
    result = training_loop(opts, tick_callback=send_once)
    assert result.stopped and result.cur_nimg == 2  # one step of batch 2, then out
    ckpt_dir = os.path.join(result.run_dir, "checkpoints")
    assert os.path.isfile(os.path.join(ckpt_dir, "checkpoint"))
    log = open(os.path.join(result.run_dir, "log.txt")).read()
    assert "stopped by SIGTERM" in log and f"resume from {result.run_dir}" in log
    assert signal.getsignal(signal.SIGTERM) is not None  # handler restored
