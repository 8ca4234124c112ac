"""The shipped demo generator, measured against demo volumes it never saw.

  # Learning curve: every snapshot of the training run vs the held-out part of the split.
  python -m bench.bench_pretrained curve --run=RUN_DIR --heldout=datasets/demo-demo-split/test --num=20 \
      --out=bench/figures/pretrained_curve
  # Projection of held-out volumes, against the trivial baseline of the mean training volume.
  python -m bench.bench_pretrained project --network=demo --heldout=datasets/demo-demo-split/test \
      --train=datasets/demo-demo-split/train --indices=0-9 --num_steps=300 --out=/tmp/pretrained_projection

curve: mmd_linear_unbiased and mmd_gaussian_median (metrics/mmd.py, voxels in [0, 1]) of `num` fakes of each
snapshot's EMA generator against `num` held-out reals; prints the table, writes CSV + PNG.
project: projects each held-out volume (generation/projection_command.py, W, noise maps), then prints PSNR, SSIM
and NRMSE per volume (metrics/reconstruction.py, [0, 1]) for the projection and for the mean training volume.
"""

import glob
import json
import os

from absl import app, flags

from bench import common

FLAGS = flags.FLAGS


def define_flags():
    """The flags, defined only when run as a script."""
    flags.DEFINE_string("run", None, "curve: the training run directory.")
    flags.DEFINE_string("network", "demo", "project: the network (a name, run dir or SavedModel).")
    flags.DEFINE_string("heldout", None, "Dataset of held-out volumes (the test part of dataset_tool.py split).")
    flags.DEFINE_string("train", None, "project: the training part (for the mean-volume baseline).")
    flags.DEFINE_integer("num", 20, "curve: fakes and reals per evaluation.")
    flags.DEFINE_string("indices", "0-9", "project: held-out volumes to project.")
    flags.DEFINE_integer("num_steps", 300, "project: optimisation steps.")
    flags.DEFINE_string("out", None, "Output prefix (curve) or folder (project).")
    flags.DEFINE_list("metrics", ["mmd"], "curve: metrics of each snapshot against the held-out volumes (e.g. "
                      "mmd,kid).")
    flags.DEFINE_string("feature_weights", None, "curve: standard FID Inception weights for kid/fid_slices (a local "
                        "file).")
    flags.DEFINE_integer("every", 1, "curve: evaluate every this many snapshots (and always the last).")
    flags.DEFINE_integer("slice_step", 8, "curve: kid/fid_slices: every k-th slice about the middle along each "
                         "axis (0: the middle slice), as run_metrics.py --slice_step.")


def curve():
    from dnnlib.plots import line_plot
    from metrics import metric_main
    from training.network_io import load_generator

    snaps = sorted(glob.glob(os.path.join(FLAGS.run, "snapshots", "*", "generator")))
    snaps = [s for i, s in enumerate(snaps) if i % FLAGS.every == 0 or i == len(snaps) - 1]
    rows = []
    for snap in snaps:
        kimg = common.snapshot_kimg(snap)
        row = dict(kimg=kimg)
        for name in FLAGS.metrics:
            r = metric_main.calc_metric(name, G=load_generator(snap), dataset_dir=FLAGS.heldout, num=FLAGS.num,
                                        batch=4, feature_weights=FLAGS.feature_weights, slice_step=FLAGS.slice_step)
            row.update({k: float(v) for k, v in r.results.items()})
        rows.append(row)
        print(f"kimg {kimg:8.3f}  " + "  ".join(f"{k} {v:.5g}" for k, v in row.items() if k != "kimg"), flush=True)
    keys = [k for k in rows[0] if k != "kimg"]
    plot = line_plot(FLAGS.out + ".png", [r["kimg"] for r in rows], {k: [r[k] for r in rows] for k in keys},
                     xlabel="training progress (kimg)", ylabel="metric vs held-out volumes", log_y=True,
                     title="shipped demo generator: fakes vs held-out demo volumes", csv_path=FLAGS.out + ".csv")
    print(f"curve: {plot.csv}" + (f", {plot.png}" if plot.png else f" ({plot.note})"))


def project():
    import numpy as np

    from dnnlib import EasyDict
    from dnnlib.cli import parse_int_ranges
    from generation.projection_command import run_projection
    from generation.projector import default_options
    from metrics.reconstruction import reconstruction_metrics
    from volumes import records
    from volumes.manifest import load_manifest

    indices = parse_int_ranges(FLAGS.indices, "--indices")
    opts = EasyDict(default_options())
    opts.update(network=FLAGS.network, outdir=FLAGS.out, overwrite=False, data=FLAGS.heldout, targets=[],
                indices=indices, target_seeds=[], num_steps=FLAGS.num_steps, batch=len(indices), uint8=False)
    run_projection(opts)

    m = load_manifest(FLAGS.train)
    mean, n = None, 0
    for ex in records.iterate_records(FLAGS.train, m):
        v = records.decode_volume(ex.stored, m.storage_dtype).reshape(ex.shape).astype(np.float64)
        mean, n = (v if mean is None else mean + v), n + 1
    mean = (mean / n).astype(np.float32)
    held = load_manifest(FLAGS.heldout)
    targets = {ex.index: records.decode_volume(ex.stored, held.storage_dtype).reshape(ex.shape)
               for ex in records.iterate_records(FLAGS.heldout, held) if ex.index in indices}
    table = []
    for name in sorted(os.listdir(FLAGS.out)):
        path = os.path.join(FLAGS.out, name, "metrics.json")
        if not os.path.isfile(path):
            continue
        with open(path) as f:
            proj = json.load(f)
        index = int("".join(c for c in name if c.isdigit()))
        base = reconstruction_metrics(targets[index][None, ..., None], mean[None, ..., None], data_range=1.0)
        table.append(dict(target=name, **{f"proj_{k}": proj[k] for k in ("psnr", "ssim_3d", "nrmse")},
                          **{f"mean_{k}": float(v) for k, v in base.items()}))
    cols = list(table[0])
    print(" ".join(f"{c:>14s}" for c in cols))
    for row in table:
        print(" ".join(f"{row[c]:>14.4f}" if isinstance(row[c], float) else f"{row[c]:>14s}" for c in cols))
    for c in cols[1:]:
        print(f"median {c}: {np.median([r[c] for r in table]):.4f}")


def main(argv):
    if len(argv) != 2 or argv[1] not in ("curve", "project"):
        raise SystemExit("give one command: curve | project")
    curve() if argv[1] == "curve" else project()


if __name__ == "__main__":
    define_flags()
    app.run(main)
