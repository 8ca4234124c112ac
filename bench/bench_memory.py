"""Peak resident memory of a training step and of generation, and generation throughput.

Peak RSS only grows, so every measurement runs in a fresh subprocess of this script (--child):
  train:    build G, D, optimisers; run each phase of the real step once; peak RSS after building and
            after each phase. Two batch sizes give memory per volume (the slope) and the largest batch
            that fits in --budget_gib (intercept + slope * batch <= budget).
  generate: one volume at a time through G (mapping + synthesis, const noise) in a tf.function;
            peak RSS and volumes/s (median of repeats after the first call).
  layer:    (--layers) one op of the config's top-resolution layer, or G / D whole, at batch 1 in a tf.function:
            its peak RSS above the process after tracing (inputs included, TensorFlow's runtime not), and seconds.
            Finds which layer or op holds a phase's peak.
The regulariser batch is not shrunk here (pl_batch_shrink=1): Greg then holds as many volumes as the
other phases, so the per-volume figure is an upper bound for every phase.

    python -m bench.bench_memory --quick        # demo-tiny config (a few minutes on a loaded machine)
    python -m bench.bench_memory                # 2 mm training at batch 1 and 2; generation at 2 mm and 1 mm
    python -m bench.bench_memory --train_batches=1 --gen_configs= --layers   # + the top layer's ops one by one
"""

import json
import math
import os
import subprocess
import sys
import time

from absl import app, flags

from bench import common
from dnnlib import UserError
from dnnlib.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "demo-tiny config only (checks the script quickly).")
flags.DEFINE_string("train_config", "Gorig-Dres-3d-2mm-base567", "Config of the training-step measurement.")
flags.DEFINE_list("train_batches", ["1", "2"], "Batch sizes of the training-step measurement (two give the slope; "
                  "empty skips it).")
flags.DEFINE_list("gen_configs", ["Gorig-Dres-3d-2mm-base567", "Gorig-Dres-3d-1mm-base567"], "Generation configs.")
flags.DEFINE_integer("gen_repeats", 2, "Timed generation calls after the first (median).")
flags.DEFINE_float("budget_gib", 24.0, "Memory budget for the largest-batch extrapolation.")
flags.DEFINE_enum("fir_impl", "auto", ["auto", "kernel", "ops"], "FIR path: 'auto' as the ops choose, 'kernel' "
                  "the same but an error where the C++ kernel cannot be built, 'ops' TensorFlow ops "
                  "(bench/formulations.py fir_as_tf_ops): the C++ kernel's memory against the TensorFlow-ops path.")
flags.DEFINE_bool("recompute", False, "The memory-saving training step (--recompute of run_training.py: "
                  "recomputed block activations, loss terms one after another).")
flags.DEFINE_bool("recompute_twice", False, "--recompute whose block gradients are recomputed again in "
                  "second-order passes (bench/formulations.py recompute_with_recomputed_gradients).")
flags.DEFINE_bool("split_phases", False, "Regularisers as phases of their own (lazy: Gmain, Greg, Dmain, Dreg) "
                  "instead of the paper configs' Gboth/Dboth, so each term's memory shows alone.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "mixed_fp16", "mixed_bf16"], "Compute precision of the "
                  "training step (--precision of run_training.py; 16-bit activations halve their memory).")
flags.DEFINE_integer("inter_op_threads", 0, "TensorFlow inter-op threads of the measured process (0: TensorFlow's "
                     "default, one per core). 1 runs a step's independent branches one after the other.")
flags.DEFINE_bool("onednn", True, "Measured processes with TensorFlow's oneDNN CPU ops (TF_ENABLE_ONEDNN_OPTS; "
                  "--noonednn turns them off: oneDNN keeps memory of a phase after it ends).")
flags.DEFINE_bool("second_call", False, "Training step: time a second call of every phase (no tracing).")
flags.DEFINE_bool("layers", False, "Also measure the top-resolution layer's ops and G / D whole, one per process.")
flags.DEFINE_enum("child", None, ["train", "generate", "layer"], "Internal: run one measurement in this process.")
flags.DEFINE_string("op", None, "Internal (--child=layer): which op (LAYER_OPS).")
flags.DEFINE_string("config", None, "Internal (--child): config name.")
flags.DEFINE_integer("batch", 1, "Internal (--child): batch size.")

_TAG = "RESULT "


