"""Latent-space statistics of a trained generator over a cohort: embeddings, atlases, conditional atlases,
disease trajectories, synthesis over training.

  python run_latent.py embed      --network=demo --data=pretrained/demo/heldout --outdir=lat/emb [--w_plus]
  python run_latent.py atlas      --embedding=lat/emb --outdir=lat/atlas
  python run_latent.py regress    --embedding=lat/emb --at=age=30,50,70 [--covariates=age,group]
                                  [--method=kernel] --outdir=lat/age
  python run_latent.py trajectory --embedding=lat/emb --subject=3 --change=age=+20 --outdir=lat/traj
  python run_latent.py progress   --run=results/00000-demo --seeds=0-5 --outdir=lat/progress

embed projects every volume of --data (or --indices) with the projector's settings and is resumable: rerun the
same command after an interruption and it continues from <outdir>.partial. The other commands read an embed
folder (which names its network and dataset; --network / --data override them). Covariates come from the
dataset manifest's files[i].covariates, else from its conditional labels. Volumes are NIfTI in [0, 1] with the
dataset's affine; every command writes pictures and latent_stats.json (embed: embedding.json).
Flags are validated here and resolved into one options object for generation.latent_stats.commands.run.
"""

from absl import flags

from dnnlib.cli import check_data_flag, check_float_flags, check_io, check_network_flag, parse_int_ranges
from dnnlib.cli import main as cli_main
from dnnlib.errors import UserError
from generation.latent_stats.commands import COMMANDS  # loads no TensorFlow: flag errors come back fast
from training import pretrained
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
flags.DEFINE_string("outdir", None, "Output directory (must not exist unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --outdir.")
flags.DEFINE_string("network", None, "embed: run directory, checkpoint prefix, generator SavedModel or shipped name; "
                    "other commands: overrides the embedding's network.")
flags.DEFINE_string("data", None, "embed: dataset folder (or a split of one); other commands: overrides the "
                    "embedding's dataset.")
flags.DEFINE_string("indices", None, "embed: dataset volume indices, e.g. 0-9 (default: all).")
flags.DEFINE_string("embedding", None, "atlas, regress, trajectory: a folder written by embed.")
flags.DEFINE_string("run", None, "progress: a training run directory.")
flags.DEFINE_string("seeds", "0-5", "progress: seeds shown in every snapshot.")
# The projector's settings (embed).
flags.DEFINE_integer("num_steps", 1000, "embed: projector optimisation steps per volume.")
flags.DEFINE_float("lr", 0.3, "embed: projector's initial (peak) learning rate.")
flags.DEFINE_bool("w_plus", False, "embed: one W per layer (W+) instead of one W.")
flags.DEFINE_float("noise_reg_weight", 1e5, "embed: weight of the projector's noise-map regulariser.")
flags.DEFINE_float("initial_noise_factor", 0.05, "embed: initial latent noise as a fraction of the W spread.")
flags.DEFINE_float("w_prior_weight", 0.0, "embed: weight of the prior on W.")
flags.DEFINE_integer("w_avg_samples", 10000, "embed: mapping samples for the W mean and spread.")
flags.DEFINE_integer("seed", 0, "embed: seed of the projector's random draws.")
flags.DEFINE_integer("batch", 4, "Volumes per projector batch (embed) or per generator call.")
flags.DEFINE_integer("progress_every", 100, "embed: print a projector line every N steps.")
# atlas
flags.DEFINE_integer("segments", 4, "atlas: segments of each discrete geodesic of the intrinsic mean.")
flags.DEFINE_integer("geodesic_steps", 100, "atlas: optimisation steps of the intrinsic mean.")
flags.DEFINE_float("geodesic_lr", None, "atlas: Adam step in latent units (default: 2% of the latents' spread).")
# regress / trajectory
flags.DEFINE_list("covariates", None, "regress, trajectory: covariates of the model (default: the one of --at or "
                  "--change; it is always included).")
flags.DEFINE_enum("method", "linear", ["linear", "kernel"], "regress, trajectory: linear least squares or Gaussian "
                  "kernel (Nadaraya-Watson) regression.")
flags.DEFINE_float("bandwidth", None, "kernel: bandwidth in standard deviations of the covariates (default: by "
                   "leave-one-out error).")
flags.DEFINE_integer("folds", None, "Cross-validation folds (default: leave-one-out up to 50 subjects, else 10).")
flags.DEFINE_string("at", None, "regress: covariate and its values, e.g. age=30,50,70.")
flags.DEFINE_list("hold", None, "regress: other covariates' values, e.g. group=1 (default: mean / most frequent).")
flags.DEFINE_string("subject", None, "trajectory: the subject, by dataset index (or row name such as index00003).")
flags.DEFINE_string("change", None, "trajectory: covariate change, e.g. age=+20 (added) or group=1 (set).")
flags.DEFINE_integer("frames", 5, "trajectory: frames of the strip/GIF along the change.")
flags.DEFINE_integer("axis", 2, "Slice axis of strips and GIFs (0 sagittal, 1 coronal, 2 axial).")


