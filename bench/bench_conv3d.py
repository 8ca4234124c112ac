"""Benchmark the 3D kernels on this machine: conv3d forward, TF's gradients vs the fast ones, upfirdn.

Usage: python -m bench.bench_conv3d [--quick] [--repeats 3] [--shapes 16x80x96x112x1,...]
Prints GFLOP/s (FLOPs of a conv = 2 * N * D*H*W * k^3 * Cin * Cout) and ratios measured in this run.
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf
from absl import app, flags

from bench import formulations as F
from dnnlib.ops import conv3d as C
from dnnlib.ops import upfirdn_3d as U

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Small shapes only (about a minute).")
flags.DEFINE_integer("repeats", 3, "Timed runs per op (best is reported).")
flags.DEFINE_list("sections", ["conv", "1x1", "upfirdn", "fir", "resample", "slicing", "upsample"],
                  "Which parts to run.")
flags.DEFINE_string("shapes", None, "Comma-separated CxDxHxWxN conv shapes (Cin = Cout = C), overriding the presets.")

# Shapes the configs use: channels x D x H x W x batch.
FULL_SHAPES = ["16x80x96x112x1", "64x20x24x28x4", "96x40x48x56x1", "96x80x96x112x1", "18x160x192x224x1"]
QUICK_SHAPES = ["16x40x48x56x1", "64x20x24x28x4", "96x20x24x28x2"]


def _parse_shape(s):
    try:
        c, d, h, w, n = (int(v) for v in s.lower().split("x"))
    except ValueError:
        raise app.UsageError(f"--shapes: {s!r} is not CxDxHxWxN (e.g. 16x80x96x112x1)") from None
    return c, (d, h, w), n


def best_time(fn, repeats):
    fn()  # trace + warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        _ = [o.numpy() for o in tf.nest.flatten(out)][:0]
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_conv_shape(c, spatial, n, k, repeats):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.standard_normal((n, *spatial, c), dtype=np.float32))
    w = tf.constant(rng.standard_normal((k, k, k, c, c), dtype=np.float32) * 0.05)
    dy = tf.constant(rng.standard_normal((n, *spatial, c), dtype=np.float32))
    flops = 2 * n * np.prod(spatial) * k**3 * c * c
    ksize = tf.constant([k, k, k, c, c], tf.int32)
    ops = {
        "forward tf.nn.conv3d": tf.function(lambda: tf.nn.conv3d(x, w, [1] * 5, "SAME")),
        "dx TF Conv3DBackpropInputV2": tf.function(lambda: tf.raw_ops.Conv3DBackpropInputV2(
            input_sizes=tf.constant([n, *spatial, c], tf.int32), filter=w, out_backprop=dy, strides=[1] * 5,
            padding="SAME")),
        "dx fast (fwd conv, flipped w)": tf.function(lambda: tf.nn.conv3d(dy, C.flip_swap(w), [1] * 5, "SAME")),
        "dw TF Conv3DBackpropFilterV2": tf.function(lambda: tf.raw_ops.Conv3DBackpropFilterV2(
            input=x, filter_sizes=ksize, out_backprop=dy, strides=[1] * 5, padding="SAME")),
    }
    pads = C.explicit_pads("SAME", (k, k, k))
    for name, fg in F.FILTER_GRADS.items():
        if name != "tf":
            ops[f"dw {name}"] = tf.function(lambda fg=fg: fg(x, dy, pads, (k, k, k)))

    def train_step(conv):
        def step():
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                y = conv(x, w, "SAME")
                loss = tf.reduce_sum(y * dy)
            return tape.gradient(loss, [x, w])
        return step

    results = {}
    for name, fn in ops.items():
        try:
            results[name] = best_time(fn, repeats)
        except (tf.errors.ResourceExhaustedError, MemoryError) as e:
            results[name] = float("nan")
            print(f"  {name}: out of memory ({type(e).__name__})")
    best_fg = min((results[f"dw {i}"], i) for i in F.FILTER_GRADS if i != "tf" and np.isfinite(results[f"dw {i}"]))
    best_fg = min(best_fg, (results["dw TF Conv3DBackpropFilterV2"], "tf"))
    results["fwd+bwd conv3d plain tf"] = best_time(tf.function(train_step(F.conv3d_tf)), repeats)
    results[f"fwd+bwd conv3d fast (dw {best_fg[1]})"] = best_time(
        tf.function(train_step(F.conv3d_with_filter_grad(best_fg[1]))), repeats)
    fwd = results["forward tf.nn.conv3d"]
    print(f"\n{k}x{k}x{k} conv, {c} ch @ {'x'.join(map(str, spatial))} b{n}: {flops / 1e9:.2f} GFLOP per conv")
    print(f"  {'op':45s} {'time s':>8s} {'GFLOP/s':>8s} {'vs fwd':>7s}")
    for name, t in results.items():
        f = flops * (3 if name.startswith("fwd+bwd") else 1)
        print(f"  {name:45s} {t:8.3f} {f / t / 1e9:8.1f} {t / fwd:7.2f}")
    return results


def bench_1x1(c_in, c_out, spatial, n, repeats):
    rng = np.random.default_rng(1)
    x = tf.constant(rng.standard_normal((n, *spatial, c_in), dtype=np.float32))
    w = tf.constant(rng.standard_normal((1, 1, 1, c_in, c_out), dtype=np.float32))

    def step(fn):
        def run():
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                loss = tf.reduce_sum(tf.square(fn()))
            return tape.gradient(loss, [x, w])
        return tf.function(run)

    t_conv = best_time(step(lambda: tf.nn.conv3d(x, w, [1] * 5, "SAME")), repeats)
    t_mm = best_time(step(lambda: C._conv_1x1(x, w)), repeats)
    print(f"\n1x1x1 conv {c_in}->{c_out} @ {'x'.join(map(str, spatial))} b{n}, fwd+bwd: tf.nn.conv3d {t_conv:.3f}s, "
          f"matmul {t_mm:.3f}s, ratio conv/matmul {t_conv / t_mm:.2f}")


def bench_upfirdn(c, spatial, n, repeats):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((n, *spatial, c), dtype=np.float32))
    f = U.setup_filter([1, 3, 3, 1])
    fir = "C++ kernel" if U._use_kernel(x) else "TensorFlow ops"
    print(f"\nupfirdn, {c} ch @ {'x'.join(map(str, spatial))} b{n} (separable = the product op, {fir}):")
    for name, fns in [("upsample_3d x2", (U.upsample_3d, F.upsample_3d_dense)),
                      ("downsample_3d /2", (U.downsample_3d, F.downsample_3d_dense))]:
        times = {impl: best_time(tf.function(lambda fn=fn: fn(x, f, 2)), repeats)
                 for impl, fn in zip(("separable", "dense"), fns, strict=True)}
        print(f"  {name:18s} separable {times['separable']:.3f}s  dense {times['dense']:.3f}s  "
              f"dense/separable {times['dense'] / times['separable']:.2f}")


# The step's FIR calls at demo (batch 4, 40x48x56; G's top upsampling runs per sample) and one at 1 mm.
FIR_SHAPES = [  # (name, NDHWC, down, padding)
    ("G up-conv filter", (1, 41, 49, 57, 8), 1, 1),
    ("D conv-down filter", (4, 40, 48, 56, 8), 1, (2, 3, 2, 3, 2, 3)),
    ("D skip /2", (4, 40, 48, 56, 8), 2, 1),
    ("G up-conv filter", (4, 21, 25, 29, 16), 1, 1),
    ("1 mm up-conv filter", (1, 161, 193, 225, 16), 1, 1),
]


def _fir_fwd_grad_times(fir, x, taps3, down, pads, repeats):
    def fwd():
        return fir(x, taps3, (1, 1, 1), down, pads)

    dy = tf.ones(fwd().shape)

    def grad():
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fwd()
        return tape.gradient(y, x, output_gradients=dy)

    return [best_time(tf.function(fn), repeats) for fn in (fwd, grad)]


def bench_fir(repeats, quick=False):
    """The C++ FIR kernel against the TensorFlow-ops path (three depthwise-conv passes): forward, and the
    input gradient alone (a linear op's backward does not need its forward)."""
    f = U.setup_filter([1, 3, 3, 1])
    taps3 = [f.astype(np.float64)[::-1]] * 3
    print("\nFIR (separable [1,3,3,1] on every axis), C++ kernel vs TensorFlow ops:")
    if U.kernel_library() is None:
        print("  kernel not available on this machine (see the log); skipped")
        return
    for name, shape, down, padding in FIR_SHAPES[:2] if quick else FIR_SHAPES:
        x = tf.constant(np.random.default_rng(4).standard_normal(shape, dtype=np.float32))
        times = {impl: _fir_fwd_grad_times(fir, x, taps3, (down,) * 3, U._pads6(padding), repeats)
                 for impl, fir in (("ops", U._upfirdn_separable), ("kernel", U._upfirdn_kernel))}
        (of, ob), (kf, kb) = times["ops"], times["kernel"]
        print(f"  {name:20s} {'x'.join(map(str, shape))} down {down}: fwd ops {of * 1e3:.1f} ms, kernel {kf * 1e3:.1f} "
              f"ms ({of / kf:.2f}x); grad ops {ob * 1e3:.1f} ms, kernel {kb * 1e3:.1f} ms ({ob / kb:.2f}x)")


def bench_resample_conv(c, spatial, n, repeats):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.standard_normal((n, *spatial, c), dtype=np.float32))
    w = tf.constant(rng.standard_normal((3, 3, 3, c, c), dtype=np.float32) * 0.05)
    f = U.setup_filter([1, 3, 3, 1])

    def step(fn):
        def run():
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                loss = tf.reduce_sum(tf.square(fn()))
            return tape.gradient(loss, [x, w])
        return tf.function(run)

    up_fused = best_time(step(lambda: U.upsample_conv_3d(x, w, f)), repeats)
    up_plain = best_time(step(lambda: C.conv3d(U.upsample_3d(x, f), w)), repeats)
    down_fused = best_time(step(lambda: U.conv_downsample_3d(x, w, f)), repeats)
    down_plain = best_time(step(lambda: U.downsample_3d(C.conv3d(x, w), f)), repeats)
    print(f"\nresampling 3x3x3 conv, {c} ch @ {'x'.join(map(str, spatial))} b{n} (input), fwd+bwd:")
    print(f"  upsample_conv_3d {up_fused:.3f}s vs conv3d(upsample_3d) {up_plain:.3f}s  ratio {up_plain / up_fused:.2f}")
    print(f"  conv_downsample_3d {down_fused:.3f}s vs downsample_3d(conv3d) {down_plain:.3f}s  "
          f"ratio {down_plain / down_fused:.2f}")


