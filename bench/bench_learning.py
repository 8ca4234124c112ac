"""Does it learn? Train the demo config briefly and track the linear MMD between fakes and reals.

  python -m bench.bench_learning --minutes=10 --outdir=/tmp/bench_learning

At the start and after every tick: N fakes of G_ema (random noise) vs N reals of the demo dataset,
mmd_linear_batch8 (metrics/mmd.py, voxels in [0, 1]). Prints the curve, the start/end values and their
ratio, and writes the curve into the run directory as mmd_curve.csv and mmd_curve.png (dnnlib.plots; the PNG needs
matplotlib), beside the snapshots.
"""

import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "demo", "Training config.")
flags.DEFINE_string("data", None, "Dataset (default: the built-in demo dataset).")
flags.DEFINE_float("minutes", 10.0, "Training budget in minutes.")
flags.DEFINE_float("kimg_per_tick", 0.2, "MMD is measured every tick.")
flags.DEFINE_integer("num", 16, "Volumes per MMD evaluation (fakes and reals each; multiple of 8).")
flags.DEFINE_string("outdir", "/tmp/bench_learning", "Where the run and the curve go.")


def main(argv):
    import numpy as np
    import tensorflow as tf

    from dnnlib.plots import line_plot
    from metrics.mmd import mmd_linear_batch, to_voxel_vectors
    from training.train_options import build_options
    from training.training_loop import training_loop
    from volumes.dataset_reader import make_dataset

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
    plot = line_plot(png, xs, {"mmd_linear_batch8": ys}, xlabel="training progress (kimg: thousands of real volumes "
                     "shown)", ylabel="MMD^2, linear kernel (voxels in [0, 1])",
                     title=f"{FLAGS.config}: fakes of G_ema vs reals, {n} each", log_y=True,
                     csv_path=os.path.join(result.run_dir, "mmd_curve.csv"), x_name="kimg")
    if plot.note:
        print(f"bench: {plot.note}")
    print(f"bench: config {FLAGS.config}, {xs[-1]:.3f} kimg in {curve[-1][2]:.0f}s")
    print(f"bench: MMD start {ys[0]:.3f}  end {ys[-1]:.3f}  min {min(ys):.3f}  start/end ratio {ys[0] / ys[-1]:.1f}x")
    print(f"bench: curve {plot.png or '(not drawn)'} and {plot.csv}; samples {result.snapshot_dir}")


if __name__ == "__main__":
    app.run(main)
