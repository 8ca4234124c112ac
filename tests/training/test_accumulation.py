"""Gradient accumulation (batch_gpu): one step accumulated over rounds == one step on the full batch.

The reference is the same TrainSteps with batch_gpu = the whole per-replica batch (one round). A recording
"optimiser" keeps each phase's gradients, so every phase (Gmain, Greg with path length, Dmain, Dreg with R1, or
Gboth/Dboth) is compared on its gradients, statistics, pl_mean and w_avg. The two-CPU MirroredStrategy case runs
in a subprocess: logical devices must be made before TensorFlow starts.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tests.utils import REPO

# float32 throughout (the networks have no float64 path): the accumulated and full-batch steps differ only in the
# order of their sums. Measured: every gradient entry within 1e-6 of its phase's largest entry (tensors of tiny
# gradients, e.g. a bias under R1, differ more relative to themselves); a wrong round weight, group or pl mean
# is off by percents.
PHASE_ATOL = 1e-5  # of the phase's largest gradient entry
RTOL = 1e-4  # statistics, pl_mean, w_avg


class GradRecorder(tf.Module):
    """Stands in for the optimiser: apply() keeps the gradients instead of stepping, so phases stay comparable."""

    def __init__(self, variables):
        super().__init__()
        self.grads = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]

    def apply(self, grads, variables):
        for r, g in zip(self.grads, grads, strict=True):
            r.assign(g)


def one_step_each_phase(strategy, batch, batch_gpu, lazy=True, recompute=False, graphs=None):
    """{phase: (grads, stats)} and pl_mean / w_avg after one call of every phase (tiny config, fixed seeds)."""
    from training import configs
    from training.loss import StyleGAN2Loss
    from training.train_state import TrainState
    from training.train_step import TrainSteps

    cfg = configs.get_config("demo-tiny")
    for kw in (cfg.G_kwargs.synthesis_kwargs, cfg.D_kwargs):  # 8^3 volumes: the smallest two-stage networks
        kw.base_shape = [2, 2, 2]
    cfg.D_kwargs.img_shape = cfg.img_shape = [8, 8, 8]
    cfg.D_kwargs.mbstd_group_size = 2  # divides batch_gpu: groups identical to the full batch's
    if not lazy:
        cfg.loss_kwargs.G_reg_interval = cfg.loss_kwargs.D_reg_interval = 0
    n = strategy.num_replicas_in_sync
    reals = tf.random.stateless_uniform([batch, *cfg.img_shape, 1], seed=[1, 2], minval=-1, maxval=1)
    tf.random.set_seed(0)
    with strategy.scope():
        G, D = configs.build_networks(cfg)
        g_rec, d_rec = GradRecorder(G.trainable_variables), GradRecorder(D.trainable_variables)
    state = TrainState(seed=3)
    steps = TrainSteps(strategy, G, D, g_rec, d_rec, StyleGAN2Loss(G, D, **cfg.loss_kwargs), state, batch,
                       batch_gpu=batch_gpu, recompute=recompute)
    if n > 1:  # replica r holds reals r, r + n, ... (the strided share of the generated inputs)
        x = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.gather(reals, list(range(ctx.replica_id_in_sync_group, batch, n))))
        c = strategy.experimental_distribute_values_from_function(lambda ctx: tf.zeros([batch // n, 0]))
    else:
        x, c = reals, tf.zeros([batch, 0])
    out = {"rounds": steps.rounds}
    for phase, _ in steps.phases:
        stats = steps(phase, x, c)
        rec = g_rec if phase.startswith("G") else d_rec
        out[phase] = ([r.numpy().tolist() for r in rec.grads], stats)
        if graphs is not None:  # the traced step, for tests that look at its structure
            graphs[phase] = steps._step[phase].get_concrete_function(x, c).graph
    out["pl_mean"] = float(state.pl_mean.numpy())
    out["w_avg"] = G.mapping.w_avg.numpy().tolist()
    return out


def compare(full, accumulated):
    assert full["rounds"] == 1 and accumulated["rounds"] > 1
    phases = [k for k in full if k not in ("rounds", "pl_mean", "w_avg")]
    assert {"Gmain", "Dmain"} <= set(phases) or {"Gboth", "Dboth"} <= set(phases)
    for phase in phases:
        (g_full, s_full), (g_acc, s_acc) = full[phase], accumulated[phase]
        scale = max(np.abs(np.asarray(a)).max() for a in g_full)
        nonzero = 0
        for i, (a, b) in enumerate(zip(g_full, g_acc, strict=True)):
            a, b = np.asarray(a), np.asarray(b)
            nonzero += np.abs(a).max() > 0
            np.testing.assert_allclose(b, a, rtol=1e-3, atol=PHASE_ATOL * scale, err_msg=f"{phase} gradient {i}")
        assert nonzero > len(g_full) // 2, f"{phase}: mostly zero gradients; the comparison would prove little"
        assert set(s_full) == set(s_acc)
        for k in s_full:
            assert s_acc[k] == pytest.approx(s_full[k], rel=RTOL, abs=1e-6), f"{phase} {k}"
    assert full["pl_mean"] > 0
    assert accumulated["pl_mean"] == pytest.approx(full["pl_mean"], rel=RTOL)
    np.testing.assert_allclose(accumulated["w_avg"], full["w_avg"], rtol=RTOL, atol=1e-7)


# (batch, batch_gpu, lazy regularisation): rounds = batch / batch_gpu on one device.
ONE_DEVICE_CASES = [(8, 2, True)]  # Gboth/Dboth (lazy=False) share the code paths; one case keeps the suite short


@pytest.mark.parametrize("batch,batch_gpu,lazy", ONE_DEVICE_CASES)
def test_accumulated_step_equals_full_batch_step(batch, batch_gpu, lazy):
    strategy = tf.distribute.get_strategy()
    full = one_step_each_phase(strategy, batch, None, lazy)
    accumulated = one_step_each_phase(strategy, batch, batch_gpu, lazy)
    assert accumulated["rounds"] == batch // batch_gpu
    reg = ("Greg", "Dreg") if lazy else ("Gboth", "Dboth")
    assert "Loss/pl_penalty" in full[reg[0]][1] and "Loss/r1_penalty" in full[reg[1]][1]
    compare(full, accumulated)


MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tests.training.test_accumulation import one_step_each_phase
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
# Gboth/Dboth only (every-step regularisation): two phases instead of four keep this subprocess short, and the
# one-device test covers the lazy phases.
full = one_step_each_phase(strategy, 8, None, lazy=False)
accumulated = one_step_each_phase(strategy, 8, 2, lazy=False)
print("RESULT " + json.dumps({"full": full, "accumulated": accumulated}))
"""


