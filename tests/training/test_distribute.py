"""tf.distribute: MirroredStrategy over two logical CPUs == one device; two workers on 127.0.0.1 train and checkpoint;
a killed worker stops the other within a bounded time and the run resumes on one worker.

Both run in subprocesses: logical devices and collective ops must be configured before TensorFlow starts.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from tests.utils import REPO as ROOT
from tests.utils import make_tiny_dataset, run_script

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


FOUR_DEVICES_SCRIPT = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 4)
from training import configs
from training.loss import StyleGAN2Loss
from training.train_options import global_batch
from training.train_state import Adam, TrainState
from training.train_step import TrainSteps

strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(4)])
# The 1 mm config on 4 devices: the original's global batch 4 x 2 = 8, 2 per device (built, not run: one step of
# it needs more memory than a test machine has).
cfg = configs.get_config("Gorig-Dres-3d-1mm-base567")
batch = global_batch(dict(batch_size=None, batch_per_device=cfg.batch_gpu), strategy.num_replicas_in_sync)
with strategy.scope():
    G, D = configs.build_networks(cfg)
    opt = [Adam(m.trainable_variables, **cfg.G_opt_kwargs) for m in (G, D)]
steps = TrainSteps(strategy, G, D, *opt, StyleGAN2Loss(G, D, **cfg.loss_kwargs), TrainState(0), batch)

# Minibatch-std groups form within each device's share: D (group size 4) on 4 devices x 2 volumes equals D run
# on each share alone, not D on the 8 volumes at once.
tiny = configs.get_config("demo-tiny")
tiny.D_kwargs.mbstd_group_size = 4
with strategy.scope():
    _, Dt = configs.build_networks(tiny)
x = tf.random.stateless_uniform([8, *tiny.img_shape, 1], seed=[4, 5], minval=-1, maxval=1)
dist = strategy.experimental_distribute_values_from_function(
    lambda ctx: x[2 * ctx.replica_id_in_sync_group : 2 * ctx.replica_id_in_sync_group + 2])
per_device = np.concatenate([v.numpy() for v in strategy.experimental_local_results(
    strategy.run(lambda v: Dt(v, None), args=(dist,)))])
shares = np.concatenate([Dt(x[i : i + 2], None).numpy() for i in range(0, 8, 2)])
whole = Dt(x, None).numpy()
print("RESULT " + json.dumps(dict(batch=batch, replicas=steps.num_replicas, per_replica=steps.batch_gpu,
                                  rounds=steps.rounds, per_device=per_device.ravel().tolist(),
                                  shares=shares.ravel().tolist(), whole=whole.ravel().tolist())))
"""


def test_paper_config_on_four_devices_takes_the_original_global_batch():
    proc = subprocess.run([sys.executable, "-c", FOUR_DEVICES_SCRIPT], cwd=ROOT, env=_python_env(),
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1]
    res = json.loads(line[len("RESULT "):])
    assert (res["batch"], res["replicas"], res["per_replica"], res["rounds"]) == (8, 4, 2, 1)
    assert res["per_device"] == pytest.approx(res["shares"], rel=1e-5, abs=1e-6)
    assert max(abs(a - b) for a, b in zip(res["per_device"], res["whole"], strict=True)) > 1e-4


