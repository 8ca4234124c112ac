"""ADA experiments (issue 18): does the generator learn the augmentations, and does ADA help on a small dataset?

  # Non-leaking: orientation of the reals, of the reals as D sees them (augmented at --p), and of the fakes of a
  # generator trained with that augmentation (e.g. run_training.py --aug=fixed --p=0.5 --augpipe=b).
  python -m bench.bench_ada leak --networks=SNAPSHOT,... --data=DATASET --p=0.5 --augpipe=b --num=64

  # Small data: every snapshot of each run against held-out volumes (KID/FID of the middle slices with the
  # standard FID Inception, voxel MMD), and the runs' r_t and p per tick; prints tables, writes CSV + PNG.
  python -m bench.bench_ada smalldata --runs=RUN_A,RUN_B --heldout=pretrained/demo/heldout \
      --feature_weights=fid_inception.npz --out=docs/figures/ada_smalldata

Orientation (leak): each volume is compared (normalised cross-correlation) with the mean real volume under each
of the 48 signed axis permutations about the centre (every flip / 90-degree rotation blit can produce), and
given the closest; a permutation and the same one followed by a left-right flip count as one class, because
the anatomy is nearly left-right symmetric. "canonical" = the identity's class. Written with NumPy only, apart
from the augmentation being measured.
"""

import glob
import itertools
import os
import re

import numpy as np
from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("networks", [], "leak: generators to classify (run dirs, snapshots, SavedModels).")
flags.DEFINE_string("data", None, "leak: the training dataset (its reals, mean volume, geometry).")
flags.DEFINE_float("p", 0.5, "leak: augmentation probability the generator was trained with.")
flags.DEFINE_string("augpipe", "b", "leak: augmentation groups the generator was trained with.")
flags.DEFINE_integer("num", 64, "leak: volumes per group; smalldata: fakes and reals per evaluation.")
flags.DEFINE_list("runs", [], "smalldata: run directories to compare.")
flags.DEFINE_string("heldout", None, "smalldata: dataset of held-out volumes.")
flags.DEFINE_string("feature_weights", None, "smalldata: standard FID Inception weights (.npz/.pb/.tgz/.pt).")
flags.DEFINE_integer("slice_step", 8, "smalldata: every k-th slice (about the middle) along each axis for KID/FID.")
flags.DEFINE_string("out", None, "smalldata: output prefix of the CSV/PNG files.")

# ----------------------------------------------------------------------------------------------
# Orientation classes (NumPy).


def signed_permutations():
    """The 48 (perm, signs): output axis a takes input axis perm[a], reversed where signs[a] < 0; identity first."""
    return [(perm, signs) for perm in itertools.permutations(range(3))
            for signs in itertools.product((1, -1), repeat=3)]


def apply_signed_permutation(vol, perm, signs, background=-1.0):
    """vol [D, H, W] permuted and flipped about its centre, then centre-cropped/padded back to its own shape."""
    out = np.transpose(vol, perm)
    out = out[tuple(slice(None, None, s) for s in signs)]
    result = np.full(vol.shape, background, vol.dtype)
    src, dst = [], []
    for n_in, n_out in zip(out.shape, vol.shape, strict=True):
        d = (n_in - n_out) // 2  # same centre: both differences are even for the shapes blit can rotate
        src.append(slice(max(d, 0), max(d, 0) + min(n_in, n_out)))
        dst.append(slice(max(-d, 0), max(-d, 0) + min(n_in, n_out)))
    result[tuple(dst)] = out[tuple(src)]
    return result


def orientation_classes(mirror_axis=0):
    """Class index of each of the 48 signed permutations: T and T followed by a flip of mirror_axis share one."""
    transforms = signed_permutations()
    key = {}
    classes = []
    for perm, signs in transforms:
        flipped = list(signs)
        flipped[mirror_axis] = -flipped[mirror_axis]
        k = min((perm, tuple(signs)), (perm, tuple(flipped)))
        classes.append(key.setdefault(k, len(key)))
    return classes


def classify_orientation(volumes, reference, mirror_axis=0, return_margin=False):
    """Class (0 = canonical) of each volume [N, D, H, W]: the transform of `reference` it correlates best with.

    return_margin: also the margin, correlation with the canonical class minus the best other class (> 0 where
    canonical wins; near 0 for volumes that carry little orientation, e.g. blurry early fakes)."""
    transforms = signed_permutations()
    classes = orientation_classes(mirror_axis)
    templates = np.stack([apply_signed_permutation(reference, p, s) for p, s in transforms]).reshape(48, -1)
    templates = templates - templates.mean(axis=1, keepdims=True)
    templates /= np.linalg.norm(templates, axis=1, keepdims=True)
    x = volumes.reshape(len(volumes), -1).astype(np.float64)
    x = x - x.mean(axis=1, keepdims=True)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    ncc = x @ templates.T
    best = np.argmax(ncc, axis=1)
    labels = np.asarray([classes[b] for b in best])
    if not return_margin:
        return labels
    canonical = np.asarray(classes) == 0
    return labels, ncc[:, canonical].max(axis=1) - ncc[:, ~canonical].max(axis=1)


# ----------------------------------------------------------------------------------------------
# Commands.