def test_accumulated_step_equals_full_batch_step_on_two_replicas():
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    assert res["accumulated"]["rounds"] == 2  # 8 = 2 replicas x 2 rounds x 2 volumes
    compare(res["full"], res["accumulated"])


# (batch, batch_gpu, pl_weight, message): a per-device batch that cannot make whole rounds is refused.
BAD_CASES = [(8, 3, 0.0, "does not divide the per-replica batch 8"),
             (6, 3, 2.0, "not divisible by pl_batch_shrink=2"),
             (8, -1, 0.0, "per-device batch -1 does not divide")]


@pytest.mark.parametrize("batch,batch_gpu,pl_weight,message", BAD_CASES)
def test_batch_gpu_must_make_whole_rounds(batch, batch_gpu, pl_weight, message):
    from training import configs
    from training.loss import StyleGAN2Loss
    from training.train_state import TrainState
    from training.train_step import TrainSteps

    cfg = configs.get_config("demo-tiny")
    G, D = configs.build_networks(cfg)
    loss = StyleGAN2Loss(G, D, pl_weight=pl_weight)
    with pytest.raises(ValueError, match=message):
        TrainSteps(tf.distribute.get_strategy(), G, D, None, None, loss, TrainState(0), batch, batch_gpu=batch_gpu)


def test_no_accumulation_unless_asked(tmp_path):
    # As StyleGAN2-ADA (batch_gpu defaults to batch // gpus): a run that does not ask keeps one round per step.
    from tests.utils import make_tiny_dataset
    from training.train_options import build_options

    data = make_tiny_dataset(str(tmp_path / "data"), num=2)
    assert build_options(data=data, config="demo-tiny", batch=8).batch_gpu is None
    assert build_options(data=data, config="demo-tiny", batch=8, batch_gpu=4).batch_gpu == 4
    from training import configs
    from training.loss import StyleGAN2Loss
    from training.train_state import TrainState
    from training.train_step import TrainSteps

    G, D = configs.build_networks(configs.get_config("demo-tiny"))
    steps = TrainSteps(tf.distribute.get_strategy(), G, D, None, None, StyleGAN2Loss(G, D), TrainState(0), 8)
    assert steps.rounds == 1 and steps.batch_gpu == 8
