"""What slice KID and FID does the data itself score against held-out volumes, at the sample sizes of a run_metrics
evaluation? The floor a generator's value is read against: a generator that drew volumes from the training data's
own distribution would score about this, not 0 (the estimators are noisy and FID is biased at small N).

  python -m bench.bench_kid_floor --data=datasets/demo1000-split/train --heldout=pretrained/demo-wide/heldout \
      --num=100 --slice_step=8 --feature_weights=fid_inception.npz --seeds=0,1,2

For each seed, --num volumes of --data (shuffled with the seed) take the place of the fakes of
`run_metrics.py --metrics=kid,fid_slices --num=<num> --slice_step=<k> --data=<heldout>`: the same slices, the
same standard FID Inception, the same KID (metrics/kid.py) and FID (metrics/frechet.py) per axis and averaged.
"""

import numpy as np
from absl import app, flags

from bench import common

FLAGS = flags.FLAGS


def define_flags():
    """The flags, defined only when run as a script: tests import this module beside others that define --data."""
    flags.DEFINE_string("data", None, "Dataset the stand-in fakes are drawn from (e.g. the training split).")
    flags.DEFINE_string("heldout", None, "Dataset of held-out volumes (run_metrics.py's --data).")
    flags.DEFINE_integer("num", 100, "Volumes of --data per seed (run_metrics.py's --num); all of --heldout are "
                         "used up to this many.")
    flags.DEFINE_integer("slice_step", 8, "Every k-th slice about the middle along each axis (0: the middle slice).")
    flags.DEFINE_string("feature_weights", None, "Standard FID Inception weights (.npz/.pb/.tgz/.pt).")
    flags.DEFINE_list("seeds", ["0"], "Draws of --data to score.")


def slice_features(net, path, num, seed, step, shuffle):
    from dnnlib import EasyDict
    from metrics import fid_slices, metric_utils

    opts = EasyDict(reals=path, batch=4, seed=seed, num=num)
    batches = metric_utils.iterate_reals(opts, shuffle=shuffle)
    return metric_utils.collect(batches, fid_slices.slice_extractor(net, step))


def floor_rows(net, data, heldout, num, seeds, step):
    """One row per seed: [seed, KID per axis, KID, FID per axis, FID] of --num volumes of data against heldout."""
    from metrics import frechet
    from metrics.kid import kernel_inception_distance

    axes = ("axis0", "axis1", "axis2")
    reals = slice_features(net, heldout, num, 0, step, shuffle=False)  # as run_metrics reads its --data
    rows = []
    for seed in seeds:
        fakes = slice_features(net, data, num, seed, step, shuffle=True)
        kid = [kernel_inception_distance(reals[a], fakes[a], seed=0) for a in axes]
        fid = [frechet.frechet_distance_from_features(reals[a], fakes[a]) for a in axes]
        rows.append([seed, *kid, float(np.mean(kid)), *fid, float(np.mean(fid))])
    return rows


HEADERS = ["seed", "kid_axis0", "kid_axis1", "kid_axis2", "kid", "fid_axis0", "fid_axis1", "fid_axis2", "fid"]


def main(_):
    from metrics import feature_networks

    if not (FLAGS.data and FLAGS.heldout and FLAGS.feature_weights):
        raise app.UsageError("--data, --heldout and --feature_weights are required")
    common.log(common.machine_line())
    net = feature_networks.slice_network(FLAGS.feature_weights)
    if not net.comparable:
        raise app.UsageError(f"{FLAGS.feature_weights}: not the standard FID Inception ({net.description})")
    rows = floor_rows(net, FLAGS.data, FLAGS.heldout, FLAGS.num, [int(s) for s in FLAGS.seeds], FLAGS.slice_step)
    common.print_table(rows, HEADERS, floatfmt="{:.4f}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
