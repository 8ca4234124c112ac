"""Benchmark G and D forward+backward against the machine's raw conv3d speed, in one run.

Prints, per config: tf.nn.conv3d forward GFLOP/s at the network's largest 3x3x3 conv shape, the
analytic conv FLOPs of G and D (forward; backward counted as 2x forward), the measured forward+backward
time of G and D at the given batch, and the achieved fraction of the measured conv speed.

    TF_CPP_MIN_LOG_LEVEL=2 python -m bench.bench_networks            # demo + Gorig-Dres-3d-2mm-base567
    TF_CPP_MIN_LOG_LEVEL=2 python -m bench.bench_networks --quick    # demo only

FLOPs are counted as implemented: a 2-FLOP multiply-add per tap; resampling convs run at the low
resolution (transposed conv for upsampling, filter-then-strided conv for downsampling); dense layers,
filters and elementwise ops are left out (they are small next to the 3x3x3 convs).
"""

import os
import platform
import resource
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from training import configs, networks

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "Only the demo config.")
flags.DEFINE_integer("batch", 1, "Batch size for the G and D timings.")
flags.DEFINE_integer("repeats", 3, "Timed repeats for the demo config (paper configs: --paper_repeats).")
flags.DEFINE_integer("paper_repeats", 1, "Timed repeats for the paper config (each takes minutes on a CPU).")
flags.DEFINE_list("configs", None, "Override the configs to run (comma-separated names).")


def _conv_layers(module):
    """(weight shape, low-res voxels) for every conv layer, low-res = the resolution the conv runs at."""
    out = []
    for _, layer, shape in module._summary_rows():
        if isinstance(layer, list) or isinstance(layer, networks.FullyConnectedLayer):
            continue
        w = layer.weight.shape
        res = np.array(shape[:3])
        if isinstance(layer, networks.SynthesisLayer) and layer.up is not None:
            res = res // np.array(layer.up)  # transposed conv at the input resolution
        out.append((tuple(w), int(np.prod(res))))
    return out


def conv_flops(module, batch=1):
    return sum(2 * vox * int(np.prod(w)) for w, vox in _conv_layers(module)) * batch


def largest_conv(G):
    """Input shape and kernel of G's most expensive 3x3x3 conv (the top stage's conv1)."""
    block = G.synthesis.blocks[-1]
    w = block.conv1.weight.shape
    return [*block.resolution, int(w[3])], tuple(int(s) for s in w)


def time_fn(fn, args, repeats):
    t0 = time.perf_counter()
    concrete = fn.get_concrete_function(*args)
    trace = time.perf_counter() - t0
    t0 = time.perf_counter()
    _ = [o.numpy() for o in tf.nest.flatten(concrete(*args))]  # first run: graph optimisation + execution
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats - 1):
        t0 = time.perf_counter()
        out = concrete(*args)
        _ = [o.numpy() for o in tf.nest.flatten(out)]
        times.append(time.perf_counter() - t0)
    return trace, first, (float(np.median(times)) if times else first)


def conv_gflops(in_shape, kernel, batch, repeats=5):
    x = tf.random.normal([batch, *in_shape])
    w = tf.random.normal(kernel)
    fn = tf.function(lambda x, w: tf.reduce_sum(tf.nn.conv3d(x, w, [1] * 5, "SAME")))
    fn(x, w)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(x, w).numpy()
        times.append(time.perf_counter() - t0)
    flops = 2 * batch * int(np.prod(in_shape[:3])) * int(np.prod(kernel))
    return flops / float(np.median(times)) / 1e9


def bench_config(name, batch, repeats):
    tf.random.set_seed(0)
    G, D = configs.build_networks(name)
    in_shape, kernel = largest_conv(G)
    peak = conv_gflops(in_shape, kernel, batch, repeats=5 if np.prod(in_shape) < 2e6 else 2)
    print(f"\n== {name}  img {G.img_shape}  batch {batch}")
    print(f"tf.nn.conv3d forward at {[batch, *in_shape]} x {list(kernel)}: {peak:.1f} GFLOP/s", flush=True)

    z = tf.random.normal([batch, G.z_dim])
    img = tf.random.normal([batch, *G.img_shape, G.img_channels])

    @tf.function
    def g_step(z):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(G(z, noise_mode="random"))
        return tape.gradient(loss, G.trainable_variables)

    @tf.function
    def d_step(img):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(D(img))
        return tape.gradient(loss, D.trainable_variables)

    rows = []
    for label, fn, arg, module in (("G", g_step, z, G), ("D", d_step, img, D)):
        flops = 3 * conv_flops(module, batch)  # forward + 2x for the two backward convs
        trace, first, t = time_fn(fn, [arg], repeats)
        achieved = flops / t / 1e9
        rows.append((label, flops, trace, first, t, achieved))
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB -> GiB (Linux)
        print(f"{label} fwd+bwd: {flops / 1e9:9.1f} GFLOP  trace {trace:5.1f} s  first run {first:7.2f} s  "
              f"timed {t:7.2f} s  -> {achieved:6.1f} GFLOP/s = {achieved / peak:5.1%} of conv3d forward  "
              f"(process peak RSS {peak_rss:.1f} GiB)", flush=True)
    return rows


def main(argv):
    del argv
    names = FLAGS.configs or (["demo"] if FLAGS.quick else ["demo", "Gorig-Dres-3d-2mm-base567"])
    print(f"bench_networks  {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}  {platform.node()}  "
          f"{os.cpu_count()} CPUs  TF {tf.__version__}  inter/intra threads "
          f"{tf.config.threading.get_inter_op_parallelism_threads()}/"
          f"{tf.config.threading.get_intra_op_parallelism_threads()}")
    for name in names:
        repeats = FLAGS.repeats if name.startswith("demo") else FLAGS.paper_repeats
        bench_config(name, FLAGS.batch, max(1, repeats))


if __name__ == "__main__":
    app.run(main)