def _free_ports(n):
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _start_workers(tmp_path, data, outdir, *flags):
    """Two run_training.py processes on 127.0.0.1 (TF_CONFIG), each with its own scratch TMPDIR."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for i in range(2):
        env = _python_env()
        env["TF_CONFIG"] = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
        env["TMPDIR"] = str(tmp_path / f"scratch{i}")
        os.makedirs(env["TMPDIR"], exist_ok=True)
        cmd = [sys.executable, os.path.join(ROOT, "run_training.py"), "--strategy=multi_worker", f"--data={data}",
               "--config=demo-tiny", "--batch=4", "--kimg_per_tick=0.008", "--snap=1", "--samples=1",
               f"--outdir={outdir}", *flags]
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      text=True))
    return procs


def test_two_workers_train_and_write_one_checkpoint(tmp_path):
    data = make_tiny_dataset(str(tmp_path / "data"), num=4)
    outdir = tmp_path / "results"
    procs = _start_workers(tmp_path, data, outdir, "--kimg=0.008")
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


# A worker killed this long after the first checkpoint must have stopped the other (heartbeats, collective timeout).
LOST_WORKER_SECONDS = 120


def test_killed_worker_stops_the_other_and_the_run_resumes_on_one_worker(tmp_path):
    import run_training

    data = make_tiny_dataset(str(tmp_path / "data"), num=4)
    outdir = tmp_path / "results"
    chief, worker = _start_workers(tmp_path, data, outdir, "--kimg=1", "--collective_timeout=90")
    try:
        deadline = time.time() + 900
        while not glob.glob(str(outdir / "*" / "checkpoints" / "ckpt-*.index")):
            assert chief.poll() is None and worker.poll() is None, "a worker ended before the first checkpoint"
            assert time.time() < deadline, "no checkpoint written"
            time.sleep(0.5)
        worker.send_signal(signal.SIGKILL)
        killed = time.time()
        try:
            out = chief.communicate(timeout=LOST_WORKER_SECONDS)[0]
        except subprocess.TimeoutExpired:
            pytest.fail(f"the chief still waits {LOST_WORKER_SECONDS} s after its peer was killed")
    finally:
        for p in (chief, worker):
            p.kill()
            p.communicate()
    print(f"chief stopped {time.time() - killed:.1f} s after the kill")
    (run_dir,) = glob.glob(str(outdir / "*"))  # the chief's only; the workers' scratch is in their TMPDIR
    assert chief.returncode == run_training.WORKER_LOST_EXIT, out[-3000:]
    assert "error: training stopped: lost contact with worker 1" in out, out[-3000:]
    assert f"resume from {run_dir} (with any number of workers)" in out
    last = sorted(glob.glob(os.path.join(run_dir, "checkpoints", "ckpt-*.index")),
                  key=lambda p: int(p.split("-")[-1].split(".")[0]))[-1][:-len(".index")]
    assert f"Last checkpoint: {last}" in out
    step = int(last.rsplit("-", 1)[1])
    kimg = step * 4 / 1000  # batch 4 per step

    # The same run on one worker: same global batch (each device now takes all 4), to one more tick.
    res = run_script("run_training.py", f"--resume={run_dir}", f"--kimg={kimg + 0.008}", timeout=900)
    assert res.returncode == 0, res.stderr[-3000:] + res.stdout[-3000:]
    assert f"Resumed from {last} at kimg {kimg:.3f}, step {step}" in res.stdout
    assert "Training for" in res.stdout and "on 1 replica(s), batch 4" in res.stdout
    assert f"Done: {kimg + 0.008:.3f} kimg" in res.stdout
    with open(os.path.join(run_dir, "run.json")) as f:
        record = json.load(f)
    assert record["resumed_from"] == last and record["num_replicas"] == 1
    assert os.path.isfile(os.path.join(run_dir, "checkpoints", f"ckpt-{step + 2}.index"))
    with open(os.path.join(run_dir, "training_options.json")) as f:
        assert json.load(f)["batch_size"] == 4


# (error class, text as TensorFlow words it, timeout, workers in the cluster) -> what the one line must say. This
# process is worker 0 (its own task in a text is not the lost one).
LOST_PEER_CASES = [
    ("UnavailableError", "Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error "
     "information from remote target /job:worker/replica:0/task:1 while calling /tensorflow.WorkerService/RecvBuf",
     None, 3, "lost contact with worker 1 (Collective ops is aborted by: recvmsg:Connection reset by peer)"),
    ("UnavailableError", "Collective ops is aborted by: Error reported from /job:worker/task:0: The following tasks "
     "are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:2\nThe tasks have crashed.", None, 3,
     "lost contact with worker 2 (it stopped sending heartbeats)"),
    ("DeadlineExceededError", "Collective has timed out waiting for other workers.", 30.0, 3,
     "a collective timed out after 30 s waiting for a peer worker (it stopped responding)"),
    ("DeadlineExceededError", "Collective has timed out waiting for other workers.", None, 2,
     "a collective timed out waiting for worker 1 (it stopped responding)"),
    ("UnavailableError", "barrier tick-1 failed: Barrier failed\nmore", None, 2,
     "lost contact with worker 1 (barrier tick-1 failed: Barrier failed)"),
]


@pytest.mark.parametrize("kind,text,timeout,workers,expected", LOST_PEER_CASES)
def test_lost_peer_message_names_the_peer(monkeypatch, kind, text, timeout, workers, expected):
    import tensorflow as tf

    from training.multi_worker import describe_lost_peer

    cluster = {"worker": [f"host{i}:2222" for i in range(workers)]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert describe_lost_peer(getattr(tf.errors, kind)(None, None, text), timeout) == expected
