"""Shared helpers of the benchmark scripts: machine line, timing, peak memory, forward-conv peak, the real step.

Timings on a shared CPU are noisy: every figure is a median of repeats after warm-up, and every script
prints the load average next to its results so a reader can judge them.
"""

import contextlib
import datetime
import os
import platform
import resource
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

GIB = 1024**3


# ----------------------------------------------------------------------------------------------
# Machine and reporting.


def isa_line():
    """The CPU's vector extensions that decide conv speed (AVX2, AVX-512, its BF16/VNNI, AMX), from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = set(next((ln.split(":", 1)[1].split() for ln in f if ln.startswith("flags")), []))
    except OSError:
        return "ISA unknown"
    names = [("avx2", "AVX2"), ("avx512f", "AVX-512"), ("avx512_bf16", "AVX512_BF16"), ("avx512_vnni", "VNNI"),
             ("amx_tile", "AMX"), ("amx_bf16", "AMX_BF16")]
    found = [label for flag, label in names if flag in flags]
    return "ISA " + ("/".join(found) if found else "no AVX2")


# The header's forward-conv peak: one mid-size 3x3x3 conv of the networks' kind, fp32, batch 1.
PEAK_SHAPE = ("conv3", (32, 32, 32), 64, 64, 3)


def reference_peak_line(repeats=5):
    """Forward tf.nn.conv3d GFLOP/s at PEAK_SHAPE (median): the host's conv speed, printed in every header so a
    change of host shows in every RESULTS section."""
    kind, spatial, cin, cout, k = PEAK_SHAPE
    rate = forward_rate(PEAK_SHAPE, 1, repeats=repeats)
    return f"fwd-conv peak {rate:.0f} GFLOP/s ({k}^3 conv {cin}->{cout} at {'x'.join(map(str, spatial))}, fp32)"


def machine_line(peak=True):
    """One line: date (UTC), CPU, ISA, cores, RAM, TensorFlow version, forward-conv peak (peak=True), load
    average."""
    import psutil
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # the per-shape peak timers retrace on purpose: silence that warning
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), cpu)
    except OSError:
        pass
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f"{now} | {cpu} | {isa_line()} | {os.cpu_count()} cores | {psutil.virtual_memory().total / GIB:.1f} GiB"
            f" | TF {tf.__version__} | {reference_peak_line() + ' | ' if peak else ''}{load_line()}")


def load_line():
    a, b, c = os.getloadavg()
    return f"load avg {a:.2f} {b:.2f} {c:.2f} on {os.cpu_count()} cores"


def print_table(rows, headers, floatfmt="{:.3g}"):
    """Fixed-width text table; floats formatted with floatfmt."""
    def fmt(v):
        return floatfmt.format(v) if isinstance(v, float) else str(v)

    cells = [[fmt(v) for v in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) if cells else len(str(h)) for i, h in enumerate(headers)]
    line = "  ".join(str(h).rjust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-" * len(line))
    for r in cells:
        print("  ".join(v.rjust(w) for v, w in zip(r, widths, strict=True)))


def log(msg):
    """Progress line with a timestamp, flushed (long runs print while they work)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------------------------
# Timing and memory.


