"""Make and inspect 3D-StyleGAN datasets (TFRecord shards + dataset.json).

  python dataset_tool.py create  --input=scans/ --output=datasets/mydata [--spacing=2 --shape=80x96x112]
                                 [--register_to=template.nii.gz] [--labels=labels.csv [--missing_values=n/a]]
                                 [--strict] [--max_voxels=134217728]
  python dataset_tool.py info    --dataset=datasets/mydata [--picture=look.png]  # print, verify every record
  python dataset_tool.py extract --dataset=datasets/mydata --output=out/nifti [--indices=0-9]

create and extract draw montage.png (three mid-slices of up to 12 volumes, named, with the skipped inputs) into
their output; create warns about scans that cover less than half of the output grid (a partial field of view).
  python dataset_tool.py split   --dataset=datasets/mydata --output=datasets/mydata-split [--test_fraction=0.1]
  python dataset_tool.py demo    [--res=demo|2mm] [--num_volumes=200] [--output=datasets/demo-demo]

--input is a folder (searched recursively; DICOM series folders count as one scan), a glob pattern
("scans/**/*.nii.gz", quote it) or a list file (.txt, one path per line). Formats: NIfTI, MGH/MGZ,
MHA/MHD, NRRD, DICOM. --source/--dest (and --outdir) are aliases of --input/--output.
Outputs are refused (exit 2) when they are /, $HOME or the current folder, when they are, contain or lie inside
an input (scans, their folder/list/glob folder, --labels, --register_to, --dataset), and, even with
--overwrite, when they hold files this project did not write. SIGTERM stops cleanly (exit 143, nothing left).
This file holds the flags and their validation only: it builds one options object and hands it to
volumes.dataset_commands.run, where the work is done.
"""

import math
import os
import sys

from absl import flags

