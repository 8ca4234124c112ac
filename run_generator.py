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
from generation.commands import COMMANDS  # these two load no TensorFlow: flag errors come back before it loads
from generation.interpolation import INTERPOLATIONS, SPACES
from training import pretrained
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
flags.DEFINE_string("network", None, "Run directory, checkpoint prefix or generator SavedModel.")
flags.DEFINE_string("outdir", None, "Output directory (must not exist unless --overwrite).")
flags.DEFINE_bool("overwrite", False, "Replace an existing --outdir.")
flags.DEFINE_string("seeds", None, "Seeds, e.g. 0-9,20 (generate, interpolate, average).")
flags.DEFINE_string("row_seeds", None, "style-mix: seeds of the rows (they give the styles not replaced).")
flags.DEFINE_string("col_seeds", None, "style-mix: seeds of the columns (they give the styles in --styles).")
flags.DEFINE_string("styles", None, "style-mix: ws taken from the column seed: presets (coarse, middle, "
                    "fine: lowest, middle, highest third of the resolutions; at 2 mm coarse = ws 0-2 (5x6x7, "
                    "10x12x14), middle = 3-4 (20x24x28), fine = 5-9 (40x48x56, 80x96x112); on the demo network "
                    "coarse = ws 0, middle = 1-4, fine = 5-7; style-mix prints the network's own), a resolution or "
                    "range such as 10x12x14 or 5x6x7-10x12x14, ws index ranges such as 0-3 (0-6: the original's "
                    "default), all, or none. Default: the column's anatomy (coarse and middle), the row's detail.")
flags.DEFINE_float("psi", 0.5, "Truncation psi (1 = none).")
flags.DEFINE_integer("truncation_cutoff", None, "Truncate only the first N ws (default: all).")
# The values of training.networks.NOISE_MODES, written out to keep TensorFlow out of flag parsing (a test
# checks that they agree).
flags.DEFINE_enum("noise_mode", None, ["random", "const", "none"],
                  "Per-layer noise. Default: random (from the seed) for generate/average, const for "
                  "style-mix/interpolate, whose noise is shared by every volume (random = one draw from --noise_seed).")
flags.DEFINE_integer("noise_seed", 0, "style-mix/interpolate: seed of the shared noise when --noise_mode=random.")
flags.DEFINE_integer("class_idx", None, "Conditional networks: class index (one-hot label).")
flags.DEFINE_list("label", None, "Conditional networks: explicit label vector, comma-separated floats.")
flags.DEFINE_integer("batch", 4, "Volumes per generator call.")
flags.DEFINE_bool("uint8", False, "Also write a uint8 copy of every volume (*_uint8.nii.gz).")
flags.DEFINE_integer("frames", 16, "interpolate: frames per segment between consecutive seeds (ends included).")
flags.DEFINE_enum("space", "z", list(SPACES), "interpolate: latent space.")
flags.DEFINE_enum("interp", "linear", list(INTERPOLATIONS), "interpolate: linear or spherical.")
flags.DEFINE_integer("axis", 2, "interpolate: slice axis of the strip/GIF (0 sagittal, 1 coronal, 2 axial).")
flags.DEFINE_bool("save_frames", True, "interpolate: write every frame as NIfTI (frameNNNN.nii.gz, beside "
                  "interpolation_frames.png); --nosave_frames writes the pictures only.")
flags.DEFINE_string("projected_w", None, "Latents of run_projector.py (its --outdir, one target's folder or a "
                    "latent.npy / projected_w.npz) instead of seeds: generate re-synthesises them (with the "
                    "projection's noise maps unless --noise_mode is given), style-mix uses them as the rows, "
                    "interpolate goes through them in W. Alias --latent.")


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