def bench_slicing(c, spatial, n, repeats):
    """Glue ops of the resampling paths, fwd+bwd: crops and stride-2 phases, StridedSlice vs the forms used."""
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((n, *spatial, c), dtype=np.float32))
    w = tf.constant(rng.standard_normal((3, 3, 3, c, c), dtype=np.float32) * 0.05)
    even = [s - s % 2 for s in spatial]

    def fwd_bwd(fn):
        def run():
            with tf.GradientTape() as tape:
                tape.watch(x)
                ys = tf.nest.flatten(fn())
                loss = tf.add_n([tf.reduce_sum(tf.square(y)) for y in ys])
            return tape.gradient(loss, x)
        return best_time(tf.function(run), repeats)

    size = [n, *(s - 1 for s in spatial), c]
    t = {
        "crop x[:, 1:, 1:, 1:] (StridedSlice)": fwd_bwd(lambda: x[:, 1:, 1:, 1:, :]),
        "crop tf.slice (Slice)": fwd_bwd(lambda: tf.slice(x, [0, 1, 1, 1, 0], size)),
        "8 phases x[:, a::2, b::2, c::2] (StridedSlice)": fwd_bwd(
            lambda: [x[:, a:even[0]:2, b:even[1]:2, cc:even[2]:2, :] for a in (0, 1) for b in (0, 1) for cc in (0, 1)]),
        "8 phases space-to-batch (reshape+transpose)": fwd_bwd(
            lambda: U._phases(tf.slice(x, [0, 0, 0, 0, 0], [n, *even, c]), (2, 2, 2))),
        "reference: forward 3x3x3 conv3d": best_time(tf.function(lambda: tf.nn.conv3d(x, w, [1] * 5, "SAME")), repeats),
    }
    print(f"\nslicing glue, {c} ch @ {'x'.join(map(str, spatial))} b{n}, fwd+bwd (sum of squares):")
    for name, sec in t.items():
        print(f"  {name:48s} {sec:.3f}s")
    keys = list(t)
    print(f"  StridedSlice/Slice crop {t[keys[0]] / t[keys[1]]:.2f}x, strided/space-to-batch phases "
          f"{t[keys[2]] / t[keys[3]]:.2f}x")


