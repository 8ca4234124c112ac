"""Does a regressed atlas follow a known size rule? Head volume against a covariate, for the data, their projections
and the atlases `run_latent.py regress --at=...` wrote.

  .venv/bin/python -m bench.bench_latent_size_rule --embedding=emb --regress=reg,reg-kernel --covariate=global_scale

Head volume: voxels above --threshold (in [0, 1], file units) of each volume. Prints, per set of volumes, the slope
of log(voxel count) against log(covariate) (3 when volume follows the cube of a size factor) and, for the data and
the projections, the correlation of the count with the covariate.
"""

import os

from absl import app, flags

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string("embedding", None, "An embed output folder (its embedding.json names the dataset).")
    flags.DEFINE_list("regress", [], "regress output folders (their latent_stats.json gives the --at values).")
    flags.DEFINE_string("covariate", "global_scale", "The covariate of the size rule.")
    flags.DEFINE_float("threshold", 0.1, "Head: voxels above this value in [0, 1].")


def head_voxels(unit_volume, threshold):
    import numpy as np

    return int((np.asarray(unit_volume) > threshold).sum())


def log_slope(x, y):
    import numpy as np

    return float(np.polyfit(np.log(np.asarray(x, float)), np.log(np.asarray(y, float)), 1)[0])


def main(_):
    import json

    import nibabel as nib
    import numpy as np

    from generation.projection_targets import dataset_targets
    from volumes.volume_io import to_unit_range

    with open(os.path.join(FLAGS.embedding, "embedding.json")) as f:
        emb = json.load(f)
    x = [float(r["covariates"][FLAGS.covariate]) for r in emb["rows"]]
    idx = [int(r["index"]) for r in emb["rows"]]
    data = [head_voxels(to_unit_range(t.volume), FLAGS.threshold) for t in dataset_targets(emb["data"], idx)]
    proj = [head_voxels(nib.load(os.path.join(FLAGS.embedding, "projected", f"index{i:05d}.nii.gz")).dataobj,
                        FLAGS.threshold) for i in idx]
    print(f"{'volumes':<40} {'log-log slope':>13} {'correlation':>11}  voxel counts")
    for name, counts in (("data", data), ("projections", proj)):
        print(f"{name:<40} {log_slope(x, counts):>13.2f} {np.corrcoef(x, counts)[0, 1]:>11.2f}")
    for folder in FLAGS.regress:
        with open(os.path.join(folder, "latent_stats.json")) as f:
            rec = json.load(f)
        values = rec["summary"]["at"][FLAGS.covariate]
        files = [n for n in rec["summary"]["files"] if n.startswith(f"atlas_{FLAGS.covariate}_")]
        counts = [head_voxels(nib.load(os.path.join(folder, n)).dataobj, FLAGS.threshold) for n in files]
        label = f"{folder} ({rec['summary']['method']})"
        print(f"{label:<40} {log_slope(values, counts):>13.2f} {'':>11}  {counts}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