from dnnlib.cli import main as cli_main
from dnnlib.cli import parse_int_ranges
from dnnlib.easydict import EasyDict
from dnnlib.errors import UserError
from dnnlib.fileutil import check_output
from dnnlib.option_table import defaults as table_defaults
from dnnlib.option_table import define_flags as define_table_flags
from volumes import dataset_commands
from volumes.dataset_commands import COMMANDS
from volumes.dataset_options import ALIASES, OPTIONS

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Register the option table's flags and their aliases (only when run as a program, so importing this module
    defines no global flags)."""
    define_table_flags(OPTIONS, fv)
    for alias, name in ALIASES.items():
        flags.DEFINE_alias(alias, name, flag_values=fv)


def parse_triple(text, flag, kind=float):
    parts = str(text).replace("x", ",").split(",")
    try:
        vals = [kind(p) for p in parts if p.strip()]
    except ValueError:
        raise UserError(f"--{flag}={text!r}: expected one number or three like 2,2,2 / 80x96x112") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or not all(math.isfinite(v) and v > 0 for v in vals):
        raise UserError(f"--{flag}={text!r}: expected one positive number or three")
    return vals


def preprocess_options(f=FLAGS):
    from volumes import preprocess

    spacing = parse_triple(f.spacing, "spacing")
    base = parse_triple(f.base_shape, "base_shape", int)
    shape = parse_triple(f.shape, "shape", int) if f.shape else list(preprocess.default_shape(spacing, base))
    try:
        preprocess.check_shape(shape, base)
    except ValueError as e:
        raise UserError(f"--shape={'x'.join(map(str, shape))}: {e} (or change --base_shape)") from None
    try:
        pct = [float(p) for p in f.percentiles]
    except ValueError:
        raise UserError(f"--percentiles={','.join(f.percentiles)}: expected two numbers") from None
    if len(pct) != 2 or not 0 <= pct[0] < pct[1] <= 100:
        raise UserError(f"--percentiles={','.join(f.percentiles)}: expected low,high with 0 <= low < high <= 100")
    if not 0 < f.foreground_fraction < 1:
        raise UserError(f"--foreground_fraction={f.foreground_fraction}: must be between 0 and 1")
    if f.register_to and not os.path.isfile(f.register_to):
        raise UserError(f"--register_to={f.register_to}: no such file")
    return preprocess.default_options(
        shape=shape,
        spacing=spacing,
        base_shape=base,
        reorient=f.reorient,
        resample=f.resample,
        antialias=f.antialias,
        register_to=os.path.abspath(f.register_to) if f.register_to else None,
        center=f.center,
        normalize=f.normalize,
        percentiles=pct,
        foreground_fraction=f.foreground_fraction,
        storage_dtype=f.storage_dtype,
    )


def _require(f, *names):
    for name in names:
        if not getattr(f, name):
            raise UserError(f"--{name} is required")


def io_table(command, f, scans=None, output=None):
    """What `command` reads and writes: ({name: input path(s)}, {flag: (output path, kind)}). Every output is
    checked against every input (_check_output)."""
    from volumes.dataset_inputs import spec_paths

    if command == "create":
        inputs = {"input": spec_paths(f.input) + list(scans or []), "labels": f.labels, "register_to": f.register_to}
    elif command in ("extract", "split"):
        inputs = {"dataset": f.dataset}
    else:
        inputs = {}
    outputs = {"output": (output or f.output, "folder")} if command != "info" else {}
    return inputs, outputs


def _check_output(f, inputs, outputs):
    """Refuse an output that would endanger data, before any work: the root, home or current folder, one that
    is, contains or lies inside an input, and an existing one without --overwrite (UserError) or, even with it,
    one holding anything this project did not record writing (OutputConflict from dnnlib.fileutil.check_output,
    like the library's)."""
    paths = [p for v in inputs.values() for p in (v if isinstance(v, list) else [v]) if p]
    for path, kind in outputs.values():
        try:
            check_output(path, paths, overwrite=f.overwrite, kind=kind)
        except FileExistsError:
            if os.path.isdir(path) and not os.path.islink(path) and not f.overwrite:
                raise UserError(f"{'--output=' if f.output else ''}{path} already exists; pass --overwrite to "
                                "replace it") from None
            raise


def defaults():
    """Every flag's default as an EasyDict (aliases included): tests (and scripts) fill it in and call run()."""
    values = table_defaults(OPTIONS)
    values.update({alias: values[name] for alias, name in ALIASES.items()})
    return values


def build_options(command, f=None):
    """Validate the flags of `command` (UserError names the flag) and resolve them into one options object."""
    f = FLAGS if f is None else f
    if command not in COMMANDS:
        raise UserError(f"give one command: {' | '.join(COMMANDS)} (got {command!r})")
    if f.workers is not None and f.workers < 1:
        raise UserError(f"--workers={f.workers}: must be at least 1")
    opts = EasyDict(command=command)
    if command == "create":
        _require(f, "input", "output")
        preprocess = preprocess_options(f)
        if f.max_voxels is not None and f.max_voxels < 1:
            raise UserError(f"--max_voxels={f.max_voxels}: must be at least 1")
        labels = None
        if f.labels:
            if not os.path.isfile(f.labels):
                raise UserError(f"--labels={f.labels}: no such file")
            labels = EasyDict(path=f.labels, filename_column=f.filename_column, categorical=list(f.categorical),
                              continuous=list(f.continuous), subject_column=f.subject_column,
                              missing_values=list(f.missing_values))
        from volumes.dataset_inputs import find_inputs

        try:
            scans, root = find_inputs(f.input)
        except (OSError, ValueError):
            scans, root = None, None  # reported when the command runs
        # The output must not be, contain or lie inside any scan, the folder/list/glob naming them, the labels
        # or the template.
        _check_output(f, *io_table(command, f, scans))
        opts.update(input=f.input, output=f.output, overwrite=f.overwrite, preprocess=preprocess, labels=labels,
                    workers=f.workers, strict=f.strict, num_shards=f.num_shards, progress=f.progress,
                    max_voxels=f.max_voxels, scans=scans, root=root)
    elif command == "info":
        _require(f, "dataset")
        if f.picture and not f.picture.lower().endswith(".png"):
            raise UserError(f"--picture={f.picture}: expected a .png file name")
        if f.picture and os.path.exists(f.picture) and not f.overwrite:
            raise UserError(f"--picture={f.picture}: already exists (--overwrite replaces it)")
        opts.update(dataset=f.dataset, full=f.full, verify=f.verify, picture=f.picture)
    elif command == "extract":
        _require(f, "dataset", "output")
        indices = parse_int_ranges(f.indices, "--indices") if f.indices else None
        _check_output(f, *io_table(command, f))
        opts.update(dataset=f.dataset, output=f.output, indices=indices, dtype=f.dtype, overwrite=f.overwrite)
    elif command == "split":
        _require(f, "dataset", "output")
        if not 0 < f.test_fraction < 1:
            raise UserError(f"--test_fraction={f.test_fraction}: must be between 0 and 1")
        _check_output(f, *io_table(command, f))
        opts.update(dataset=f.dataset, output=f.output, test_fraction=f.test_fraction, seed=f.seed,
                    overwrite=f.overwrite)
    elif command == "demo":
        from volumes.demo_data import data_root

        if f.num_volumes is not None and f.num_volumes < 1:
            raise UserError(f"--num_volumes={f.num_volumes}: must be at least 1")
        output = f.output or os.path.join(data_root(), f"demo-{f.res}")
        _check_output(f, *io_table(command, f, output=output))
        opts.update(output=output, res=f.res, num_volumes=f.num_volumes, seed=f.seed, storage_dtype=f.storage_dtype,
                    workers=f.workers, overwrite=f.overwrite, progress=f.progress)
    return opts


def run(command, f=None):
    """Run one command with the parsed flags, or any object with the same attributes (see defaults())."""
    return dataset_commands.run(build_options(command, f))


def main(argv):
    args = argv[1:]
    if len(args) != 1 or args[0] not in COMMANDS:
        raise UserError(f"give one command: {' | '.join(COMMANDS)} (got {' '.join(args) or 'none'})")
    # run_main turns SIGTERM (a scheduler's time limit) into an unwinding interrupt: the pool stops and the
    # temporary output is removed.
    sys.exit(run(args[0]))


if __name__ == "__main__":
    define_flags()
    cli_main(main)