# Transposed-conv inputs of the generators' upsampling layers (N, D, H, W, Cin, Cout): demo at batch 4 and
# at Greg's half batch 2, and the 2 mm paper config at batch 1.
UPSAMPLE_SHAPES = [(4, (5, 6, 7), 64, 32), (4, (10, 12, 14), 32, 16), (4, (20, 24, 28), 16, 8),
                   (2, (20, 24, 28), 16, 8), (1, (10, 12, 14), 96, 96), (1, (40, 48, 56), 96, 96)]


def bench_upsample_impls(shapes, repeats):
    """upsample_conv_3d's transposed conv: tf.nn.conv3d_transpose vs polyphase stride-1 conv3d's (fwd+bwd)."""
    print("\nupsample_conv_3d x2, 3x3x3, fwd+bwd: conv3d_transpose vs polyphase (what 'auto' picks on this host)")
    f = U.setup_filter([1, 3, 3, 1])
    for n, spatial, cin, cout in shapes:
        rng = np.random.default_rng(4)
        x = tf.constant(rng.standard_normal((n, *spatial, cin), dtype=np.float32))
        w = tf.constant(rng.standard_normal((3, 3, 3, cin, cout), dtype=np.float32) * 0.05)

        def run(x=x, w=w):
            with tf.GradientTape() as tape:
                tape.watch([x, w])
                loss = tf.reduce_sum(tf.square(U.upsample_conv_3d(x, w, f)))
            return tape.gradient(loss, [x, w])

        times = {}
        with F.upsampling_by_conv3d_transpose():
            times["transpose"] = best_time(tf.function(run), repeats)
        with F.upsampling_by_polyphase():
            times["polyphase"] = best_time(tf.function(run), repeats)
        auto = "polyphase" if U._use_polyphase(x) else "transpose"
        print(f"  b{n} {'x'.join(map(str, spatial))}x{cin}->{cout}: transpose {times['transpose']:.3f}s  "
              f"polyphase {times['polyphase']:.3f}s  transpose/polyphase {times['transpose'] / times['polyphase']:.2f}"
              f"  auto -> {auto}", flush=True)


