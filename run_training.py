"""Train 3D-StyleGAN. With no flags: the demo config on the built-in demo data, samples on disk at the end.

  python run_training.py                                        # demo config, demo data (~15 min on 2 cores)
  python run_training.py --config=Gorig-Dres-3d-2mm-base567 --summary
  python run_training.py --data=datasets/t1-2mm --config=Gorig-Dres-3d-2mm-base567 --kimg=6000
  python run_training.py --resume=results/00000-demo-demo-demo-b4   # continue a run (its own flags)
  python run_training.py --dry_run                              # options, networks, one step's timing; no writes

Several GPUs: --strategy=mirrored (auto when more than one is visible). Several machines: set TF_CONFIG on each
and pass --strategy=multi_worker; --batch is the global batch, split over all replicas. The logic lives in
training/train_options.py and training/training_loop.py.
"""

import os

from absl import app, flags, logging

from dnnlib.cli import run_main
from dnnlib.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_string("data", None, "Dataset directory from dataset_tool.py (default: the built-in demo dataset, "
                    "built on first use).")
flags.DEFINE_string("config", "demo", "Training config name (training/configs.py; --summary to inspect).")
flags.DEFINE_string("outdir", "results", "Parent of the run directories NNNNN-<desc>.")
flags.DEFINE_integer("batch", None, "Global batch size (default: the config's).")
flags.DEFINE_float("kimg", None, "Length of training in thousands of real volumes shown (default: the config's).")
flags.DEFINE_float("kimg_per_tick", None, "Progress line every this many kimg (default: the config's).")
flags.DEFINE_float("gamma", None, "R1 weight (default: the config's).")
flags.DEFINE_float("r2_gamma", None, "R2 weight on fakes (default: the config's; 0 = off).")
flags.DEFINE_bool("mirror", False, "Random left-right flips along the dataset's mirror axis.")
flags.DEFINE_integer("snap", None, "Snapshot + checkpoint every this many ticks (default: about every 2 kimg).")
flags.DEFINE_list("metrics", [], "Metrics at every snapshot, e.g. mmd_linear_batch8,ms_ssim (default: none).")
flags.DEFINE_integer("metric_num", 64, "Volumes per metric evaluation.")
flags.DEFINE_string("metric_feature_weights", None, "InceptionV3 weights (.h5/.keras) for fid_slices, kid, pr_slices "
                    "(nothing is downloaded; see run_metrics.py --helpfull).")
flags.DEFINE_string("metric_feature_network", None, "3D feature network (Keras file or SavedModel) for fid_3d.")
flags.DEFINE_string("metric_feature_layer", None, "Layer of --metric_feature_network whose output is the feature.")
flags.DEFINE_string("resume", None, "Run directory (latest checkpoint) or checkpoint prefix to continue from.")
flags.DEFINE_integer("seed", 0, "Random seed (weights, latents, data order).")
flags.DEFINE_enum("precision", "fp32", ["fp32", "mixed_fp16", "mixed_bf16"],
                  "Compute precision of the conv layers (fp16 with dynamic loss scaling).")
flags.DEFINE_bool("xla", False, "Compile the train steps with XLA (jit_compile).")
flags.DEFINE_enum("strategy", "auto", ["auto", "one_device", "mirrored", "multi_worker"],
                  "tf.distribute strategy; auto = multi_worker with TF_CONFIG, mirrored with >1 GPU, else one device.")
flags.DEFINE_bool("lazy_reg", True, "Lazy regularisation (G every 4, D every 16 steps, lr/beta corrected); "
                  "--nolazy_reg adds the regularisers on every step as the original did.")
flags.DEFINE_float("max_minutes", None, "Stop (with a final snapshot) after this many minutes of training "
                   "(default: 11 for the no-flag demo, --config=demo without --kimg; else no limit).")
flags.DEFINE_integer("samples", 8, "Sample volumes written per snapshot.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept (the last K).")
flags.DEFINE_bool("dry_run", False, "Build everything, print options, networks and one step's timing; write nothing.")
flags.DEFINE_bool("summary", False, "Print the per-layer table and parameter totals of --config and exit.")

OPTION_FLAGS = ("data", "config", "outdir", "batch", "kimg", "kimg_per_tick", "gamma", "r2_gamma", "mirror", "snap",
                "metrics", "metric_num", "metric_feature_weights", "metric_feature_network",
                "metric_feature_layer", "resume", "seed", "precision", "xla", "strategy", "lazy_reg", "samples",
                "keep_checkpoints", "max_minutes")


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
    from training import train_options, training_loop

    if FLAGS.strategy not in ("auto", "multi_worker") or not os.environ.get("TF_CONFIG"):
        strategy = None
    else:
        # Collective ops must be configured before TensorFlow does anything else (e.g. building demo data).
        strategy = training_loop.make_strategy(FLAGS.strategy)
    values = {name: FLAGS[name].value for name in OPTION_FLAGS}
    explicit = {name for name in OPTION_FLAGS if FLAGS[name].present}
    opts = train_options.build_options(explicit=explicit, **values)
    result = training_loop.training_loop(opts, strategy=strategy, dry_run=FLAGS.dry_run)
    if result.get("snapshot_dir"):
        print(f"Samples: {result.snapshot_dir}")
    return 0


if __name__ == "__main__":
    app.run(run_main(main))