def time_fn(fn, warmup=1, repeats=3, clock=time.perf_counter):
    """Median time (s) of fn() over `repeats` calls after `warmup` calls; fn must block until done.

    clock: wall time by default; time.process_time gives the process's CPU seconds, the work done, which other
    processes' load disturbs less than wall time.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(max(1, repeats)):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def peak_rss_bytes():
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def current_rss_bytes():
    import psutil

    return psutil.Process().memory_info().rss


# ----------------------------------------------------------------------------------------------
# Forward-conv speed at exactly the step's shapes (bench/flops.py shape keys).


def _forward_op(key, batch, dtype="float32"):
    """A blocking callable: TF's own forward op for one flops.Layer.shape_key at `batch`, and its FLOPs.

    conv3 / up3 / down3 are timed as a stride-1 'SAME' tf.nn.conv3d at the size where their multiply-adds
    happen (same count), conv1 as the channel matmul it is.
    """
    import tensorflow as tf

    kind, spatial, cin, cout, k = key
    rng = tf.random.Generator.from_seed(0)
    x = rng.normal([batch, *spatial, cin], dtype=tf.float32)
    if kind == "conv1":
        x = tf.cast(tf.reshape(x, [-1, cin]), dtype)
        w = tf.cast(rng.normal([cin, cout]), dtype)
        op = tf.function(lambda: tf.reduce_sum(tf.matmul(x, w)[:1]))
    else:
        x = tf.cast(x, dtype)
        w = tf.cast(rng.normal([k, k, k, cin, cout]), dtype)
        op = tf.function(lambda: tf.reduce_sum(tf.nn.conv3d(x, w, [1] * 5, "SAME")[:1]))
    vox = 1
    for s in spatial:
        vox *= s
    return (lambda: op().numpy()), 2.0 * batch * vox * k**3 * cin * cout


def forward_rate(key, batch, repeats=3, dtype="float32"):
    """Forward GFLOP/s of TF's own op for one flops.Layer.shape_key at `batch`: the machine's forward speed
    (a step whose gradients ran at forward speed would reach 100% of it)."""
    run, fl = _forward_op(key, batch, dtype)
    return fl / time_fn(run, warmup=1, repeats=repeats) / 1e9


class PeakConvs:
    """The step's conv shapes as forward ops, built once: `seconds()` is the time the step's convolutions
    would take at forward speed, and can be re-timed between step runs (the host drifts over minutes).

    work: flops.conv_work(cfg, batch) -> {shape_key: FLOPs per averaged step}.
    """

    def __init__(self, work, batch):
        self.work = sorted(work.items(), key=lambda kv: -kv[1])
        self.ops = {key: _forward_op(key, batch) for key, _ in self.work}

    def seconds(self, repeats=1, warmup=0, progress=False):
        """(seconds at forward speed, {shape_key: GFLOP/s}), each shape's median of `repeats`."""
        rates, total = {}, 0.0
        for i, (key, fl) in enumerate(self.work):
            run, op_fl = self.ops[key]
            rates[key] = op_fl / time_fn(run, warmup=warmup, repeats=repeats) / 1e9
            total += fl / (rates[key] * 1e9)
            if progress:
                log(f"  peak {i + 1}/{len(self.work)} {key}: {rates[key]:.1f} GFLOP/s")
        return total, rates


def peak_conv_time(work, batch, repeats=3, progress=True):
    """Seconds the step's convolutions would take at forward speed, and the per-shape rates."""
    return PeakConvs(work, batch).seconds(repeats=repeats, warmup=1, progress=progress)


def interleaved_peak_fraction(harness, phases, peaks, repeats=3):
    """Fraction of peak with the peak convs timed right after each step run: [peak seconds / step seconds]
    per pair (the step lazy-weighted over `phases`), so a drift of the host between the two cancels."""
    harness.step_seconds(phases)  # untimed, as in paired_seconds
    fractions = []
    for _ in range(max(1, repeats)):
        t = harness.step_seconds(phases)
        fractions.append(peaks.seconds()[0] / t)
    return fractions


# ----------------------------------------------------------------------------------------------
# The real training step (training/train_step.py), built as the training loop builds it.


def paper_batch_overrides(cfg, batch):
    """Run a config at a smaller batch: pl_batch_shrink must divide the batch (1 at batch 1)."""
    cfg.batch_size = cfg.batch_gpu = int(batch)
    shrink = int(cfg.loss_kwargs.get("pl_batch_shrink", 1))
    if batch % max(shrink, 1):
        cfg.loss_kwargs.pl_batch_shrink = 1
    return cfg


