"""Use a trained generator: generate volumes, style mixing, interpolation, average volume.

  python run_generator.py generate    --network=results/00000-demo --seeds=0-9 --outdir=out/gen
  python run_generator.py style-mix   --network=... --row_seeds=1-4 --col_seeds=5-8 --styles=coarse --outdir=out/mix
  python run_generator.py interpolate --network=... --seeds=1,2,3 --frames=16 --space=w --interp=slerp --outdir=out/int
  python run_generator.py average     --network=... --seeds=0-99 --outdir=out/avg

--network is a run directory (latest checkpoint), a checkpoint prefix, or a SavedModel of the generator.
Volumes are NIfTI in [0, 1] with the training data's affine; PNGs show mid-slices. Flags are validated here and
resolved into one options object for generation.commands.run (the logic lives in the generation package).
"""

from absl import flags

from dnnlib.cli import check_batch, check_float_flags, check_io, check_network_flag, parse_int_ranges, parse_label
from dnnlib.cli import main as cli_main
from dnnlib.errors import UserError
from dnnlib.option_table import define_flags
from generation.commands import COMMANDS  # with the option table, no TensorFlow: flag errors come back fast
from generation.generate_options import OPTIONS
from training import pretrained
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
define_flags(OPTIONS)  # the option table's flags: name, type, default, help and allowed values


def io_table(f, network):
    """What this command reads and writes: every output is checked against every input (dnnlib.cli.check_io)."""
    return {"network": network, "projected_w": f.projected_w}, {"outdir": (f.outdir, "folder")}


def build_options(argv, f=FLAGS):
    """Validate flags for the chosen command and resolve them into the options object."""

    from dnnlib import EasyDict

    args = argv[1:]
    if len(args) != 1 or args[0] not in COMMANDS:
        raise UserError(f"give one command: {' | '.join(COMMANDS)} (got {' '.join(args) or 'none'})")
    cmd = args[0]
    for name in ("network", "outdir"):
        if not f[name].value:
            raise UserError(f"--{name} is required")
    network = pretrained.resolve(f.network)  # a shipped network's short name, e.g. demo
    check_network_flag(network, folder_kind(network))
    # The network may sit anywhere under a run folder: never write into it, around it or over it.
    check_float_flags(f)
    inputs, outputs = io_table(f, network)
    check_io(inputs, outputs, f.overwrite)
    opts = EasyDict(command=cmd, network=network, outdir=f.outdir, overwrite=f.overwrite, psi=f.psi,
                    truncation_cutoff=f.truncation_cutoff, noise_seed=f.noise_seed, class_idx=f.class_idx,
                    batch=f.batch, uint8=f.uint8, inputs=[p for p in inputs.values() if p])
    check_batch("batch", f.batch)
    opts.label = parse_label(f.label)
    opts.noise_mode = f.noise_mode or ("random" if cmd in ("generate", "average") else "const")
    if f.projected_w:
        _projected_w_options(cmd, f, opts)
    elif cmd == "style-mix":
        if not f.row_seeds or not f.col_seeds:
            raise UserError("style-mix needs --row_seeds and --col_seeds")
        opts.row_seeds = parse_int_ranges(f.row_seeds, "--row_seeds")
        opts.col_seeds = parse_int_ranges(f.col_seeds, "--col_seeds")
        opts.styles = f.styles
    else:
        if not f.seeds:
            raise UserError(f"{cmd} needs --seeds (e.g. --seeds=0-9)")
        opts.seeds = parse_int_ranges(f.seeds, "--seeds")
    if cmd == "interpolate":
        if not f.projected_w and len(opts.seeds) < 2:
            raise UserError("interpolate needs at least two --seeds")
        if f.frames < 2:
            raise UserError(f"--frames={f.frames}: need at least 2")
        if f.axis not in (0, 1, 2):
            raise UserError(f"--axis={f.axis}: expected 0, 1 or 2")
        space = "w" if f.projected_w else f.space
        opts.update(frames=f.frames, space=space, interp=f.interp, axis=f.axis, save_frames=f.save_frames)
    return opts


def _projected_w_options(cmd, f, opts):
    """--projected_w takes the place of --seeds (generate, interpolate) or --row_seeds (style-mix)."""
    import os

    if cmd == "average":
        raise UserError("--projected_w works with generate, style-mix and interpolate, not average")
    if not os.path.exists(f.projected_w):
        raise UserError(f"--projected_w={f.projected_w}: no such file or folder")
    taken = [n for n in ("seeds", "row_seeds") if f[n].present]
    if taken:
        raise UserError(f"--projected_w replaces --{taken[0]}: give one of them")
    if cmd == "interpolate" and f["space"].present and f.space != "w":
        raise UserError("--projected_w interpolates in W: a projection has no z (drop --space or use --space=w)")
    if cmd == "style-mix":
        if not f.col_seeds:
            raise UserError("style-mix with --projected_w needs --col_seeds (the projections are the rows)")
        opts.col_seeds = parse_int_ranges(f.col_seeds, "--col_seeds")
        opts.styles = f.styles
    opts.update(projected_w=f.projected_w, projected_noise=f.noise_mode is None)


def main(argv):
    opts = build_options(argv)  # validate before importing TensorFlow: flag errors come back fast
    from generation import commands

    summary = commands.run(opts)
    print(f"{opts.command}: wrote {summary.outdir}")


if __name__ == "__main__":
    cli_main(main, aliases={"trunc": "psi", "class": "class_idx", "latent": "projected_w"})
