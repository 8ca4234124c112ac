"""tf.distribute: MirroredStrategy over two logical CPUs == one device; two workers on 127.0.0.1 train and checkpoint.

Both run in subprocesses: logical devices and collective ops must be configured before TensorFlow starts.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.utils import REPO as ROOT
from tests.utils import make_tiny_dataset

MIRRORED_SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training import configs
from training.loss import StyleGAN2Loss
from training.train_state import Adam, TrainState
from training.train_step import TrainSteps

cfg = configs.get_config("demo-tiny")
cfg.D_kwargs.mbstd_group_size = 2  # per-replica batch 2; strided shares keep the one-device groups
B = 4
reals = tf.random.stateless_uniform([B, *cfg.img_shape, 1], seed=[1, 2], minval=-1, maxval=1)
labels = tf.zeros([B, 0])

def run(strategy):
    tf.random.set_seed(0)
    with strategy.scope():
        G, D = configs.build_networks(cfg)
        g_opt = Adam(G.trainable_variables, **cfg.G_opt_kwargs)
        d_opt = Adam(D.trainable_variables, **cfg.D_opt_kwargs)
    state = TrainState(seed=3)
    steps = TrainSteps(strategy, G, D, g_opt, d_opt, StyleGAN2Loss(G, D, **cfg.loss_kwargs), state, B)
    n = strategy.num_replicas_in_sync
    if n > 1:
        def share(ctx):
            r = ctx.replica_id_in_sync_group
            return tf.gather(reals, list(range(r, B, n))), tf.gather(labels, list(range(r, B, n)))
        x = strategy.experimental_distribute_values_from_function(lambda ctx: share(ctx)[0])
        c = strategy.experimental_distribute_values_from_function(lambda ctx: share(ctx)[1])
    else:
        x, c = reals, labels
    out = {}
    for _ in range(2):
        for phase, _ in steps.phases:
            for k, v in steps(phase, x, c).items():
                out[f"{phase}/{k}"] = out.get(f"{phase}/{k}", []) + [v]
    out["pl_mean"] = float(state.pl_mean.numpy())
    out["D_weight_sum"] = float(sum(tf.reduce_sum(tf.abs(v)).numpy() for v in D.trainable_variables))
    out["w_avg_sum"] = float(tf.reduce_sum(G.mapping.w_avg).numpy())
    return out, n

one, n1 = run(tf.distribute.get_strategy())
two, n2 = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print("RESULT " + json.dumps({"one": one, "two": two, "replicas": [n1, n2]}))
"""


def _python_env():
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return env


def test_mirrored_two_cpus_matches_one_device():
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], cwd=ROOT, env=_python_env(),
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    assert res["replicas"] == [1, 2]
    one, two = res["one"], res["two"]
    assert set(one) == set(two)
    checked = 0
    for k in one:
        a = one[k] if isinstance(one[k], list) else [one[k]]
        b = two[k] if isinstance(two[k], list) else [two[k]]
        for x, y in zip(a, b, strict=True):
            assert y == pytest.approx(x, rel=2e-4, abs=2e-5), k
            checked += 1
    assert checked > 20 and "Dreg/Loss/r1_penalty" in one and "Greg/Loss/pl_penalty" in one


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_two_workers_train_and_write_one_checkpoint(tmp_path):
    data = make_tiny_dataset(str(tmp_path / "data"), num=4)
    outdir = tmp_path / "results"
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = _python_env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        cmd = [sys.executable, os.path.join(ROOT, "run_training.py"), "--strategy=multi_worker", f"--data={data}",
               "--config=demo-tiny", "--batch=4", "--kimg=0.008", "--kimg_per_tick=0.008", "--snap=1",
               "--samples=1", f"--outdir={outdir}"]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    outs = []
    for p in procs:
        try:
            outs.append(p.communicate(timeout=900)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out[-3000:]
    runs = os.listdir(outdir)
    assert len(runs) == 1, runs  # only the chief writes a run directory
    ckpts = os.listdir(os.path.join(outdir, runs[0], "checkpoints"))
    assert len([f for f in ckpts if f.endswith(".index")]) == 1
    with open(os.path.join(outdir, runs[0], "run.json")) as f:
        assert json.load(f)["num_replicas"] == 2  # the run record says how the run was spread
    assert "on 2 replica(s)" in outs[0] and "Samples:" in outs[0]
    assert "Samples:" not in outs[1]  # the non-chief writes nothing of its own
