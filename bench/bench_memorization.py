"""Memorisation audit: peak memory and speed against the number of generated volumes N.

Each N runs in a fresh process (the peak resident size only grows within one), with the demo grid (40x48x56),
180 training and 20 held-out volumes of smooth random fields, and a stand-in generator (training volumes plus
noise) that costs nothing next to the audit, so the figures are the audit's own.

    python -m bench.bench_memorization --nums=250,1000,4000

With --data and --heldout (a training split and its held-out split) it runs instead a positive control on real
data: a stand-in generator that returns training volumes with noise (sd 0.05) and a one-voxel shift, audited in
voxel space against those splits, and prints the table:

    python -m bench.bench_memorization --data=datasets/demo-demo-split/train --heldout=pretrained/demo/heldout
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
flags.DEFINE_string("data", None, "Positive control: the training split.")
flags.DEFINE_string("heldout", None, "Positive control: its held-out split.")
flags.DEFINE_integer("num", 500, "Positive control: number of noisy shifted copies.")

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


def positive_control(data, heldout, num, batch):
    import numpy as np
    import tensorflow as tf

    from metrics import metric_main
    from volumes.dataset_reader import make_dataset

    train = np.concatenate([np.asarray(v) for v, _ in make_dataset(data, batch_size=batch, shuffle=False,
                                                                    repeat=False)])
    rng = np.random.default_rng(0)

    class NoisyShiftedCopies:
        z_dim, c_dim = 4, 0

        def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
            out = []
            for _ in range(z.shape[0]):
                v = np.roll(train[rng.integers(len(train))], 1, axis=rng.integers(3))
                out.append(np.clip(v + rng.normal(scale=0.05, size=v.shape), -1, 1))
            return tf.constant(np.asarray(out, np.float32))

    r = metric_main.calc_metric("memorization", G=NoisyShiftedCopies(), dataset_dir=data, heldout=heldout, num=num,
                                batch=batch)
    print(metric_main.format_table([r]))


def main(_):
    if FLAGS.data or FLAGS.heldout:
        print(common.machine_line())
        positive_control(FLAGS.data, FLAGS.heldout, FLAGS.num, FLAGS.batch)
        return
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
