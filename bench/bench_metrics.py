"""Time of each metric per 100 volumes at 80x96x112 (random volumes, random-weight feature networks).

  TF_CPP_MIN_LOG_LEVEL=2 python -m bench.bench_metrics --num=20 [--metrics=mmd,ms_ssim] [--shape=80,96,112]

The generator is a stand-in returning precomputed random volumes, so the figures are the metrics' own cost
(features, statistics, kernels), reals and fakes included; each metric runs in a fresh session (no sharing of
features between metrics, no disk cache). Also compares ways to filter with the SSIM window: banded matrix
products (what metrics/ms_ssim.py uses), sums of shifted slices, separable single-channel tf.nn.conv3d.
"""

import os
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

from metrics import metric_main, ms_ssim

FLAGS = flags.FLAGS
flags.DEFINE_integer("num", 20, "Volumes per side (reals and fakes); figures are scaled to 100.")
flags.DEFINE_list("metrics", ["fid_slices", "kid", "pr_slices", "fid_3d", "mmd", "ms_ssim", "ms_ssim_legacy_kwon"],
                  "Metrics to time.")
flags.DEFINE_list("shape", ["80", "96", "112"], "Volume shape D,H,W.")
flags.DEFINE_integer("batch", 4, "Volumes per batch.")


class RandomVolumes:
    """Stand-in generator: smooth random volumes in [-1, 1], precomputed so generation costs nothing."""

    def __init__(self, num, shape, seed):
        self.z_dim, self.c_dim = 8, 0
        rng = np.random.default_rng(seed)
        low = rng.uniform(-1, 1, size=(num, *(s // 4 for s in shape), 1)).astype(np.float32)
        self.vols = np.clip(np.repeat(np.repeat(np.repeat(low, 4, 1), 4, 2), 4, 3)
                            + rng.normal(0, 0.1, size=(num, *shape, 1)).astype(np.float32), -1, 1)
        self.next = 0

    def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
        n = z.shape[0]
        out = self.vols[np.arange(self.next, self.next + n) % len(self.vols)]
        self.next += n
        return tf.constant(out)


def tiny_3d_net(path):
    import keras

    inp = keras.Input((None, None, None, 1))
    h = inp
    for i, f in enumerate((16, 32, 64, 128)):  # a small ResNet-like stem: 4 strided convs, ~0.3 M parameters
        h = keras.layers.Conv3D(f, 3, strides=2, padding="same", activation="relu", name=f"conv{i}")(h)
    keras.Model(inp, keras.layers.GlobalAveragePooling3D(name="pool")(h)).save(path)


def filtering_comparison(shape, repeats=3):
    """Seconds for one SSIM filtering (10 maps, kernel 5, valid) by: banded matrix products (ours), shifted
    slices, separable single-channel conv3d; all three checked equal first."""
    x = tf.random.uniform([10, *shape])
    taps = ms_ssim.gaussian_window(5)

    def slices(v):
        for axis in (1, 2, 3):
            n_out = v.shape[axis] - 4
            begin, size = [0, 0, 0, 0], [-1, -1, -1, -1]
            size[axis] = n_out
            acc = None
            for j, t in enumerate(taps):
                begin[axis] = j
                term = float(t) * tf.slice(v, begin, size)
                acc = term if acc is None else acc + term
            v = acc
        return v

    t32 = tf.constant(taps, tf.float32)
    kernels = [tf.reshape(t32, s) for s in ([5, 1, 1, 1, 1], [1, 5, 1, 1, 1], [1, 1, 5, 1, 1])]

    def conv(v):
        v = v[..., None]
        for w in kernels:
            v = tf.nn.conv3d(v, w, strides=[1] * 5, padding="VALID")
        return v[..., 0]

    def ours(v):
        return ms_ssim.filter_3d(v, taps, "valid")

    def best(fn):
        fn(x)
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x).numpy()
            times.append(time.perf_counter() - t)
        return min(times)

    ref = ours(x).numpy()
    for fn in (slices, conv):
        np.testing.assert_allclose(fn(x).numpy(), ref, atol=1e-5)
    return best(ours), best(slices), best(conv)


def main(_):
    shape = tuple(int(s) for s in FLAGS.shape)
    num = FLAGS.num
    import tempfile

    tmp = tempfile.mkdtemp(prefix="bench_metrics_")
    net_path = os.path.join(tmp, "net3d.keras")
    tiny_3d_net(net_path)
    reals_gen = RandomVolumes(num, shape, seed=1)
    print(f"# bench_metrics: {num} reals + {num} fakes of {shape}, batch {FLAGS.batch}; "
          f"{os.cpu_count()} CPUs; TF {tf.__version__}; random-weight feature networks")
    print(f"{'metric':<22}{'seconds':>10}{'s per 100 vols':>16}  results")
    for name in FLAGS.metrics:
        ds = tf.data.Dataset.from_tensor_slices(reals_gen.vols).batch(FLAGS.batch)
        G = RandomVolumes(num, shape, seed=2)
        t = time.perf_counter()
        r = metric_main.calc_metric(name, G=G, dataset_dir=ds, num=num, batch=FLAGS.batch, feature_weights="random",
                                    feature_network=net_path, feature_layer="pool")
        dt = time.perf_counter() - t
        vals = ", ".join(f"{k}={v:.4g}" for k, v in list(r.results.items())[:4])
        print(f"{name:<22}{dt:>10.1f}{dt * 100 / num:>16.1f}  {vals}", flush=True)
    mm, sl, cv = filtering_comparison(shape)
    print(f"SSIM filtering, 10 maps {shape}, kernel 5: banded matmul {mm * 1e3:.0f} ms, shifted slices "
          f"{sl * 1e3:.0f} ms ({sl / mm:.2f}x), separable conv3d {cv * 1e3:.0f} ms ({cv / mm:.2f}x)")


if __name__ == "__main__":
    app.run(main)
