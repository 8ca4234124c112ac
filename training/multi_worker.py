"""Choosing the distribution strategy, and for several machines the multi-worker strategy with bounded waits and
what a lost worker turns into.

Two mechanisms keep a worker from waiting forever for a peer that is gone:
- the coordination service (on by default with MultiWorkerMirroredStrategy, hosted by task 0) exchanges
  heartbeats; a task that dies or freezes stops sending them, and the others' collectives are aborted with
  UnavailableError ("tasks are unhealthy");
- every collective op has a timeout (`collective_timeout` seconds; 0 = none): a peer that is alive but stuck
  makes the collective fail with DeadlineExceededError.
The chief's snapshots and metrics take as long as they take, so the workers meet at a coordination-service
barrier after them (no collective is pending meanwhile) and the collective timeout only has to cover a train step.

Either error ends training on every surviving worker with WorkerLost; the run continues from its last checkpoint
with any number of workers (the global batch is an option of the run, the per-device share is not).
"""

import json
import os
import re

import tensorflow as tf

from dnnlib.errors import InputError
from training.train_options import STRATEGIES

# What a collective raises when a peer is gone (connection reset, heartbeat lost, timeout, abort).
LOST_PEER_ERRORS = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                    tf.errors.AbortedError)
# The barrier after the chief's snapshot and metrics: generous, since a dead peer fails it through the heartbeats.
BARRIER_TIMEOUT_SECONDS = 24 * 3600

_TASK = re.compile(r"/job:(\w+)/(?:replica:\d+/)?task:(\d+)")


class WorkerLost(RuntimeError):
    """A peer worker died or stopped responding: training stopped on this worker without saving."""


def make_multi_worker_strategy(collective_timeout=None):
    """MultiWorkerMirroredStrategy from TF_CONFIG whose collectives fail after collective_timeout s (None/0: never)."""
    timeout = float(collective_timeout) if collective_timeout else None
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=timeout)
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def is_multi_worker(strategy):
    """True for a MultiWorkerMirroredStrategy over a TF_CONFIG cluster (its collectives can lose a peer)."""
    return (isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
            and bool(strategy.cluster_resolver.cluster_spec().jobs))


def wait_for_workers(strategy, name):
    """Every worker waits here until all are here (a coordination-service barrier); no-op on one machine."""
    if not is_multi_worker(strategy):
        return
    from tensorflow.python.eager import context  # the barrier has no public API

    try:
        context.context().wait_at_barrier(f"stylegan3d-{name}", BARRIER_TIMEOUT_SECONDS * 1000)
    except tf.errors.OpError as e:  # whatever its code, a failed barrier means a peer is gone
        raise tf.errors.UnavailableError(None, None, f"barrier {name} failed: {e.message}") from None


def describe_lost_peer(error, collective_timeout=None):
    """One line saying which peer was lost and how, from a LOST_PEER_ERRORS exception or its text."""
    text = getattr(error, "message", None) or str(error)
    own, peers = _tasks()
    # The text names the lost task, except some barrier errors; with one peer there is no doubt which it was.
    tasks = sorted({(job, int(task)) for job, task in _TASK.findall(text)} - own) or (peers if len(peers) == 1 else [])
    who = ", ".join(f"{job} {task}" for job, task in tasks) or "a peer worker"
    if isinstance(error, tf.errors.DeadlineExceededError) or "timed out" in text.lower():
        limit = f" after {collective_timeout:g} s" if collective_timeout else ""
        return f"a collective timed out{limit} waiting for {who} (it stopped responding)"
    if "heartbeat" in text.lower() or "unhealthy" in text.lower():
        return f"lost contact with {who} (it stopped sending heartbeats)"
    lines = [s.strip() for s in text.splitlines() if s.strip()]
    first = next((s for s in lines if "aborted by" in s or "Connection" in s), lines[0] if lines else "")
    return f"lost contact with {who}" + (f" ({first[:160]})" if first else "")


def _tasks():
    """({this process's (job, task)}, [the other tasks]) from TF_CONFIG; empty when it does not say."""
    import json
    import os

    try:
        config = json.loads(os.environ.get("TF_CONFIG", "{}"))
        own = {(str(config["task"]["type"]), int(config["task"]["index"]))}
        every = [(str(job), i) for job, addresses in config.get("cluster", {}).items() for i in range(len(addresses))]
    except (ValueError, KeyError, TypeError, AttributeError):
        return set(), []
    return own, [t for t in every if t not in own]


# ----------------------------------------------------------------------------------------------
# Choosing the strategy.


def make_strategy(name="auto", collective_timeout=None):
    """auto: multi-worker if TF_CONFIG names several tasks, mirrored if >1 GPU, else the default (one device).

    collective_timeout: seconds after which a multi-worker collective fails (None/0: never).
    """
    gpus = tf.config.list_physical_devices("GPU")
    if name == "auto":
        name = "multi_worker" if _tf_config_tasks() > 1 else ("mirrored" if len(gpus) > 1 else "default")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy("/gpu:0" if gpus else "/cpu:0")
    if name == "mirrored":
        devices = None if gpus else [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if not os.environ.get("TF_CONFIG"):
            raise InputError("the multi_worker strategy needs the TF_CONFIG environment variable (cluster and task)")
        return make_multi_worker_strategy(collective_timeout)
    raise InputError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def _tf_config_tasks():
    try:
        cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    except ValueError:
        raise InputError("the TF_CONFIG environment variable is not valid JSON") from None
    return sum(len(v) for v in cluster.values())


def is_chief(strategy):
    ext = strategy.extended
    return bool(getattr(ext, "should_checkpoint", True))


def worker_devices(strategy):
    """The devices a strategy computes on (the default strategy: the first CPU or GPU)."""
    try:
        return list(strategy.extended.worker_devices)
    except (RuntimeError, NotImplementedError, AttributeError):  # the default strategy has no device list
        return [d.name for d in tf.config.list_logical_devices() if d.device_type in ("CPU", "GPU")][:1]
