"""Project volumes into a trained generator's latent space (W or W+, plus noise maps) and reconstruct them.

  python run_projector.py --network=results/00000-demo --target=scan.nii.gz --outdir=proj
  python run_projector.py --network=results/00000-demo --data=datasets/t1-2mm --indices=0-3 --outdir=proj
  python run_projector.py --network=results/00000-demo --target_seeds=0-3 --num_steps=200 --outdir=proj
  python run_projector.py --network=results/00000-demo --target=thick.nii.gz --degradation=native --output_grid=1 \
      --outdir=proj   # a thick-slice scan compared in its own geometry, restored at 1 mm over its field of view

Image targets (any format the dataset tool reads) are preprocessed with exactly the training dataset's
pipeline (dataset.json of --data, else the one in the run directory). Per target, a folder with:
projected.nii.gz (dataset grid, [0, 1]), projected_native.nii.gz (image targets: back in the file's own grid,
affine and intensity units), target.nii.gz, latent.npy [num_ws, w_dim], noise.npz, loss.csv, loss.png,
comparison.png (rows: target, degraded input and linear-interpolation baseline with a degradation,
projection, 4x |difference|; columns: sagittal, coronal, axial), metrics.json (PSNR, SSIM, NRMSE on the dataset grid,
in [0, 1]; with --ood_reference, the final data term and whether it flags the target as out of
distribution). With --degradation: degraded.nii.gz beside target_degraded.nii.gz (the degraded grid),
trivial_inverse.nii.gz, restored_<S>mm.nii.gz (--output_grid), degradation.json, and missing-information
metrics (see generation/restoration/restored.py).
Flags are validated here and resolved into one options object for generation.projection_command.run_projection.
"""

from absl import flags

from dnnlib.cli import (
    check_batch,
    check_data_flag,
    check_float_flags,
    check_io,
    check_network_flag,
    parse_int_ranges,
    parse_label,
)
from dnnlib.cli import main as cli_main
from dnnlib.errors import UserError
from dnnlib.option_table import define_flags, option_key
from generation.projection_options import OPTIONS, PROJECTOR_OPTIONS
from training import pretrained
from volumes.folder_kind import folder_kind

FLAGS = flags.FLAGS
define_flags(OPTIONS)  # the option table's flags: name, type, default, help and allowed values


def _positive(name, value, minimum=1):
    if value < minimum:
        raise UserError(f"--{name}={value}: must be at least {minimum}")


# Mapping samples of the W statistics: more than this is a typo, refused before anything is allocated.
MAX_W_AVG_SAMPLES = 10_000_000


def io_table(f, network, mask=None):
    """What this command reads and writes: every output is checked against every input (dnnlib.cli.check_io)."""
    inputs = {"network": network, "data": f.data, "target": list(f.target or []), "degradation": mask}
    return inputs, {"outdir": (f.outdir, "folder")}


