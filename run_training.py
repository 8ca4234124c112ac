"""Train 3D-StyleGAN. With no flags: the demo config on the built-in demo data, samples on disk at the end.

  python run_training.py                                        # demo config, demo data, a time-boxed run
  python run_training.py --config=Gorig-Dres-3d-2mm-base567 --summary
  python run_training.py --data=datasets/t1-2mm --config=Gorig-Dres-3d-2mm-base567 --kimg=6000
  python run_training.py --resume=results/00000-demo-demo-demo-b4   # continue a run (its own flags)
  python run_training.py --dry_run                              # options, networks, one step's timing; no writes

Several GPUs: --strategy=mirrored (auto when more than one is visible). Several machines: set TF_CONFIG on each
and pass --strategy=multi_worker; --batch is the global batch, split over all replicas. The options (one table,
from which the flags below are made) live in training/train_options.py, the loop in training/training_loop.py.
"""

import math
import os
import sys

from absl import flags, logging

from dnnlib.cli import check_data_flag, check_io
from dnnlib.cli import main as cli_main
from dnnlib.errors import UserError
from dnnlib.option_table import define_flags as define_table_flags
from training.augment_spec import AUG_MODES, GROUPS
from training.train_options import OPTIONS
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
FLAG_OPTIONS = [o for o in OPTIONS if o.flag]
# Actions of this script, not training options.
CLI_ACTIONS = {
    "dry_run": "Build everything, print options, networks and one step's timing; write nothing.",
    "summary": "Print the per-layer table and parameter totals of --config and exit.",
}
POSITIVE = ("batch", "batch_gpu", "kimg", "kimg_per_tick", "snap", "max_minutes", "samples", "keep_checkpoints",
            "metric_num")
UNBOUNDED = ("max_minutes",)  # of POSITIVE, the one for which infinity means something (no time limit)
NON_NEGATIVE = ("gamma", "r1_gamma", "r2_gamma", "collective_timeout", "max_skipped_steps")
# Exit status when a peer worker was lost (sysexits EX_TEMPFAIL): the run can be resumed, a scheduler may requeue.
WORKER_LOST_EXIT = 75
AUGPIPE_GROUPS = "".join(GROUPS)  # the letters --augpipe accepts


def define_flags(flag_values=FLAGS):
    """One flag per entry of the option table (same name, type, default and help), plus the CLI actions."""
    define_table_flags(FLAG_OPTIONS, flag_values)
    for name, help_text in CLI_ACTIONS.items():
        flags.DEFINE_bool(name, False, help_text, flag_values=flag_values)
    flags.DEFINE_integer("gpus", None, "StyleGAN2-ADA's --gpus=N: train on the first N GPUs (CUDA_VISIBLE_DEVICES; "
                         "N > 1 mirrors over them with --strategy=auto; 0 = CPU only). Default: every visible GPU.",
                         flag_values=flag_values)


def restrict_gpus(n, environ=os.environ):
    """Make only the first n GPUs visible (of CUDA_VISIBLE_DEVICES when it is set); before TensorFlow loads."""
    if n < 0:
        raise UserError(f"--gpus={n}: must be >= 0")
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    ids = [d for d in visible.split(",") if d.strip()] if visible is not None else [str(i) for i in range(n)]
    if n > len(ids):
        raise UserError(f"--gpus={n}: only {len(ids)} GPU(s) in CUDA_VISIBLE_DEVICES={visible}")
    environ["CUDA_VISIBLE_DEVICES"] = ",".join(ids[:n])


def validate_aug_flags(values):
    """--aug, --p, --target, --augpipe, --ada_kimg (training/augment.py's options), naming the flag."""
    aug, p, target, spec, ada_kimg = (values.get(k) for k in ("aug", "p", "target", "augpipe", "ada_kimg"))
    if aug is not None and aug not in AUG_MODES:
        raise UserError(f"--aug={aug}: choose one of {', '.join(AUG_MODES)}")
    if p is not None and not 0.0 <= p <= 1.0:
        raise UserError(f"--p={p!r}: must be in [0, 1]")
    if p is not None and aug == "noaug":
        raise UserError(f"--p={p!r}: there is no augmentation probability with --aug=noaug (use --aug=fixed or ada)")
    if target is not None and not 0.0 < target < 1.0:
        raise UserError(f"--target={target!r}: must be in (0, 1)")
    if spec is not None:
        s = str(spec).strip().lower()
        if not s or any(ch not in AUGPIPE_GROUPS for ch in s) or len(set(s)) != len(s):
            raise UserError(f"--augpipe={spec}: use distinct letters of {AUGPIPE_GROUPS} (b blit, g geometric, "
                            "c intensity, n noise and cutout), e.g. bgc")
    if ada_kimg is not None and not (ada_kimg > 0 and math.isfinite(ada_kimg)):
        raise UserError(f"--ada_kimg={ada_kimg!r}: must be a positive number (finite)")


