"""Each op's path chosen by measurement on the machine at hand, cached per user.

An op with more than one path (conv3d's gradients, upsample_conv_3d's transposed conv, the FIR, the modulated
convolution's two forms) asks `choose` when a graph is traced. The first time a shape and dtype are traced on this
machine its candidates are timed (forward + first-order gradients of every input, on random inputs of exactly that
shape): one warm-up each, then a few rounds with the candidates interleaved in a rotating order; the fastest median
wins only if it beats TensorFlow's own path (`simplest`) by more than NOISE_MARGIN and in most rounds, otherwise
TensorFlow's own path is kept. The decision is cached in memory and in a JSON file of the per-user cache
(custom_op_build.cache_dir()/autotune), one file per host key (CPU model and flags or GPU names, TensorFlow
version); entries are keyed by op, shapes and dtype. The file is read and written with the compiled ops' rules: it
and its folders must be this user's (or root's), writable by nobody else and not symbolic links; a file that fails
them is ignored with one warning and nothing is written to it.

Environment:
  DNNLIB_AUTOTUNE=0 (or off/false/no): no timing, every op takes its fixed default (`fixed` in `choose`: the
      device rule each op documents).
  DNNLIB_OP_PATH="op=path,...": force a path wherever it is a candidate (e.g. conv3d=tf,fir=kernel), for tests
      and debugging; ops not named are chosen as usual. OPS lists the ops and their paths.

No timing happens where it cannot be fair or is not wanted: a shape that is not fully static, graphs traced for
XLA or for a SavedModel export (both take the cached decision if there is one, else the fixed default).
"""

import gc
import hashlib
import json
import os
import statistics
import tempfile
import threading
import time

from absl import logging

from dnnlib.ops import custom_op_build

ENV_MODE, ENV_FORCE = "DNNLIB_AUTOTUNE", "DNNLIB_OP_PATH"
# The ops that choose and their paths, TensorFlow's own (the simplest) first.
OPS = {
    "conv3d": ("tf", "fast_grad", "matmul_1x1"),
    "transposed_conv": ("conv3d_transpose", "polyphase"),
    "fir": ("tf_ops", "kernel"),
    "modulated_conv3d": ("scaled_activations", "per_sample_weights"),
}
NOISE_MARGIN = 0.10  # another path must be this much faster than TensorFlow's own (median) to be chosen
MIN_ROUNDS, MAX_ROUNDS = 3, 7
ROUND_BUDGET_S = 1.0  # rounds beyond MIN_ROUNDS only while a round costs less than this share of a second
_FORMAT = 1

_lock = threading.RLock()
_decisions = None  # key -> path, loaded from the cache file on first use
_file_usable = True  # False once the cache file failed the ownership checks (warned once)
_stats = {"decisions": 0, "seconds": 0.0}  # tunings done by this process and their total cost
_nesting = threading.local()  # a candidate's trace may tune the ops inside it: count only the outermost time
clock = time.perf_counter  # tests inject a fake clock


# ----------------------------------------------------------------------------------------------
# Settings.


def enabled():
    return os.environ.get(ENV_MODE, "1").strip().lower() not in ("0", "off", "false", "no")


def forced_paths():
    """{op: path} from DNNLIB_OP_PATH; ValueError naming the variable for an unknown op or path."""
    spec = os.environ.get(ENV_FORCE, "").strip()
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        op, sep, path = item.partition("=")
        op, path = op.strip(), path.strip()
        if not sep or op not in OPS or path not in OPS[op]:
            raise ValueError(f"{ENV_FORCE}: {item!r} is not op=path; ops and paths: "
                             + "; ".join(f"{o}={'|'.join(p)}" for o, p in OPS.items()))
        out[op] = path
    return out


def decisions():
    """A copy of the decisions known to this process (read from the cache file, or made): {key: entry}."""
    with _lock:
        return {k: dict(v) for k, v in _loaded().items()}


def stats():
    """Tunings done by this process: {'decisions': count, 'seconds': total time spent timing candidates}."""
    return dict(_stats)


# ----------------------------------------------------------------------------------------------
# The decision rule and the timing, kept apart from TensorFlow so both can be tested with injected timings.