def _reals(dataset_dir, num):
    from volumes.dataset_reader import make_dataset

    out = []
    for batch in make_dataset(dataset_dir, batch_size=8, shuffle=False, repeat=False):
        vol = batch[0] if isinstance(batch, tuple | list) else batch
        out.append(np.asarray(vol, np.float32))
        if sum(len(v) for v in out) >= num:
            break
    return np.concatenate(out)[:num]


def leak():
    import tensorflow as tf

    from generation.runner import Runner
    from generation.sampling import generate
    from training.augment import AugmentPipe
    from training.network_io import load_generator
    from volumes.manifest import load_manifest

    m = load_manifest(FLAGS.data)
    mirror_axis = int(m.get("mirror_axis", 0) or 0)
    reals = _reals(FLAGS.data, FLAGS.num)
    reference = reals[..., 0].mean(axis=0)
    pipe = AugmentPipe(reals.shape[1:4], m.spacing, mirror_axis=mirror_axis, augpipe=FLAGS.augpipe, p=FLAGS.p,
                       seed=123)
    augmented = pipe(tf.constant(reals), pipe.draw(len(reals))).numpy()
    rows = [("reals", reals), (f"reals augmented ({FLAGS.augpipe}, p={FLAGS.p:g})", augmented)]
    for network in FLAGS.networks:
        fakes = generate(Runner(load_generator(network).G, batch_size=8), range(FLAGS.num))
        rows.append((f"fakes of {network}", fakes))
    print(f"{'volumes':50s} {'n':>4s} {'canonical':>10s} {'classes':>8s} {'median margin':>14s}")
    for name, vols in rows:
        cls, margin = classify_orientation(vols[..., 0], reference, mirror_axis, return_margin=True)
        print(f"{name[-50:]:50s} {len(cls):4d} {np.mean(cls == 0):10.1%} {len(set(cls)):8d} {np.median(margin):14.4f}")


def tick_curves(run_dir):
    """Per tick of a run's log: kimg, E[sign(D(real))] over the tick (signs/real) and p (augment; 0 without)."""
    rows = []
    with open(os.path.join(run_dir, "log.txt")) as f:
        for line in f:
            if not line.startswith("tick "):
                continue
            values = dict(re.findall(r"(\S+)\s+(-?[0-9.]+(?:e-?\d+)?)(?=\s|$)", line))
            rows.append(dict(kimg=float(values["kimg"]), rt=float(values.get("signs/real", "nan")),
                             p=float(values.get("augment", 0.0)),
                             real=float(values.get("scores/real", "nan")),
                             fake=float(values.get("scores/fake", "nan"))))
    return rows


def tick_plot(run_dir, name, out):
    """PNG + CSV per run: r_t (ticks with augmentation only), p, and the mean raw D outputs on reals and fakes
    (the overfitting signal every run logs: they drift apart as D memorises the reals)."""
    from dnnlib.plots import line_plot

    ticks = tick_curves(run_dir)
    return line_plot(f"{out}_{name}_ticks.png", [t["kimg"] for t in ticks],
                     {"r_t = E[sign D(real)]": [t["rt"] for t in ticks], "p": [t["p"] for t in ticks],
                      "mean D(real)": [t["real"] for t in ticks], "mean D(fake)": [t["fake"] for t in ticks]},
                     xlabel="kimg", ylabel="per tick", title=f"{name}: r_t, p and D's outputs",
                     csv_path=f"{out}_{name}_ticks.csv")


def smalldata():
    from bench.common import snapshot_kimg
    from dnnlib.plots import line_plot
    from metrics import metric_main

    results = {}
    for run in FLAGS.runs:
        name = os.path.basename(os.path.normpath(os.path.dirname(os.path.normpath(run)))) or run
        rows = []
        for snap in sorted(glob.glob(os.path.join(run, "snapshots", "*", "generator"))):
            kimg = snapshot_kimg(snap)
            res = metric_main.calc_metrics(["kid", "fid_slices", "mmd"], G=snap, dataset_dir=FLAGS.heldout,
                                           num=FLAGS.num, batch=4, feature_weights=FLAGS.feature_weights,
                                           slice_step=FLAGS.slice_step)
            vals = {k: float(v) for r in res for k, v in r.results.items()}
            rows.append(dict(kimg=kimg, **vals))
            print(f"{name} kimg {kimg:7.3f}  " + "  ".join(f"{k} {v:.4g}" for k, v in vals.items()), flush=True)
        results[name] = rows
        tick_plot(run, name, FLAGS.out)
    names = list(results)
    kimgs = sorted({r["kimg"] for rows in results.values() for r in rows})
    for metric in ("kid", "fid_slices", "mmd_gaussian_median"):
        series = {}
        for n in names:
            by_kimg = {r["kimg"]: r.get(metric, float("nan")) for r in results[n]}
            series[n] = [by_kimg.get(k, float("nan")) for k in kimgs]
        line_plot(f"{FLAGS.out}_{metric}.png", kimgs, series, xlabel="kimg", ylabel=f"{metric} vs held-out",
                  title=f"{metric}: fakes vs held-out volumes", csv_path=f"{FLAGS.out}_{metric}.csv")


def main(argv):
    if len(argv) != 2 or argv[1] not in ("leak", "smalldata"):
        raise SystemExit("give one command: leak | smalldata")
    leak() if argv[1] == "leak" else smalldata()


if __name__ == "__main__":
    app.run(main)
