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
"""

import numpy as np
from absl import app, flags

from bench import common

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Dataset folder.", required=True)
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
    vols = load_volumes(FLAGS.data)
    order = np.random.default_rng(FLAGS.seed).permutation(len(vols))
    heldout, rest = vols[order[: FLAGS.heldout]], vols[order[FLAGS.heldout :]]
    rows = []
    for n in [int(s) for s in FLAGS.train_sizes]:
        if n > len(rest):
            raise SystemExit(f"error: --train_sizes {n} > the {len(rest)} volumes left after the held-out ones")
        row = {"N": n, **floors(rest[:n], heldout, FLAGS.components)}
        rows.append(row)
        print("  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    headers = list(rows[0])
    common.print_table([[r.get(h, "") for h in headers] for r in rows], headers, floatfmt="{:.2f}")


if __name__ == "__main__":
    app.run(main)