def io_table(values):
    """What training reads and writes: the run folder is a new entry of --outdir, which must not be or lie inside
    anything training reads (dnnlib.cli.check_io, kind "parent")."""
    weights = values.get("metric_feature_weights")
    inputs = {"data": values.get("data"), "resume": values.get("resume"),
              "metric_feature_weights": weights.removeprefix("keras:") if weights and weights != "random" else None,
              "metric_feature_network": values.get("metric_feature_network")}
    return inputs, {"outdir": (values.get("outdir") or "results", "parent")}


def validate_flags(values):
    """Refuse flag values that cannot work, naming the flag; values: option name -> value."""
    validate_aug_flags(values)
    for name in POSITIVE:
        v = values.get(name)
        if v is not None and not (v > 0 and (math.isfinite(v) or name in UNBOUNDED)):
            raise UserError(f"--{name}={v!r}: must be a positive number" + ("" if name in UNBOUNDED else
                                                                           " (finite)"))
    for name in NON_NEGATIVE:
        v = values.get(name)
        if v is not None and not (math.isfinite(v) and v >= 0):
            raise UserError(f"--{name}={v!r}: must be >= 0")
    if values.get("data") and not os.path.isdir(values["data"]):
        raise UserError(f"--data={values['data']}: no such dataset directory (create one with dataset_tool.py "
                        "create)")
    check_data_flag(values.get("data"), folder_kind(values.get("data")))
    inputs, outputs = io_table(values)
    check_io(inputs, outputs)
    if values.get("strategy") == "multi_worker" and not os.environ.get("TF_CONFIG"):
        raise UserError("--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task)")


def _with_metric_flag(error):
    """A metric option error as a UserError naming our flag; any other error unchanged."""
    from metrics.metric_main import MetricOptionError  # loaded already: build_options checked the metrics

    if not isinstance(error, MetricOptionError):
        return error
    flag = "metrics" if error.option == "metrics" else f"metric_{error.option}"
    return UserError(f"--{flag}: {error}")


def config_summary(config):
    """Per-layer tables and totals of a named config's G and D (no dataset needed)."""
    from training import configs
    from training.networks import count_params, summary

    G, D = configs.build_networks(configs.get_config(config))
    return "\n\n".join([summary(G), summary(D),
                        f"{config}: G {count_params(G):,} trainable parameters, D {count_params(D):,}"])


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {' '.join(argv[1:])}; all options are --flags (see --help)")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    logging.set_verbosity(logging.WARNING)  # SavedModel export logs every file at INFO
    if FLAGS.summary:
        print(config_summary(FLAGS.config))
        return 0
    values = {o.name: FLAGS[o.name].value for o in FLAG_OPTIONS}
    validate_flags(values)
    if FLAGS.gpus is not None:
        restrict_gpus(FLAGS.gpus)
    explicit = {name for name in values if FLAGS[name].present}
    from training import train_options, training_loop
    from training.multi_worker import WorkerLost, make_strategy

    if FLAGS.strategy not in ("auto", "multi_worker") or not os.environ.get("TF_CONFIG"):
        strategy = None
    else:
        # Collective ops must be configured before TensorFlow does anything else (e.g. building demo data).
        strategy = make_strategy(FLAGS.strategy, FLAGS.collective_timeout)
    try:
        opts = train_options.build_options(explicit=explicit, **values)
    except ValueError as e:
        if not values["metrics"]:
            raise
        raise _with_metric_flag(e) from None
    try:
        result = training_loop.training_loop(opts, strategy=strategy, dry_run=FLAGS.dry_run)
    except training_loop.TrainingDiverged as e:
        raise UserError(str(e)) from None  # a run that cannot go on: one line and exit 2, like bad input
    except WorkerLost as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(WORKER_LOST_EXIT)
    if result.get("snapshot_dir"):
        print(f"Samples: {result.snapshot_dir}")
    if result.get("stopped"):
        # Checkpointed but not finished: a scheduler must be able to tell this from a finished run and requeue.
        sys.exit(128 + result.signum)
    return 0


if __name__ == "__main__":
    define_flags()  # here, not at import: tests import this module to compare its flags with the option table
    cli_main(main, aliases={"cfg": "config"})
