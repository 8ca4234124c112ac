"""dnnlib/ops/autotune.py: the decision rule and the interleaved timing under injected timings, the cache (written
owner-only, reused, refused when someone else could have written it), the overrides, and every forced path of every
op against the NumPy references. Autotuning is on here (the suite's default is off, tests/conftest.py), always with
a private cache dir."""

import json
import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import autotune as A
from dnnlib.ops import conv3d as C
from dnnlib.ops import modulated_conv3d as M
from dnnlib.ops import upfirdn_3d as U
from dnnlib.ops import upfirdn_3d_ref as UR
from dnnlib.ops.modulated_conv3d_ref import modulated_conv3d_ref
from tests.utils import assert_conv3d_matches_reference


@pytest.fixture(scope="module", autouse=True)
def _kernel_loaded_first():
    # The C++ FIR kernel is loaded once per process from the usual cache (setup.sh builds it there), not rebuilt in
    # each test's private cache.
    U.kernel_library()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv(A.ENV_MODE, "1")
    monkeypatch.delenv(A.ENV_FORCE, raising=False)
    A.reset()
    yield
    A.reset()


class FakeClock:
    """A clock that only moves when a fake candidate 'runs'."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_runners(clock, scripts, log=None):
    """{name: callable} advancing `clock` by the next scripted seconds of that name (the warm-up's first)."""
    its = {name: iter(times) for name, times in scripts.items()}

    def run(name):
        if log is not None:
            log.append(name)
        clock.now += next(its[name])

    return {name: (lambda name=name: run(name)) for name in scripts}


# ----------------------------------------------------------------------------------------------
# The decision rule.

# (rounds as {path: seconds}, expected choice); "tf" is the simplest path.
DECISIONS = [
    ([{"tf": 1.0, "fast": 0.5}] * 3, "fast"),                           # clearly faster
    ([{"tf": 1.0, "fast": 0.95}] * 3, "tf"),                            # within the noise margin
    ([{"tf": 1.0, "fast": 0.5}, {"tf": 0.4, "fast": 0.5}, {"tf": 0.45, "fast": 0.5}], "tf"),  # slower in most rounds
    ([{"tf": 1.0, "fast": 0.5, "mm": 0.3}] * 3, "mm"),                  # the fastest of three
    ([{"tf": 0.5, "fast": 1.0}] * 3, "tf"),
    ([{"tf": 1.0, "fast": 0.5}, {"tf": 1.0, "fast": 9.0}, {"tf": 1.0, "fast": 0.5}], "fast"),  # one outlier round
]


@pytest.mark.parametrize("rounds,expect", DECISIONS)
def test_decide(rounds, expect):
    assert A.decide(rounds, simplest="tf") == expect


def test_measure_interleaves_rotates_and_skips_the_warm_up(monkeypatch):
    clock, log = FakeClock(), []
    monkeypatch.setattr(A, "clock", clock)
    scripts = {"a": [100.0, 1.0, 1.0, 1.0], "b": [100.0, 2.0, 2.0, 2.0], "c": [100.0, 3.0, 3.0, 3.0]}
    rounds = A.measure(fake_runners(clock, scripts, log), min_rounds=3, max_rounds=3)
    assert log == ["a", "b", "c", "a", "b", "c", "b", "c", "a", "c", "a", "b"]
    assert rounds == [{"a": 1.0, "b": 2.0, "c": 3.0}] * 3  # the 100 s warm-ups are not timed


@pytest.mark.parametrize("seconds,expect_rounds", [(0.01, 7), (0.2, 5), (2.0, 3)])
def test_measure_fits_rounds_to_the_budget(monkeypatch, seconds, expect_rounds):
    clock = FakeClock()
    monkeypatch.setattr(A, "clock", clock)
    runners = fake_runners(clock, {"a": [seconds] * 10, "b": [seconds] * 10})
    assert len(A.measure(runners, min_rounds=3, max_rounds=7, budget=2.0)) == expect_rounds


# ----------------------------------------------------------------------------------------------
# The chooser and its cache.


def _timer(clock, scripts, built):
    def timer():
        built.append(1)
        return fake_runners(clock, scripts)
    return timer


FAST_WINS = {"tf": [1.0] * 10, "fast_grad": [0.4] * 10}
NOISE = {"tf": [1.0] * 10, "fast_grad": [0.97] * 10}


@pytest.mark.parametrize("scripts,expect", [(FAST_WINS, "fast_grad"), (NOISE, "tf")])
def test_choose_times_once_then_reuses_the_cache(monkeypatch, scripts, expect):
    clock, built = FakeClock(), []
    monkeypatch.setattr(A, "clock", clock)
    assert A.choose("conv3d", "k", "fast_grad", ("tf", "fast_grad"), _timer(clock, scripts, built)) == expect
    assert A.choose("conv3d", "k", "fast_grad", ("tf", "fast_grad"), _timer(clock, scripts, built)) == expect
    assert built == [1] and A.stats()["decisions"] == 1
    path = A.cache_path()
    assert os.stat(path).st_mode & 0o077 == 0 and os.stat(os.path.dirname(path)).st_mode & 0o077 == 0
    A.reset()  # a new process: the decision comes from the file, nothing is timed
    never = _timer(clock, {}, built)
    assert A.choose("conv3d", "k", "fast_grad", ("tf", "fast_grad"), never) == expect
    assert built == [1]
    # Another shape is another decision.
    A.choose("conv3d", "other", "fast_grad", ("tf", "fast_grad"), _timer(clock, FAST_WINS, built))
    assert built == [1, 1]
    assert len(json.load(open(path))["paths"]) == 2


def test_the_cache_is_per_host(monkeypatch):
    first = A.cache_path()
    monkeypatch.setattr(A.custom_op_build, "cpu_signature", lambda: "model name: another CPU\nflags: avx2\n")
    assert A.cache_path() != first


def _cached_decision(clock, built):
    """A decision 'fast_grad' in the cache file, then a new process's view; returns the file's path."""
    A.choose("conv3d", "k", "tf", ("tf", "fast_grad"), _timer(clock, FAST_WINS, built))
    A.reset()
    return A.cache_path()


# How someone else could have written the decisions: each must be ignored (re-timed) and never written to.
FOREIGN = [
    ("other user", lambda p: os.chown(p, 12345, 12345)),
    ("world-writable file", lambda p: os.chmod(p, 0o666)),
    ("group-writable folder", lambda p: os.chmod(os.path.dirname(p), 0o770)),
    ("folder of another user", lambda p: os.chown(os.path.dirname(p), 12345, 12345)),
]


@pytest.mark.parametrize("how,make_foreign", FOREIGN, ids=[f[0] for f in FOREIGN])
def test_a_cache_file_it_does_not_own_is_refused(monkeypatch, caplog, how, make_foreign):
    if os.getuid() != 0 and "user" in how:
        pytest.skip("changing a file's owner needs root")
    clock, built = FakeClock(), []
    monkeypatch.setattr(A, "clock", clock)
    path = _cached_decision(clock, built)
    with open(path) as f:
        planted = f.read().replace('"path": "fast_grad"', '"path": "tf"')  # a planted decision
    with open(path, "w") as f:
        f.write(planted)
    make_foreign(path)
    with caplog.at_level(logging.WARNING):
        assert A.choose("conv3d", "k", "tf", ("tf", "fast_grad"), _timer(clock, FAST_WINS, built)) == "fast_grad"
        A.choose("conv3d", "k2", "tf", ("tf", "fast_grad"), _timer(clock, FAST_WINS, built))
    assert built == [1, 1, 1]  # timed again, not read from the planted file
    assert sum("not used" in r.getMessage() for r in caplog.records) == 1  # one warning
    with open(path) as f:
        assert f.read() == planted  # nothing written to it


def test_a_symlinked_cache_file_is_refused(monkeypatch, tmp_path):
    clock, built = FakeClock(), []
    monkeypatch.setattr(A, "clock", clock)
    path = _cached_decision(clock, built)
    elsewhere = tmp_path / "elsewhere.json"
    os.replace(path, elsewhere)
    os.symlink(elsewhere, path)
    A.choose("conv3d", "k", "tf", ("tf", "fast_grad"), _timer(clock, FAST_WINS, built))
    assert built == [1, 1] and os.path.islink(path)


def test_a_corrupt_cache_file_of_ours_is_rewritten(monkeypatch):
    clock, built = FakeClock(), []
    monkeypatch.setattr(A, "clock", clock)
    path = _cached_decision(clock, built)
    with open(path, "w") as f:
        f.write("{not json")
    assert A.choose("conv3d", "k", "tf", ("tf", "fast_grad"), _timer(clock, FAST_WINS, built)) == "fast_grad"
    assert built == [1, 1] and "fast_grad" in json.load(open(path))["paths"]["conv3d|k|tf,fast_grad"]["path"]


# ----------------------------------------------------------------------------------------------
# Overrides.


def test_autotuning_off_takes_the_fixed_default_without_timing(monkeypatch):
    monkeypatch.setenv(A.ENV_MODE, "off")
    built = []
    assert A.choose("conv3d", "k", "fast_grad", ("tf", "fast_grad"), _timer(FakeClock(), FAST_WINS, built)) \
        == "fast_grad"
    assert built == [] and not os.path.exists(A.cache_path())


@pytest.mark.parametrize("forced,candidates,expect", [
    ("conv3d=tf", ("tf", "fast_grad"), "tf"),
    ("fir=kernel,conv3d=matmul_1x1", ("tf", "fast_grad", "matmul_1x1"), "matmul_1x1"),
    ("conv3d=matmul_1x1", ("tf", "fast_grad"), "fast_grad"),  # not a candidate here: chosen as usual (timed)
])
def test_a_forced_path_wins_where_it_is_a_candidate(monkeypatch, forced, candidates, expect):
    monkeypatch.setenv(A.ENV_FORCE, forced)
    clock, built = FakeClock(), []
    monkeypatch.setattr(A, "clock", clock)
    assert A.choose("conv3d", "k", "tf", candidates, _timer(clock, FAST_WINS, built)) == expect


@pytest.mark.parametrize("spec", ["conv3d", "conv3d=cudnn", "conv=tf"])
def test_a_bad_forced_path_names_the_variable(monkeypatch, spec):
    monkeypatch.setenv(A.ENV_FORCE, spec)
    with pytest.raises(ValueError, match=A.ENV_FORCE):
        A.choose("conv3d", "k", "tf", ("tf", "fast_grad"))


def test_nothing_is_timed_while_tracing_for_xla(monkeypatch):
    built = []
    monkeypatch.setattr(C, "choose_path", lambda x, w, pads: A.choose(
        "conv3d", "xla", "fast_grad", ("tf", "fast_grad"), _timer(FakeClock(), FAST_WINS, built)))
    tf.function(lambda x: C.conv3d(x, tf.ones([3, 3, 3, 1, 1])), jit_compile=True).get_concrete_function(
        tf.TensorSpec([1, 4, 4, 4, 1]))
    assert built == []


def test_a_real_trace_times_and_records_each_shape():
    # Real timing of tiny shapes: only that a decision among the candidates is made once per shape and cached.
    @tf.function
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch(w)
            y = C.conv3d(C.conv3d(x, w), w)  # one shape, twice
        return tape.gradient(y, w)

    step.get_concrete_function(tf.TensorSpec([1, 4, 4, 4, 2]), tf.TensorSpec([3, 3, 3, 2, 2]))
    paths = json.load(open(A.cache_path()))["paths"]
    assert A.stats()["decisions"] == 1 and len(paths) == 1
    (entry,) = paths.values()
    assert entry["path"] in ("tf", "fast_grad") and set(entry["median_s"]) == {"tf", "fast_grad"}


def test_timing_many_shapes_does_not_warn_of_retracing():
    # Each candidate at each shape is its own tf.function, traced once; TensorFlow's frequent-retracing heuristic
    # would warn at the start of every training run. Other retracing warnings still pass.
    import logging as std_logging

    seen = []

    class Keep(std_logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    logger, handler = std_logging.getLogger("tensorflow"), Keep()
    logger.addHandler(handler)
    try:
        for n in range(2, 10):
            runners = A.gradient_timer({"a": tf.math.square, "b": tf.math.sin}, [([n], tf.float32)])()
            for run in runners.values():
                run()
        other = logger.makeRecord("tensorflow", std_logging.WARNING, "f", 1, "5 out of the last 6 calls to "
                                  "<function mine> triggered tf.function retracing.", None, None)
        logger.handle(other)
    finally:
        logger.removeHandler(handler)
    assert not [m for m in seen if "gradient_timer" in m]
    assert any("<function mine>" in m for m in seen)


# ----------------------------------------------------------------------------------------------
# Every forced path of every op against the references.


@pytest.fixture()
def chosen(monkeypatch):
    """The paths autotune.choose returned, as (op, path)."""
    out, real = [], A.choose
    monkeypatch.setattr(A, "choose", lambda op, *a, **k: out.append((op, real(op, *a, **k))) or out[-1][1])
    return out


@pytest.mark.parametrize("path,k,padding", [("tf", 3, "SAME"), ("fast_grad", 3, (1, 0, 2, -1, 0, 1)),
                                            ("fast_grad", 2, "VALID"), ("matmul_1x1", 1, "VALID"),
                                            ("tf", 1, "VALID")])
def test_forced_conv3d_matches_the_reference(monkeypatch, chosen, path, k, padding):
    monkeypatch.setenv(A.ENV_FORCE, f"conv3d={path}")
    assert_conv3d_matches_reference(C.conv3d, k, padding)
    assert chosen and {p for op, p in chosen if op == "conv3d"} == {path}


def _linear_map_ref(ref, shape):
    """The matrix of a linear NumPy reference x -> ref(x) for inputs of `shape` (column i = ref(e_i))."""
    cols = []
    for i in range(int(np.prod(shape))):
        e = np.zeros(int(np.prod(shape)))
        e[i] = 1.0
        cols.append(ref(e.reshape(shape)).ravel())
    return np.stack(cols, axis=1)


def _check_linear_op(op, ref, x):
    """op(x) == ref(x) and d<op(x), v>/dx == J^T v, J from the reference."""
    v = np.random.default_rng(1).standard_normal(ref(x).shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = op(xt)
    np.testing.assert_allclose(y.numpy(), ref(x), rtol=1e-10, atol=1e-10)
    g = tape.gradient(y, xt, output_gradients=tf.constant(v))
    np.testing.assert_allclose(g.numpy().ravel(), _linear_map_ref(ref, x.shape).T @ v.ravel(), rtol=1e-10,
                               atol=1e-10)


@pytest.mark.parametrize("path", ["tf_ops", "kernel"])
@pytest.mark.parametrize("kind", ["up", "down"])
def test_forced_fir_matches_the_reference(monkeypatch, chosen, path, kind):
    if path == "kernel" and U.kernel_library() is None:
        pytest.skip("the C++ kernel does not build here")
    monkeypatch.setenv(A.ENV_FORCE, f"fir={path}")
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 2, 2))
    f = [1, 3, 3, 1]
    if kind == "up":
        _check_linear_op(lambda t: U.upsample_3d(t, f, up=(2, 1, 2)), lambda a: UR.upsample_3d_ref(a, f, up=(2, 1, 2)),
                         x)
    else:
        _check_linear_op(lambda t: U.downsample_3d(t, f, down=(2, 2, 1)),
                         lambda a: UR.downsample_3d_ref(a, f, down=(2, 2, 1)), x)
    assert {p for op, p in chosen if op == "fir"} == {path}


@pytest.mark.parametrize("path", ["conv3d_transpose", "polyphase"])
def test_forced_transposed_conv_matches_the_reference(monkeypatch, chosen, path):
    monkeypatch.setenv(A.ENV_FORCE, f"transposed_conv={path},fir=tf_ops")
    rng = np.random.default_rng(2)
    x, w = rng.standard_normal((1, 2, 3, 2, 2)), rng.standard_normal((3, 3, 3, 2, 3))
    f = [1, 3, 3, 1]
    _check_linear_op(lambda t: U.upsample_conv_3d(t, tf.constant(w), f, up=(2, 2, 1)),
                     lambda a: UR.upsample_conv_3d_ref(a, w, f, up=(2, 2, 1)), x)
    assert {p for op, p in chosen if op == "transposed_conv"} == {path}


@pytest.mark.parametrize("path", ["scaled_activations", "per_sample_weights"])
@pytest.mark.parametrize("up", [None, (2, 1, 2)])
def test_forced_modulated_conv3d_matches_the_reference(monkeypatch, chosen, path, up):
    monkeypatch.setenv(A.ENV_FORCE, f"modulated_conv3d={path},conv3d=tf")
    rng = np.random.default_rng(3)
    x, w, s = rng.standard_normal((2, 3, 2, 4, 2)), rng.standard_normal((3, 3, 3, 2, 3)), rng.standard_normal((2, 2))
    f = U.setup_filter([1, 3, 3, 1])
    got = M.modulated_conv3d(tf.constant(x, tf.float32), tf.constant(w, tf.float32), tf.constant(s, tf.float32),
                             up=up, resample_filter=f)
    want = modulated_conv3d_ref(x, w, s, True, up, f)
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    assert {p for op, p in chosen if op == "modulated_conv3d"} == {path}


@pytest.mark.parametrize("forced,expect", [(None, "fast_grad"), ("tf", "tf")])
def test_a_dynamic_batch_takes_the_fixed_default_or_the_forced_path(monkeypatch, chosen, forced, expect):
    if forced:
        monkeypatch.setenv(A.ENV_FORCE, f"conv3d={forced}")
    monkeypatch.setattr(C, "_have_gpu", lambda: False)  # the fixed default on CPU: the custom gradients
    fn = tf.function(lambda x: C.conv3d(x, tf.ones([3, 3, 3, 1, 1])))
    fn.get_concrete_function(tf.TensorSpec([None, 4, 4, 4, 1]))
    assert chosen == [("conv3d", expect)] and A.stats()["decisions"] == 0