def decide(rounds, simplest, margin=NOISE_MARGIN):
    """The path to use from timed rounds [{path: seconds}, ...]: the fastest median, unless TensorFlow's own
    path (`simplest`) is within `margin` of it or the fastest did not beat it in most rounds."""
    medians = {p: statistics.median(r[p] for r in rounds) for p in rounds[0]}
    best = min(medians, key=medians.get)
    if best == simplest:
        return best
    wins = sum(r[best] < r[simplest] for r in rounds)
    if medians[best] * (1 + margin) < medians[simplest] and wins * 2 > len(rounds):
        return best
    return simplest


def measure(runners, min_rounds=MIN_ROUNDS, max_rounds=MAX_ROUNDS, budget=ROUND_BUDGET_S):
    """Timed rounds [{name: seconds}] of blocking callables {name: fn}: one untimed warm-up each (it also traces),
    then between min_rounds and max_rounds rounds (as many as fit `budget` seconds per round, judged from a
    first timed round), each running every candidate once in an order rotated from round to round."""
    names = list(runners)
    for name in names:
        runners[name]()
    rounds = []
    while True:
        k = len(rounds)
        order = names[k % len(names):] + names[:k % len(names)]
        times = {}
        for name in order:
            t0 = clock()
            runners[name]()
            times[name] = clock() - t0
        rounds.append(times)
        per_round = sum(times.values())
        target = max(min_rounds, min(max_rounds, int(budget / per_round) if per_round > 0 else max_rounds))
        if len(rounds) >= target:
            return rounds


# ----------------------------------------------------------------------------------------------
# The cache file.


def host_key():
    """What a decision depends on besides the op: CPU model and flags or GPU names, TensorFlow's version."""
    import tensorflow as tf

    gpus = [d.name for d in tf.config.list_physical_devices("GPU")]
    names = []
    for g in gpus:
        try:
            names.append(tf.config.experimental.get_device_details(g).get("device_name", g))
        except (ValueError, RuntimeError):
            names.append(g)
    return hashlib.sha256(repr((custom_op_build.cpu_signature(), names, tf.__version__)).encode()).hexdigest()[:16]


def cache_path():
    return os.path.join(custom_op_build.cache_dir(), "autotune", f"{host_key()}.json")


def _read_file(path):
    """The decisions in the cache file ({} if absent); PermissionError if it fails the ownership checks."""
    if not os.path.lexists(path):
        if os.path.isdir(os.path.dirname(path)):
            custom_op_build.check_folders(path)
        return {}
    fd = custom_op_build.open_checked(path)
    with os.fdopen(fd, "r") as f:
        try:
            data = json.load(f)
        except ValueError:
            logging.warning("autotune cache %s is not valid JSON: ignored (rewritten on the next decision)", path)
            return {}
    if not isinstance(data, dict) or data.get("format") != _FORMAT or not isinstance(data.get("paths"), dict):
        return {}
    return {k: v for k, v in data["paths"].items() if isinstance(v, dict) and "path" in v}


def _refuse_file(path, err):
    global _file_usable
    if _file_usable:
        logging.warning("autotune cache %s not used (%s): decisions are kept in memory only", path, err)
    _file_usable = False


def _loaded():
    """The in-memory decisions, read from the cache file on first use."""
    global _decisions
    if _decisions is None:
        _decisions = {}
        path = cache_path()
        try:
            _decisions = _read_file(path)
        except (PermissionError, OSError) as e:
            _refuse_file(path, e)
    return _decisions


def _write(key, entry):
    """Merge one decision into the cache file (atomic replace; concurrent writers lose at most a decision)."""
    if not _file_usable:
        return
    path = cache_path()
    try:
        custom_op_build.make_private_dirs(os.path.dirname(path))
        current = _read_file(path)
        current[key] = entry
        fd, tmp = tempfile.mkstemp(suffix=".json", dir=os.path.dirname(path))  # mode 0600
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"format": _FORMAT, "paths": current}, f, indent=1, sort_keys=True)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    except (PermissionError, OSError) as e:
        _refuse_file(path, e)


def reset():
    """Forget the in-memory decisions and the refused-file state (a new process's view; for tests)."""
    global _decisions, _file_usable
    with _lock:
        _decisions, _file_usable = None, True
        _stats.update(decisions=0, seconds=0.0)