def build_options(argv, f=FLAGS):
    """Validate flags and resolve them into the options object projection_command.run_projection takes."""
    import os

    from dnnlib import EasyDict

    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])} (targets go in --target=a.nii.gz,b.nii.gz)")
    for name in ("network", "outdir"):
        if not f[name].value:
            raise UserError(f"--{name} is required")
    if not (f.target or f.indices or f.target_seeds):
        raise UserError("nothing to project: give --target, --data with --indices, or --target_seeds")
    if f.indices and not f.data:
        raise UserError("--indices needs --data=<dataset folder>")
    network = pretrained.resolve(f.network)  # a shipped network's short name, e.g. demo
    check_network_flag(network, folder_kind(network))
    check_data_flag(f.data, folder_kind(f.data))
    targets = []
    for path in f.target or []:
        if not os.path.exists(path):
            raise UserError(f"--target: {path}: no such file or folder")
        targets += _target_files(path)
    # Never write into, around or over what is read.
    check_float_flags(f)
    from generation.restoration.spec import is_no_degradation

    mask = None if is_no_degradation(f.degradation) else _check_degradation(f.degradation, f.loss)
    inputs, outputs = io_table(f, network, mask)
    check_io(inputs, outputs, f.overwrite)
    for name in ("num_steps", "w_avg_samples", "progress_every"):
        _positive(name, f[name].value, 2 if name == "w_avg_samples" else 1)
    check_batch("batch", f.batch)
    if f.w_avg_samples > MAX_W_AVG_SAMPLES:
        raise UserError(f"--w_avg_samples={f.w_avg_samples}: at most {MAX_W_AVG_SAMPLES}")
    if not f.lr > 0:
        raise UserError(f"--lr={f.lr}: must be positive")
    if f.noise_reg_weight < 0 or f.initial_noise_factor < 0 or f.ssim_weight < 0:
        raise UserError("--noise_reg_weight, --initial_noise_factor and --ssim_weight must be >= 0")
    if f.ood_reference < 0:
        raise UserError(f"--ood_reference={f.ood_reference}: must be >= 0 (0: no out-of-distribution check)")
    if f.w_prior_weight < 0:
        raise UserError(f"--w_prior_weight={f.w_prior_weight}: must be >= 0")
    if f.output_grid is not None and not f.output_grid > 0:
        raise UserError(f"--output_grid={f.output_grid}: must be a positive spacing in mm")
    if f.output_grid is not None and is_no_degradation(f.degradation):
        raise UserError(f"--output_grid needs a --degradation other than {f.degradation or 'none'!r} (use "
                        "--degradation=native for a scan's own slice thickness alone)")
    label = parse_label(f.label)
    return EasyDict(
        network=network, outdir=f.outdir, overwrite=f.overwrite, data=f.data,
        targets=targets,
        indices=parse_int_ranges(f.indices, "--indices") if f.indices else [],
        target_seeds=parse_int_ranges(f.target_seeds, "--target_seeds") if f.target_seeds else [],
        target_psi=f.target_psi, target_noise_mode=f.target_noise_mode,
        **{option_key(o): f[o.name].value for o in PROJECTOR_OPTIONS if o.flag},
        batch=f.batch, progress_every=f.progress_every,
        class_idx=f.class_idx, label=label, uint8=f.uint8, inputs=[p for v in inputs.values() for p in
                                                                    (v if isinstance(v, list) else [v]) if p],
        degradation=f.degradation, output_grid=f.output_grid, ood_reference=f.ood_reference,
    )


def _target_files(path):
    """A --target: a file, a DICOM series folder (one scan), or a folder of scans (every scan in it, as
    dataset_tool.py create finds them)."""
    import os

    if not os.path.isdir(path):
        return [path]
    from volumes.dataset_inputs import find_inputs

    try:
        found, _ = find_inputs(path)
    except (OSError, ValueError) as e:
        raise UserError(f"--target={path}: {e}") from None
    return found


def _check_degradation(spec, loss):
    """The spec's grammar and its mask file (returned: an input), before the network loads. Millimetres become
    voxels only with the network's spacing, known later: a tiny stand-in spacing makes every mm= thickness a valid
    factor here."""
    import os

    from generation.restoration.spec import parse_spec

    try:
        deg = parse_spec(spec, network_spacing=(1e-6, 1e-6, 1e-6))
    except ValueError as e:
        raise UserError(f"--degradation: {e}") from None
    if deg.mask is not None and not os.path.isfile(deg.mask.path):
        raise UserError(f"--degradation: mask {deg.mask.path}: no such file")
    if loss != "mse" and (deg.ops or deg.mask is not None):
        raise UserError(f"--loss={loss} compares whole volumes on the network grid: use --loss=mse with thick "
                        "slices or a mask")
    return deg.mask.path if deg.mask is not None else None


def main(argv):
    opts = build_options(argv)  # validate before importing TensorFlow: flag errors come back fast
    from generation.projection_command import run_projection

    summary = run_projection(opts)
    print(f"projected {len(summary)} target(s) into {opts.outdir}")


if __name__ == "__main__":
    cli_main(main, aliases={"class": "class_idx"})