def main(_):
    shapes = FLAGS.shapes.split(",") if FLAGS.shapes else (QUICK_SHAPES if FLAGS.quick else FULL_SHAPES)
    shapes = [_parse_shape(s) for s in shapes]
    print(f"TensorFlow {tf.__version__}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"conv3d path {'GPU tf.nn.conv3d' if C._have_gpu() else 'CPU fast gradients'}")
    t0 = time.time()
    sections = set(FLAGS.sections)
    if "conv" in sections:
        for c, spatial, n in shapes:
            bench_conv_shape(c, spatial, n, 3, FLAGS.repeats)
    if "1x1" in sections:
        bench_1x1(64, 64, (20, 24, 28) if FLAGS.quick else (40, 48, 56), 2, FLAGS.repeats)
        bench_1x1(32, 1, (40, 48, 56) if FLAGS.quick else (80, 96, 112), 2, FLAGS.repeats)
    if "upfirdn" in sections:
        bench_upfirdn(16, (20, 24, 28), 2, FLAGS.repeats)  # dense is slow: keep this small
    if "fir" in sections:
        bench_fir(FLAGS.repeats, FLAGS.quick)
    if "resample" in sections:
        bench_resample_conv(32, (10, 12, 14) if FLAGS.quick else (20, 24, 28), 2, FLAGS.repeats)
    if "slicing" in sections:
        bench_slicing(8, (20, 24, 28) if FLAGS.quick else (41, 49, 57), 4, FLAGS.repeats)
    if "upsample" in sections:
        bench_upsample_impls(UPSAMPLE_SHAPES[:4] if FLAGS.quick else UPSAMPLE_SHAPES, FLAGS.repeats)
    print(f"\ntotal {time.time() - t0:.0f}s")


if __name__ == "__main__":
    app.run(main)
