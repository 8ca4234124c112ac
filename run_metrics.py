"""Evaluate a trained 3D generator: FID (slices / 3D), KID, MMD, MS-SSIM, precision/recall.

  python run_metrics.py --network=results/00001-demo --data=datasets/demo-2mm \
      --metrics=fid_slices,kid,mmd,ms_ssim --num=200 --feature_weights=inception-2015-12-05.tgz --json=out.json

--network: a run directory (latest checkpoint; results are also appended to its metric-<name>.jsonl), a
checkpoint prefix or a SavedModel. Slice metrics (fid_slices, kid, pr_slices) use the standard FID Inception
(inception-2015-12-05, as TTUR, StyleGAN2 and pytorch-fid): from --feature_weights (.pb, .tgz, converted .npz or
TorchScript .pt), else from the cache ($STYLEGAN3D_CACHE, ~/.cache/stylegan3d) after one sha256-pinned download.
--feature_weights=keras:<file> uses Keras' InceptionV3 instead (numbers not comparable with published FIDs). Every
result records the network and weights sha256 that produced it. 3D metrics need a 3D network (--feature_network,
--feature_layer). The memorisation audit (memorization, memorization_slices, memorization_3d) compares the fakes
with every volume of --data (the training set) and with --heldout (a held-out split); --report_dir adds its
pictures.
"""

import os

from absl import flags

from dnnlib import EasyDict, UserError
from dnnlib.cli import check_batch, check_data_flag, check_float_flags, check_io, check_network_flag
from dnnlib.cli import main as cli_main
from dnnlib.option_table import define_flags
from metrics.metric_options import OPTIONS
from training import pretrained
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
define_flags(OPTIONS)  # the option table's flags: name, type, default, help and allowed values



# Volumes generated for one evaluation: more than this is a typo, refused before anything is allocated.
MAX_NUM = 1_000_000


def io_table(f, network, metrics=()):
    """What this command reads and writes: every output is checked against every input (dnnlib.cli.check_io)."""
    weights = f.feature_weights.removeprefix("keras:") if f.feature_weights and f.feature_weights != "random" else None
    inputs = {"network": network, "data": f.data, "heldout": f.heldout, "feature_weights": weights,
              "feature_network": f.feature_network}
    outputs = {"json": (f.json, "file")}
    if f.report_dir:  # the memorisation audits write one report folder each
        for name in (m for m in metrics if m.startswith("memorization")):
            outputs[f"report_dir ({name})"] = (os.path.join(f.report_dir, name), "folder")
    return inputs, outputs


def options_from_flags(f):
    """Validate the flags (UserError naming the flag) and gather them into the options run_metrics takes."""
    if not f.network:
        raise UserError("--network is required (a run directory, checkpoint or SavedModel)")
    if not f.data:
        raise UserError("--data is required: the dataset directory of the reals")
    if not os.path.isdir(f.data):
        raise UserError(f"--data={f.data}: no such dataset directory")
    network = pretrained.resolve(f.network)  # a shipped network's short name, e.g. demo
    check_network_flag(network, folder_kind(network))
    check_data_flag(f.data, folder_kind(f.data))
    if f.num < 2:
        raise UserError(f"--num={f.num}: need at least 2 volumes")
    check_batch("batch", f.batch)
    if f.num > MAX_NUM:
        raise UserError(f"--num={f.num}: at most {MAX_NUM}")
    if f.kernel_size < 3 or f.kernel_size % 2 == 0:
        raise UserError(f"--kernel_size={f.kernel_size}: must be an odd integer >= 3")
    if f.slice_step < 0:
        raise UserError(f"--slice_step={f.slice_step}: must be >= 0")
    if f.cells < 0:
        raise UserError(f"--cells={f.cells}: must be >= 0")
    if f.heldout:
        if not os.path.isdir(f.heldout):
            raise UserError(f"--heldout={f.heldout}: no such dataset directory")
        check_data_flag(f.heldout, folder_kind(f.heldout), flag="heldout")
    metrics = [m.strip() for m in f.metrics if m.strip()]
    check_float_flags(f)
    inputs, outputs = io_table(f, network, metrics)
    check_io(inputs, outputs, f.overwrite)
    return EasyDict(inputs=[p for p in inputs.values() if p], overwrite=f.overwrite,
                    network=network, data=f.data, metrics=metrics, heldout=f.heldout, report_dir=f.report_dir,
                    cells=f.cells or None,
                    num=f.num, batch=f.batch, feature_weights=f.feature_weights, feature_network=f.feature_network,
                    feature_layer=f.feature_layer, feature_input=f.feature_input, slice_step=f.slice_step or None,
                    kernel_size=f.kernel_size, seed=f.seed, psi=f.psi, noise_mode=f.noise_mode,
                    cache_dir=f.cache_dir, json=f.json, run_log=f.run_log)


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    if FLAGS.metrics == ["list"]:
        from metrics.metric_main import describe_metrics

        print(describe_metrics())
        return
    opts = options_from_flags(FLAGS)
    from metrics.metric_main import MetricOptionError, check_options, run_metrics
    from training.network_io import load_generator
    from training.run_files import is_run_dir

    try:
        check_options(opts)  # before loading, as calc_metrics would
        run_dir = opts.network if opts.run_log and is_run_dir(opts.network) else None
        run_metrics(EasyDict(opts, network=load_generator(opts.network), network_name=opts.network, run_dir=run_dir))
    except MetricOptionError as e:  # found before any work; the library names the option, we name its flag
        raise UserError(f"--{e.option}: {e}") from None


if __name__ == "__main__":
    cli_main(main, aliases={"trunc": "psi"})