def allocator_peak(reset=False):
    """Peak bytes of TensorFlow's CPU allocator since the last reset (None where TensorFlow cannot tell).

    Unlike the RSS, it counts tensors only (no runtime, no memory an allocator keeps after a phase), like a GPU's
    memory figure; the reset makes it per phase.
    """
    import tensorflow as tf

    try:
        if reset:
            tf.config.experimental.reset_memory_stats("CPU:0")
        return tf.config.experimental.get_memory_info("CPU:0")["peak"]
    except (ValueError, tf.errors.InvalidArgumentError):
        return None


def child_train(name, batch):
    from bench import formulations
    from bench.common import StepHarness, current_rss_bytes, peak_rss_bytes
    from training.configs import get_config

    cfg = get_config(name)
    cfg.loss_kwargs.pl_batch_shrink = 1
    if FLAGS.split_phases:
        cfg.loss_kwargs.G_reg_interval, cfg.loss_kwargs.D_reg_interval = 4, 16
    rss0 = current_rss_bytes()
    variant = formulations.recompute_with_recomputed_gradients if FLAGS.recompute_twice else None
    h = StepHarness(cfg, batch=batch, variant=variant, recompute=FLAGS.recompute or FLAGS.recompute_twice,
                    precision=FLAGS.precision)
    out = {"rss_start": rss0, "after_build": peak_rss_bytes(), "phases": {}, "seconds": {}, "second_call": {},
           "allocator": {}}
    for phase in h.phases:
        allocator_peak(reset=True)
        t0 = time.perf_counter()
        h.run(phase)
        out["seconds"][phase] = time.perf_counter() - t0
        out["phases"][phase] = peak_rss_bytes()
        out["allocator"][phase] = allocator_peak()
    if FLAGS.second_call:
        for phase in h.phases:
            t0 = time.perf_counter()
            h.run(phase)
            out["second_call"][phase] = time.perf_counter() - t0
    out["peak"] = peak_rss_bytes()
    return out


# Ops of the top-resolution layers (batch 1, the config's channels and image shape), and the networks whole.
LAYER_OPS = {
    "conv3d fwd": "3x3x3 conv C->C at the top resolution, forward",
    "conv3d fwd+bwd": "the same, with input and filter gradients (dnnlib.ops.conv3d custom gradients)",
    "filter grad": "the 3x3x3 filter gradient alone (depth taps)",
    "upsample conv fwd+bwd": "G's top upsampling conv C->C from half resolution, with gradients",
    "downsample conv fwd+bwd": "D's top downsampling conv C->C to half resolution, with gradients",
    "G fwd": "the generator (mapping + synthesis), forward",
    "D fwd+bwd": "the discriminator on one volume, with its weight gradients",
}


