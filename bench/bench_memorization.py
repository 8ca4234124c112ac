"""Memorisation audit: peak memory and speed against the number of generated volumes N.

Each N runs in a fresh process (the peak resident size only grows within one), with the demo grid (40x48x56),
180 training and 20 held-out volumes of smooth random fields, and a stand-in generator (training volumes plus
noise) that costs nothing next to the audit, so the figures are the audit's own.

    python -m bench.bench_memorization --nums=250,1000,4000
"""

import os
import subprocess
import sys
import time

from absl import app, flags

from bench import common

FLAGS = flags.FLAGS
flags.DEFINE_list("nums", ["250", "1000", "4000"], "Numbers of generated volumes, one process each.")
flags.DEFINE_integer("child", 0, "Internal: run one N in this process and print its figures.")
flags.DEFINE_integer("batch", 16, "Generated volumes per batch.")

SHAPE = (40, 48, 56)


def _child(num, batch):
    import numpy as np
    import tensorflow as tf
    from scipy import ndimage

    from metrics import metric_main

    rng = np.random.default_rng(0)

    def fields(n):
        f = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 3.0) for _ in range(n)])
        return np.tanh(f / f.std())[..., None].astype(np.float32)

    train, held = fields(180), fields(20)

    class NoisyCopies:
        z_dim, c_dim = 4, 0

        def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
            idx = np.random.default_rng(int(abs(z[0, 0].numpy()) * 1e6)).integers(len(train), size=z.shape[0])
            return tf.constant(train[idx] + 0.05 * np.float32(rng.normal(size=(z.shape[0], *SHAPE, 1))))

    rss0 = common.peak_rss_bytes()
    t0 = time.perf_counter()
    r = metric_main.calc_metric("memorization", G=NoisyCopies(), dataset_dir=tf.data.Dataset.from_tensor_slices(
        train).batch(batch), heldout=tf.data.Dataset.from_tensor_slices(held).batch(batch), num=num, batch=batch)
    seconds = time.perf_counter() - t0
    print(f"RESULT {num} {seconds:.2f} {rss0 / common.GIB:.3f} {common.peak_rss_bytes() / common.GIB:.3f} "
          f"{r.results['memorization_ct']:.3f}", flush=True)


def main(_):
    if FLAGS.child:
        _child(FLAGS.child, FLAGS.batch)
        return
    print(common.machine_line())
    rows = []
    for num in (int(n) for n in FLAGS.nums):
        p = subprocess.run([sys.executable, "-m", "bench.bench_memorization", f"--child={num}",
                            f"--batch={FLAGS.batch}"], capture_output=True, text=True,
                           env=dict(os.environ, CUDA_VISIBLE_DEVICES=""))
        line = next((ln for ln in p.stdout.splitlines() if ln.startswith("RESULT")), None)
        if line is None:
            raise RuntimeError(f"N={num} failed:\n{p.stderr[-2000:]}")
        _, n, sec, before, peak, ct = line.split()
        rows.append((int(n), float(sec), float(n) / float(sec), float(before), float(peak), float(ct)))
        common.log(f"N={n}: {sec} s, peak {peak} GiB")
    common.print_table(rows, ["N", "audit s", "vol/s", "RSS before GiB", "peak RSS GiB", "C_T"])
    print(common.load_line())


if __name__ == "__main__":
    app.run(main)