class StepHarness:
    """G, D, optimisers, loss, state and TrainSteps for one config; random reals (compute only, no I/O).

    variant: None (the product ops) or a zero-argument context-manager factory from bench/formulations.py,
    entered while a phase is traced or run; the choice is baked into the traced graphs, so one harness = one
    variant. precision: a training.train_options.PRECISIONS name (compute dtype; loss scaling for mixed_fp16).
    recompute: TrainSteps' memory-saving step (run_training.py --recompute).
    """

    def __init__(self, cfg, batch=None, variant=None, xla=False, seed=0, precision="fp32", recompute=False):
        import tensorflow as tf

        from training.configs import build_networks
        from training.loss import StyleGAN2Loss
        from training.train_state import Adam, TrainState
        from training.train_step import TrainSteps

        self.cfg = paper_batch_overrides(cfg, batch or cfg.batch_size)
        self.batch = int(self.cfg.batch_size)
        self.variant = variant
        if precision != "fp32":  # as training/train_options.py sets it
            from training.train_options import PRECISIONS

            self.cfg.G_kwargs.synthesis_kwargs.compute_dtype = self.cfg.D_kwargs.compute_dtype = PRECISIONS[precision]
        tf.random.set_seed(seed)
        self.G, self.D = build_networks(self.cfg)
        self.loss = StyleGAN2Loss(self.G, self.D, **self.cfg.loss_kwargs)
        self.state = TrainState(seed, loss_scale=precision == "mixed_fp16")
        G_opt = Adam(self.G.trainable_variables, **self.cfg.G_opt_kwargs)
        D_opt = Adam(self.D.trainable_variables, **self.cfg.D_opt_kwargs)
        self.steps = TrainSteps(tf.distribute.get_strategy(), self.G, self.D, G_opt, D_opt, self.loss, self.state,
                                self.batch, xla=xla, recompute=recompute)
        self.phases = [p for p, _ in self.loss.phases()]
        self.intervals = dict(self.loss.phases())
        rng = tf.random.Generator.from_seed(seed + 1)
        self.reals = tf.clip_by_value(rng.normal([self.batch, *self.G.img_shape, self.G.img_channels]) * 0.5, -1, 1)
        self.real_c = tf.zeros([self.batch, self.G.c_dim])

    def _with_variant(self, fn):
        with self.variant() if self.variant else contextlib.nullcontext():
            return fn()

    def trace(self, phase):
        """Trace (not run) one phase's step, so the first timed call measures execution only."""
        self._with_variant(lambda: self.steps._step[phase].get_concrete_function(self.reals, self.real_c))

    def run(self, phase):
        return self._with_variant(lambda: self.steps(phase, self.reals, self.real_c))

    def weight(self, phase):
        """Runs per step: 1 for main phases, 1/interval for lazy regularisers."""
        iv = self.intervals[phase]
        return 1.0 / iv if iv else 1.0

    def step_seconds(self, phases):
        """Wall seconds of one run of each of `phases`, lazy-weighted like the step."""
        t = 0.0
        for p in phases:
            t0 = time.perf_counter()
            self.run(p)
            t += (time.perf_counter() - t0) * self.weight(p)
        return t

    def time_phases(self, warmup=1, repeats=3, progress=True, phases=None):
        """{phase: median seconds} and the lazy-averaged step seconds (over the phases timed)."""
        out = {}
        for phase in [p for p in self.phases if phases is None or p in phases]:
            t0 = time.perf_counter()
            self.trace(phase)
            if progress:
                log(f"  traced {phase} in {time.perf_counter() - t0:.1f}s")
            out[phase] = time_fn(lambda p=phase: self.run(p), warmup=warmup, repeats=repeats)
            if progress:
                log(f"  {phase}: {out[phase]:.3f}s")
        return out, sum(t * self.weight(p) for p, t in out.items())


@contextlib.contextmanager
def patched(module, **attrs):
    """Set module attributes for the duration of a with-block (a variant's ops, while a step is traced)."""
    old = {k: getattr(module, k) for k in attrs}
    for k, v in attrs.items():
        setattr(module, k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            setattr(module, k, v)


def paired_seconds(base, other, phases, repeats=3):
    """Interleaved A/B timing of two traced, warmed harnesses over `phases` (weighted per step).

    On a shared machine the load drifts by minutes; alternating base and other and taking the median of the
    pairwise differences cancels most of it. Returns (median base seconds, median other seconds, median
    difference base - other).
    """
    for h in (base, other):  # untimed: the first run after switching graphs can take seconds longer
        h.step_seconds(phases)
    tb, to, diff = [], [], []
    for _ in range(max(1, repeats)):
        pair = [h.step_seconds(phases) for h in (base, other)]
        tb.append(pair[0])
        to.append(pair[1])
        diff.append(pair[0] - pair[1])
    return statistics.median(tb), statistics.median(to), statistics.median(diff)


def snapshot_kimg(generator_dir):
    """kimg at which a snapshot was written: the tick line before 'snapshot <dir>' in the run's log."""
    snap_dir = os.path.dirname(generator_dir)
    run_dir = os.path.dirname(os.path.dirname(snap_dir))
    kimg = None
    with open(os.path.join(run_dir, "log.txt")) as f:
        for line in f:
            words = line.split()
            if words[:1] == ["tick"] and "kimg" in words:
                kimg = float(words[words.index("kimg") + 1])
            elif words[:1] == ["snapshot"] and words[1].rstrip(";") == snap_dir:
                return kimg
    raise ValueError(f"{snap_dir}: not found in {run_dir}/log.txt")
