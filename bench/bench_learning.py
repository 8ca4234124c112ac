"""Does it learn? Train the demo config briefly and track the linear MMD between fakes and reals.

  python bench/bench_learning.py --minutes=10 --outdir=/tmp/bench_learning

At the start and after every tick: N fakes of G_ema (random noise) vs N reals of the demo dataset,
mmd_linear_batch8 (metrics/mmd.py, voxels in [0, 1]). Prints the curve, the start/end values and their
ratio, and writes the curve as a PNG (Pillow) plus the last snapshot's mid-slices beside the run.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "demo", "Training config.")
flags.DEFINE_string("data", None, "Dataset (default: the built-in demo dataset).")
flags.DEFINE_float("minutes", 10.0, "Training budget in minutes.")
flags.DEFINE_float("kimg_per_tick", 0.2, "MMD is measured every tick.")
flags.DEFINE_integer("num", 16, "Volumes per MMD evaluation (fakes and reals each; multiple of 8).")
flags.DEFINE_string("outdir", "/tmp/bench_learning", "Where the run and the curve go.")


def plot_png(path, xs, ys, title):
    """A minimal line plot (log y) with Pillow: matplotlib is not a dependency."""
    import numpy as np
    from PIL import Image, ImageDraw

    w, h, m = 640, 400, 50
    img = Image.new("L", (w, h), 255)
    d = ImageDraw.Draw(img)
    ly = np.log10(np.maximum(np.asarray(ys, float), 1e-12))
    x0, x1 = min(xs), max(max(xs), min(xs) + 1e-9)
    y0, y1 = ly.min(), max(ly.max(), ly.min() + 1e-9)
    pts = [(m + (x - x0) / (x1 - x0) * (w - 2 * m), h - m - (y - y0) / (y1 - y0) * (h - 2 * m))
           for x, y in zip(xs, ly, strict=True)]
    d.rectangle([m, m, w - m, h - m], outline=0)
    d.line(pts, fill=0, width=2)
    for p in pts:
        d.ellipse([p[0] - 2, p[1] - 2, p[0] + 2, p[1] + 2], fill=0)
    d.text((m, 10), title, fill=0)
    d.text((m, h - m + 10), f"kimg {x0:.2f}", fill=0)
    d.text((w - m - 80, h - m + 10), f"kimg {x1:.2f}", fill=0)
    d.text((5, m - 15), f"1e{y1:.2f}", fill=0)
    d.text((5, h - m + 2), f"1e{y0:.2f}", fill=0)
    img.save(path)


def main(argv):
    import numpy as np
    import tensorflow as tf

    from metrics.mmd import mmd_linear_batch, to_voxel_vectors
    from training.dataset import make_dataset
    from training.train_options import build_options
    from training.training_loop import training_loop

    opts = build_options(config=FLAGS.config, data=FLAGS.data, outdir=FLAGS.outdir, max_minutes=FLAGS.minutes,
                         kimg=1000.0, kimg_per_tick=FLAGS.kimg_per_tick, snap=1000, samples=8)
    n = FLAGS.num
    reals = next(iter(make_dataset(opts.data, n, shuffle=True, repeat=False, seed=123)))[0].numpy()
    real_vec = to_voxel_vectors(reals)
    z = np.random.RandomState(7).standard_normal([n, opts.G_kwargs["z_dim"]]).astype(np.float32)
    curve = []
    t0 = time.time()

    def on_tick(cur_nimg, G_ema):
        fakes = np.concatenate([G_ema(tf.constant(z[i:i + 8])).numpy() for i in range(0, n, 8)])
        value, _ = mmd_linear_batch(real_vec, to_voxel_vectors(fakes), batch_size=8)
        curve.append((cur_nimg / 1000, value, time.time() - t0))
        print(f"bench: kimg {cur_nimg / 1000:7.3f}  mmd_linear_batch8 {value:10.3f}  ({time.time() - t0:.0f}s)",
              flush=True)

    result = training_loop(opts, tick_callback=on_tick)
    xs, ys = [c[0] for c in curve], [c[1] for c in curve]
    png = os.path.join(result.run_dir, "mmd_curve.png")
    plot_png(png, xs, ys, f"{FLAGS.config}: mmd_linear_batch8 (fakes vs reals), log scale")
    print(f"bench: config {FLAGS.config}, {xs[-1]:.3f} kimg in {curve[-1][2]:.0f}s")
    print(f"bench: MMD start {ys[0]:.3f}  end {ys[-1]:.3f}  min {min(ys):.3f}  start/end ratio {ys[0] / ys[-1]:.1f}x")
    print(f"bench: curve {png}; samples {result.snapshot_dir}")


if __name__ == "__main__":
    app.run(main)
