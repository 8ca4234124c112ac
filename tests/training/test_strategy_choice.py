"""make_strategy's choice with the device list and TF_CONFIG faked: the strategy classes are replaced by recorders,
so the choice is checked without constructing a strategy over GPUs this machine does not have."""

import json

import pytest
import tensorflow as tf


def _make_strategy():
    from training.multi_worker import make_strategy

    return make_strategy


class _Recorder:
    def __init__(self, kind, *args, **kwargs):
        self.kind, self.args, self.kwargs = kind, args, kwargs


def _fake(monkeypatch, num_gpus, tf_config=None):
    real = tf.config.list_physical_devices

    def listed(device_type=None):
        gpus = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(num_gpus)]
        return gpus if device_type == "GPU" else real(device_type)

    monkeypatch.setattr(tf.config, "list_physical_devices", listed)
    for kind in ("MirroredStrategy", "MultiWorkerMirroredStrategy", "OneDeviceStrategy"):
        monkeypatch.setattr(tf.distribute, kind, lambda *a, kind=kind, **k: _Recorder(kind, *a, **k))
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config if isinstance(tf_config, str) else json.dumps(tf_config))


def _cluster(workers):
    return {"cluster": {"worker": [f"host{i}:2222" for i in range(workers)]}, "task": {"type": "worker", "index": 0}}


# (strategy name, GPUs, TF_CONFIG) -> (strategy kind, its devices argument). "default" is tf.distribute's default
# strategy (one device: the GPU when there is one); MirroredStrategy(None) mirrors over every visible GPU.
CASES = [
    ("auto", 0, None, "default", None),
    ("auto", 1, None, "default", None),
    ("auto", 2, None, "MirroredStrategy", None),
    ("auto", 8, None, "MirroredStrategy", None),
    ("auto", 0, _cluster(2), "MultiWorkerMirroredStrategy", None),
    ("auto", 2, _cluster(3), "MultiWorkerMirroredStrategy", None),
    ("auto", 2, _cluster(1), "MirroredStrategy", None),  # a one-task cluster is one machine
    ("auto", 1, _cluster(1), "default", None),
    ("default", 2, None, "default", None),
    ("one_device", 1, None, "OneDeviceStrategy", "/gpu:0"),
    ("one_device", 0, None, "OneDeviceStrategy", "/cpu:0"),
    ("mirrored", 2, None, "MirroredStrategy", None),
    ("mirrored", 0, None, "MirroredStrategy", "cpus"),  # no GPU: mirrored over the CPU devices
    ("multi_worker", 0, _cluster(2), "MultiWorkerMirroredStrategy", None),
]


@pytest.mark.parametrize("name,num_gpus,tf_config,kind,devices", CASES)
def test_strategy_choice(monkeypatch, name, num_gpus, tf_config, kind, devices):
    _fake(monkeypatch, num_gpus, tf_config)
    got = _make_strategy()(name)
    if kind == "default":
        assert got is tf.distribute.get_strategy()
        return
    assert got.kind == kind
    if devices == "cpus":
        devices = [d.name for d in tf.config.list_logical_devices("CPU")]
    assert (got.args[0] if got.args else got.kwargs.get("devices")) == devices


@pytest.mark.parametrize("name,tf_config,message", [
    ("auto", "{not json", "not valid JSON"),
    ("multi_worker", None, "needs the TF_CONFIG"),
    ("bogus", None, "unknown strategy"),
])
def test_strategy_errors(monkeypatch, name, tf_config, message):
    _fake(monkeypatch, 2, tf_config)
    with pytest.raises(ValueError, match=message):
        _make_strategy()(name)