def child_layer(name, op):
    import tensorflow as tf

    from bench.common import current_rss_bytes, peak_rss_bytes
    from dnnlib.ops import conv3d as C
    from dnnlib.ops.upfirdn_3d import conv_downsample_3d, setup_filter, upsample_conv_3d
    from training.configs import build_networks, get_config

    cfg = get_config(name)
    shape = list(cfg.img_shape)
    ch = int(cfg.G_kwargs.synthesis_kwargs.fmap_max)
    rng = tf.random.Generator.from_seed(0)
    w = rng.normal([3, 3, 3, ch, ch]) * 0.05
    full, half = [1, *shape, ch], [1, *[s // 2 for s in shape], ch]

    def with_grads(f, x):
        def run():
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                loss = tf.reduce_sum(tf.square(f(x)))
            return tape.gradient(loss, [x, w])
        return run

    if op in ("G fwd", "D fwd+bwd"):
        G, D = build_networks(cfg)
        if op == "G fwd":
            z = rng.normal([1, G.z_dim])
            fn = lambda: G(z, noise_mode="const")  # noqa: E731
        else:
            img = rng.normal([1, *shape, 1])

            def fn():
                with tf.GradientTape() as tape:
                    loss = tf.reduce_sum(D(img))
                return tape.gradient(loss, D.trainable_variables)
    elif op == "conv3d fwd":
        x = rng.normal(full)
        fn = lambda: C.conv3d(x, w)  # noqa: E731
    elif op == "conv3d fwd+bwd":
        fn = with_grads(lambda x: C.conv3d(x, w), rng.normal(full))
    elif op == "filter grad":
        x, dy = rng.normal(full), rng.normal(full)
        fn = lambda: C._filter_grad_fast(x, dy, C.explicit_pads("SAME", (3, 3, 3)), (3, 3, 3))  # noqa: E731
    elif op == "upsample conv fwd+bwd":
        f = setup_filter(cfg.G_kwargs.synthesis_kwargs.resample_filter)
        fn = with_grads(lambda x: upsample_conv_3d(x, w, f, up=2, padding=1), rng.normal(half))
    elif op == "downsample conv fwd+bwd":
        f = setup_filter(cfg.D_kwargs.resample_filter)
        fn = with_grads(lambda x: conv_downsample_3d(x, w, f, down=2, padding=(len(f) - 1) // 2), rng.normal(full))
    else:
        raise ValueError(f"unknown layer op {op!r}; choose one of: {', '.join(LAYER_OPS)}")
    fn = tf.function(fn)
    fn.get_concrete_function()
    rss0 = current_rss_bytes()
    t0 = time.perf_counter()
    tf.nest.map_structure(lambda t: t.numpy(), fn())
    return {"rss_start": rss0, "peak": peak_rss_bytes(), "seconds": time.perf_counter() - t0}


def child_generate(name, repeats):
    import tensorflow as tf

    from bench.common import current_rss_bytes, peak_rss_bytes, time_fn
    from training.configs import build_networks, get_config

    rss0 = current_rss_bytes()
    G, _ = build_networks(get_config(name))
    after_build = peak_rss_bytes()
    z = tf.random.Generator.from_seed(0).normal([1, G.z_dim])

    @tf.function
    def gen(z):
        return G(z, noise_mode="const")

    t0 = time.perf_counter()
    gen(z).numpy()
    first = time.perf_counter() - t0
    t = time_fn(lambda: gen(z).numpy(), warmup=0, repeats=repeats)
    return {"rss_start": rss0, "after_build": after_build, "peak": peak_rss_bytes(), "first_call": first,
            "seconds": t, "volumes_per_s": 1.0 / t}


def run_child(*args):
    cmd = [sys.executable, "-m", "bench.bench_memory", *args]
    common.log("  $ " + " ".join(cmd[1:]))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    if not FLAGS.onednn:
        env["TF_ENABLE_ONEDNN_OPTS"] = "0"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=root)
    for line in p.stdout.splitlines():
        if line.startswith(_TAG):
            return json.loads(line[len(_TAG):])
    tail = (p.stderr or p.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {p.returncode}: " + " | ".join(tail)}


def _gib(b):
    return b / common.GIB


def _phase_seconds(seconds):
    return " ".join(f"{p}={s:.0f}s" for p, s in seconds.items()) + f", step {sum(seconds.values()):.0f}s"


def parent():
    train_cfg = "demo-tiny" if FLAGS.quick else FLAGS.train_config
    gen_cfgs = ["demo-tiny"] if FLAGS.quick else FLAGS.gen_configs
    try:
        batches = sorted({int(b) for b in FLAGS.train_batches})
    except ValueError:
        raise UserError(f"--train_batches={FLAGS.train_batches}: expected integers") from None
    if batches and batches[0] < 1:
        raise UserError("--train_batches must be positive integers (or empty to skip the training step)")
    print(f"bench_memory | {common.machine_line()}")
    print(f"command: python -m bench.bench_memory {' '.join(sys.argv[1:])}")

    rows, peaks, after_build = [], {}, {}
    for b in batches:
        common.log(f"training step {train_cfg} batch {b} (fresh process) ...")
        r = run_child("--child=train", f"--config={train_cfg}", f"--batch={b}", f"--fir_impl={FLAGS.fir_impl}",
                      f"--recompute={FLAGS.recompute}", f"--recompute_twice={FLAGS.recompute_twice}",
                      f"--split_phases={FLAGS.split_phases}", f"--precision={FLAGS.precision}",
                      f"--inter_op_threads={FLAGS.inter_op_threads}",
                      f"--second_call={FLAGS.second_call}")
        if "error" in r:
            rows.append([f"train {train_cfg}", b, "failed", "-", "-", r["error"][:120]])
            continue
        peaks[b], after_build[b] = r["peak"], r["after_build"]
        which = max(r["phases"], key=lambda p: r["phases"][p])
        notes = f"peak reached in {which}; first calls " + _phase_seconds(r["seconds"])
        if all(v is not None for v in r["allocator"].values()):
            notes += "; TensorFlow allocator peak " + " ".join(f"{p}={_gib(v):.3f}" for p, v in r["allocator"].items())
        if r.get("second_call"):
            notes += "; second calls " + _phase_seconds(r["second_call"])
        rows.append([f"train {train_cfg}", b, _gib(r["after_build"]), _gib(r["peak"]),
                     _gib(r["peak"] - r["after_build"]) / b, notes])
    if FLAGS.layers:
        for op in LAYER_OPS:
            common.log(f"layer {train_cfg} {op} (fresh process) ...")
            r = run_child("--child=layer", f"--config={train_cfg}", f"--op={op}", f"--fir_impl={FLAGS.fir_impl}",
                          f"--inter_op_threads={FLAGS.inter_op_threads}")
            if "error" in r:
                rows.append([f"layer {op}", 1, "failed", "-", "-", r["error"][:120]])
                continue
            rows.append([f"layer {op}", 1, _gib(r["rss_start"]), _gib(r["peak"]), _gib(r["peak"] - r["rss_start"]),
                         f"{r['seconds']:.1f}s (first call); {LAYER_OPS[op]}"])
    for name in gen_cfgs:
        common.log(f"generation {name} (fresh process) ...")
        r = run_child("--child=generate", f"--config={name}", f"--gen_repeats={FLAGS.gen_repeats}",
                      f"--fir_impl={FLAGS.fir_impl}")
        if "error" in r:
            rows.append([f"generate {name}", 1, "failed", "-", "-", r["error"][:120]])
            continue
        rows.append([f"generate {name}", 1, _gib(r["after_build"]), _gib(r["peak"]), _gib(r["peak"] - r["after_build"]),
                     f"{r['volumes_per_s']:.3f} volumes/s ({r['seconds']:.2f}s each; "
                     f"first call {r['first_call']:.1f}s)"])
    print()
    common.print_table(rows, ["measurement", "batch", "GiB after build", "peak GiB", "(peak-build)/volume GiB",
                              "notes"])
    if FLAGS.layers:
        print("(layer rows: 'GiB after build' is the process after tracing, inputs included; the next column is the "
              "op's working memory above it)")
    if len(peaks) >= 2:
        b0, b1 = min(peaks), max(peaks)
        slope = (peaks[b1] - peaks[b0]) / (b1 - b0)
        intercept = peaks[b0] - slope * b0
        if slope > 0:
            fit = math.floor((FLAGS.budget_gib * common.GIB - intercept) / slope)
            print(f"\ntraining step {train_cfg}: {_gib(slope):.2f} GiB per extra volume, "
                  f"{_gib(intercept):.2f} GiB fixed; "
                  f"largest batch in {FLAGS.budget_gib:g} GiB: {max(fit, 0)} (linear extrapolation from batches "
                  f"{b0} and {b1})")
        else:
            print(f"\ntraining step {train_cfg}: peak did not grow from batch {b0} to {b1} (noise); no extrapolation")
    elif len(peaks) == 1:
        (b0, p0), = peaks.items()
        per = (p0 - after_build[b0]) / b0
        fit = math.floor((FLAGS.budget_gib * common.GIB - after_build[b0]) / per) if per > 0 else 0
        print(f"\ntraining step {train_cfg}: at most {_gib(per):.2f} GiB per volume (peak minus after-build at batch "
              f"{b0}); largest batch in {FLAGS.budget_gib:g} GiB: at least {max(fit, 0)} (conservative)")
    print(f"\ndone | {common.load_line()}")


def main(argv):
    del argv
    if FLAGS.child and FLAGS.inter_op_threads:
        import tensorflow as tf

        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.inter_op_threads)  # before TensorFlow starts
    if FLAGS.child:
        from bench import formulations
        from dnnlib.ops import upfirdn_3d

        if FLAGS.fir_impl == "kernel" and upfirdn_3d.kernel_library() is None:
            raise UserError("--fir_impl=kernel: the C++ FIR kernel cannot be built on this machine (see the log)")
        if FLAGS.fir_impl == "ops":
            formulations.fir_as_tf_ops().__enter__()  # this child process measures the TensorFlow-ops path only
    if FLAGS.child == "train":
        print(_TAG + json.dumps(child_train(FLAGS.config, FLAGS.batch)), flush=True)
    elif FLAGS.child == "generate":
        print(_TAG + json.dumps(child_generate(FLAGS.config, max(1, FLAGS.gen_repeats))), flush=True)
    elif FLAGS.child == "layer":
        print(_TAG + json.dumps(child_layer(FLAGS.config, FLAGS.op)), flush=True)
    else:
        parent()


if __name__ == "__main__":
    app.run(run_main(main))