# ----------------------------------------------------------------------------------------------
# The chooser.


def _tracing_for_xla_or_export():
    return custom_op_build.in_xla_compile() or custom_op_build.in_saved_model_save()


def choose(op, key, fixed, candidates=None, timer=None):
    """The path of `op` for `key` (a string naming the shapes and dtype).

    fixed: the path used when autotuning is off or cannot run (the op's documented default).
    candidates: the paths possible here, TensorFlow's own first; None or one path: nothing to choose.
    timer: a zero-argument callable returning {path: blocking callable} for those candidates (built only when a
    measurement is needed; called under tf.init_scope, i.e. eagerly, even while a graph is being traced).
    """
    if op not in OPS:
        raise ValueError(f"autotune: unknown op {op!r}")
    candidates = tuple(candidates or (fixed,))
    forced = forced_paths().get(op)
    if forced in candidates:
        return forced
    if len(candidates) == 1:
        return candidates[0]
    if not enabled():
        return fixed
    full_key = f"{op}|{key}|{','.join(candidates)}"
    with _lock:
        hit = _loaded().get(full_key)
    if hit is not None and hit["path"] in candidates:
        return hit["path"]
    if timer is None or _tracing_for_xla_or_export():
        return fixed
    import tensorflow as tf

    t0 = clock()
    depth = getattr(_nesting, "depth", 0)
    _nesting.depth = depth + 1
    try:
        with tf.init_scope():  # eager, even inside a tf.function trace
            rounds = measure(timer())
    finally:
        _nesting.depth = depth
    seconds = clock() - t0
    if seconds > ROUND_BUDGET_S:  # large shapes: the candidates' traced functions hold full-size inputs in
        gc.collect()               # reference cycles; free them before the step allocates its own
    path = decide(rounds, simplest=candidates[0])
    entry = {"path": path, "median_s": {p: statistics.median(r[p] for r in rounds) for p in candidates},
             "rounds": len(rounds), "tuning_s": round(seconds, 3)}
    logging.debug("autotune %s %s -> %s (%s)", op, key, path, entry["median_s"])
    with _lock:
        _loaded()[full_key] = entry
        _stats["decisions"] += 1
        _stats["seconds"] += seconds if depth == 0 else 0.0
        _write(full_key, entry)
    return path


def gradient_timer(paths, specs, seed=0):
    """A `timer` for `choose`: {path: blocking callable} running path_fn(*inputs) forward and the gradients of all
    its inputs (random tensors of `specs`, a list of (shape, dtype)), each as one tf.function.

    paths: {path: fn(*inputs) -> tensor}."""

    def build():
        import tensorflow as tf

        _quiet_timer_retracing()
        inputs = [tf.cast(tf.random.stateless_normal(shape, seed=[seed, i]), dtype)
                  for i, (shape, dtype) in enumerate(specs)]
        runners = {}
        for name, fn in paths.items():
            def step(fn=fn):
                with tf.GradientTape() as tape:
                    tape.watch(inputs)
                    y = fn(*inputs)
                grads = tape.gradient(y, inputs, output_gradients=tf.ones_like(y))
                # A few elements of every output: all of it is computed, little is copied back.
                return [tf.reshape(t, [-1])[:1] for t in (y, *grads) if t is not None]

            traced = tf.function(step, autograph=False)
            runners[name] = lambda traced=traced: [t.numpy() for t in traced()]
        return runners

    return build


class _TimerRetracingFilter:
    """Drops TensorFlow's "frequent retracing" warning about the timers' own functions. Each candidate at each shape
    is a new tf.function traced once on purpose (they never retrace), which TensorFlow's heuristic, counting traces
    per function body, reads as a function made in a loop; the warning would only alarm a user at every start."""

    @staticmethod
    def filter(record):
        msg = record.getMessage()
        return not ("triggered tf.function retracing" in msg and "gradient_timer" in msg)


_timer_filter = _TimerRetracingFilter()


def _quiet_timer_retracing():
    import logging as std_logging

    logger = std_logging.getLogger("tensorflow")
    if _timer_filter not in logger.filters:
        logger.addFilter(_timer_filter)
