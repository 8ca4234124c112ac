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
from dnnlib.option_table import define_flags, option_key
from generation.latent_stats.commands import COMMANDS  # loads no TensorFlow: flag errors come back fast
from generation.latent_stats.options import EMBED_PROJECTOR_OPTIONS, OPTIONS
from training import pretrained
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
define_flags(OPTIONS)  # the option table's flags (embed's projector flags are run_projector.py's rows)


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
                    **{option_key(o): f[o.name].value for o in EMBED_PROJECTOR_OPTIONS})
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
