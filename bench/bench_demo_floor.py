"""How well can any population model trained on N volumes reproduce volumes it never saw? Linear floors.

For held-out volumes of a dataset, PSNR (in [0, 1]) of three reconstructions made only from N training volumes:
  mean      the mean training volume;
  nearest   the closest training volume (smallest MSE);
  pca-K     the orthogonal projection onto the mean plus the first K principal components of the training volumes
            (the best a linear model with K latent dimensions fitted to those N volumes can do, in MSE).
A generator with a K-dimensional latent that beats pca-K on held-out volumes has learned more than a linear model;
one that cannot reach it at its training size is limited by the data (too few volumes for the population's
variation), not by its training length.

  python -m bench.bench_demo_floor --data=datasets/demo1000 --heldout=20 --train_sizes=180,500,980 \
      --components=16,64,128,179
  # Which variation of the demo data sets the floor: volumes made in memory with parts of it switched off.
  python -m bench.bench_demo_floor --synthetic=300 --variations="default;velocity_mm=0;velocity_smooth_mm=40;\
      bias=0,gamma=1:1,noise=0:0" --train_sizes=280 --components=16,64,128,279
"""

import numpy as np
from absl import app, flags

from bench import common

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Dataset folder (or --synthetic).")
flags.DEFINE_integer("synthetic", 0, "Instead of --data: this many demo volumes made in memory per variation.")
flags.DEFINE_string("variations", "default", "With --synthetic: ';'-separated changes of the demo data's variation "
                    "(volumes/demo_data.DEFAULT_VARIATION), each 'default' or key=value[,key=value] (a:b for ranges).")
flags.DEFINE_integer("heldout", 20, "Held-out volumes (drawn with --seed; never in a training subset).")
flags.DEFINE_list("train_sizes", ["180"], "Training subset sizes N (nested: each holds the smaller ones).")
flags.DEFINE_list("components", ["16", "64", "128"], "PCA dimensions K (capped at N - 1).")
flags.DEFINE_integer("seed", 0, "Which volumes are held out and the order training subsets are taken in.")


def load_volumes(path):
    from volumes import records
    from volumes.manifest import load_manifest

    m = load_manifest(path)
    vols = {}
    for ex in records.iterate_records(path, m):
        vols[ex.index] = records.decode_volume(ex.stored, m.storage_dtype).reshape(-1).astype(np.float32)
    return np.stack([vols[i] for i in sorted(vols)])


def synthetic_volumes(n, changes):
    """n demo volumes (seeds 0..n-1, cohort atrophy included) with the variation changed by `changes`."""
    from dnnlib.easydict import EasyDict
    from volumes import demo_data

    var = EasyDict(demo_data.DEFAULT_VARIATION)
    for item in [c for c in changes.split(",") if c and c != "default"]:
        key, value = item.split("=")
        var[key] = tuple(float(v) for v in value.split(":")) if ":" in value else float(value)
    t_vol, t_aff = demo_data.load_template()
    spacing = demo_data.RESOLUTIONS["demo"].spacing
    shape = demo_data.RESOLUTIONS["demo"].shape
    grid = demo_data.demo_grid(t_vol, t_aff, shape, spacing)
    cohort = demo_data.cohort_fields(t_vol, t_aff, [spacing] * 3)
    smooth, _ = demo_data.preprocess.antialias(t_vol, t_aff, [spacing] * 3)
    return np.stack([demo_data.synth_volume(s, smooth, t_aff, grid, shape, var, cohort)[0].reshape(-1)
                     for s in range(n)])


def psnr(a, b):
    return 10.0 * np.log10(1.0 / np.mean((a - b) ** 2, axis=-1))


def floors(train, heldout, components):
    """Median PSNR over heldout of each reconstruction from `train` (rows: flattened volumes in [0, 1])."""
    mean = train.mean(0)
    out = {"mean": float(np.median(psnr(heldout, mean[None])))}
    d2 = (heldout**2).sum(1)[:, None] - 2.0 * heldout @ train.T + (train**2).sum(1)[None]
    out["nearest"] = float(np.median(psnr(heldout, train[np.argmin(d2, axis=1)])))
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    for k in components:
        k = min(int(k), train.shape[0] - 1)
        basis = vt[:k]
        recon = mean + ((heldout - mean) @ basis.T) @ basis
        out[f"pca-{k}"] = float(np.median(psnr(heldout, recon)))
    return out


def main(_):
    common.log(common.machine_line())
    if bool(FLAGS.data) == bool(FLAGS.synthetic):
        raise SystemExit("error: give --data or --synthetic")
    sources = ([(FLAGS.data, lambda: load_volumes(FLAGS.data))] if FLAGS.data else
               [(v, lambda v=v: synthetic_volumes(FLAGS.synthetic, v)) for v in FLAGS.variations.split(";")])
    rows = []
    for name, make in sources:
        vols = make()
        order = np.random.default_rng(FLAGS.seed).permutation(len(vols))
        heldout, rest = vols[order[: FLAGS.heldout]], vols[order[FLAGS.heldout :]]
        for n in [int(s) for s in FLAGS.train_sizes]:
            if n > len(rest):
                raise SystemExit(f"error: --train_sizes {n} > the {len(rest)} volumes left after the held-out ones")
            row = {"data": name, "N": n, **floors(rest[:n], heldout, FLAGS.components)}
            rows.append(row)
            print("  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
                  flush=True)
    headers = list(rows[0])
    common.print_table([[r.get(h, "") for h in headers] for r in rows], headers, floatfmt="{:.2f}")


if __name__ == "__main__":
    app.run(main)