def _parse_at(text):
    name, sep, values = str(text).partition("=")
    try:
        vals = [float(v) for v in values.split(",") if v.strip()]
    except ValueError:
        vals = []
    if not sep or not name.strip() or not vals:
        raise UserError(f"--at={text}: expected a covariate and numbers, e.g. --at=age=30,50,70")
    return [name.strip(), vals]


def _parse_hold(items):
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise UserError(f"--hold={item}: expected covariate=number, e.g. --hold=group=1")
    return out


def _positive(f, *names):
    for name in names:
        if f[name].value < 1:
            raise UserError(f"--{name}={f[name].value}: must be at least 1")


def _check_outdir(f, inputs):
    """This command's input/output table: its one output folder against everything it reads; float flags finite."""
    check_float_flags(f)
    check_io({"inputs": [p for p in inputs if p]}, {"outdir": (f.outdir, "folder")}, f.overwrite)


def build_options(argv, f=FLAGS):
    """Validate flags for the chosen command and resolve them into the options object."""
    from dnnlib import EasyDict

    args = argv[1:]
    if len(args) != 1 or args[0] not in COMMANDS:
        raise UserError(f"give one command: {' | '.join(COMMANDS)} (got {' '.join(args) or 'none'})")
    cmd = args[0]
    if not f.outdir:
        raise UserError("--outdir is required")
    _positive(f, "batch", "progress_every", "num_steps", "segments", "frames")
    if f.geodesic_steps < 0:
        raise UserError(f"--geodesic_steps={f.geodesic_steps}: must be >= 0")
    if f.axis not in (0, 1, 2):
        raise UserError(f"--axis={f.axis}: expected 0, 1 or 2")
    network = pretrained.resolve(f.network) if f.network else None
    check_network_flag(network, folder_kind(network) if network else None)
    check_data_flag(f.data, folder_kind(f.data))
    opts = EasyDict(command=cmd, outdir=f.outdir, overwrite=f.overwrite, batch=f.batch, axis=f.axis)
    if cmd == "embed":
        for name in ("network", "data"):
            if not f[name].value:
                raise UserError(f"embed needs --{name}")
        if f.w_avg_samples < 2:
            raise UserError(f"--w_avg_samples={f.w_avg_samples}: must be at least 2")
        if not f.lr > 0 or f.noise_reg_weight < 0 or f.initial_noise_factor < 0 or f.w_prior_weight < 0:
            raise UserError("--lr must be positive; --noise_reg_weight, --initial_noise_factor and --w_prior_weight "
                            "must be >= 0")
        _check_outdir(f, [network, f.data])
        opts.update(network=network, data=f.data,
                    indices=parse_int_ranges(f.indices, "--indices") if f.indices else None,
                    num_steps=f.num_steps, initial_learning_rate=f.lr, w_plus=f.w_plus,
                    regularize_noise_weight=f.noise_reg_weight, initial_noise_factor=f.initial_noise_factor,
                    w_prior_weight=f.w_prior_weight, w_avg_samples=f.w_avg_samples, seed=f.seed,
                    progress_every=f.progress_every)
        return opts
    if cmd == "progress":
        if not f.run:
            raise UserError("progress needs --run=<training run directory>")
        _check_outdir(f, [f.run])
        opts.update(run=f.run, seeds=parse_int_ranges(f.seeds, "--seeds"))
        return opts
    if not f.embedding:
        raise UserError(f"{cmd} needs --embedding=<a folder written by embed>")
    _check_outdir(f, [f.embedding, network, f.data])
    opts.update(embedding=f.embedding, network=network, data=f.data)
    if cmd == "atlas":
        opts.update(segments=f.segments, geodesic_steps=f.geodesic_steps, geodesic_lr=f.geodesic_lr)
        if f.geodesic_lr is not None and not f.geodesic_lr > 0:
            raise UserError(f"--geodesic_lr={f.geodesic_lr}: must be positive")
        return opts
    if f.bandwidth is not None and not f.bandwidth > 0:
        raise UserError(f"--bandwidth={f.bandwidth}: must be positive")
    if f.folds is not None and f.folds < 2:
        raise UserError(f"--folds={f.folds}: must be at least 2")
    opts.update(method=f.method, bandwidth=f.bandwidth, folds=f.folds,
                covariates=[c.strip() for c in f.covariates or [] if c.strip()] or None)
    if cmd == "regress":
        if not f.at:
            raise UserError("regress needs --at=<covariate>=<values>, e.g. --at=age=30,50,70")
        opts.update(at=_parse_at(f.at), hold=_parse_hold(f.hold))
        return opts
    if not f.subject or not f.change:
        raise UserError("trajectory needs --subject (a dataset index) and --change (e.g. age=+20)")
    from generation.latent_stats.conditional import parse_change

    try:
        parse_change(f.change)
    except ValueError as e:
        raise UserError(f"--change: {e}") from None
    opts.update(subject=f.subject, change=f.change, frames=f.frames)
    return opts


def main(argv):
    opts = build_options(argv)  # validate before importing TensorFlow
    from generation.latent_stats.commands import run

    run(opts)


if __name__ == "__main__":
    cli_main(main)
