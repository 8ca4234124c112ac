"""Make and inspect 3D-StyleGAN datasets (TFRecord shards + dataset.json).

  python dataset_tool.py create  --input=scans/ --output=datasets/mydata [--spacing=2 --shape=80x96x112]
                                 [--register_to=template.nii.gz] [--labels=labels.csv] [--strict]
  python dataset_tool.py info    --dataset=datasets/mydata          # print the manifest, verify every record
  python dataset_tool.py extract --dataset=datasets/mydata --output=out/nifti [--indices=0-9]
  python dataset_tool.py split   --dataset=datasets/mydata --output=datasets/mydata-split [--test_fraction=0.1]
  python dataset_tool.py demo    [--res=demo|2mm] [--num_volumes=200] [--output=datasets/demo-demo]

--input is a folder (searched recursively; DICOM series folders count as one scan), a glob pattern
("scans/**/*.nii.gz", quote it) or a list file (.txt, one path per line). Formats: NIfTI, MGH/MGZ,
MHA/MHD, NRRD, DICOM. --source/--dest (and --outdir) are aliases of --input/--output.
The logic lives in the volumes/ package.
"""

import os
import sys

from absl import app, flags

from dnnlib.cli import parse_int_ranges, run_main
from dnnlib.errors import UserError

COMMANDS = ("create", "info", "extract", "split", "demo")

FLAGS = flags.FLAGS


def define_flags(fv=FLAGS):
    """Register the flags (only when run as a program, so importing this module defines no global flags)."""

    def define(kind, name, default, help_text, **kw):
        getattr(flags, f"DEFINE_{kind}")(name, default, help=help_text, flag_values=fv, **kw)

    define("string", "input", None, "create: folder, glob pattern or list file of scans.")
    define("string", "output", None, "create/extract/split/demo: output folder (not overwritten without --overwrite).")
    define("string", "dataset", None, "info/extract/split: dataset folder.")
    define("bool", "overwrite", False, "Replace an existing --output.")
    define("string", "spacing", "2", "create: output voxel size in mm, one value or x,y,z.")
    define("string", "shape", None, "create: output shape DxHxW; default keeps a 160x192x224 mm field of view "
           "(80x96x112 at 2 mm, 160x192x224 at 1 mm). Must be --base_shape x 2^k.")
    define("string", "base_shape", "5x6x7", "Base (constant) shape of the generator; valid shapes are base x 2^k.")
    define("bool", "reorient", True, "create: reorient to RAS (exact axis permutation/flip, RAS output grid).")
    define("bool", "resample", True, "create: resample to --spacing (else keep the scans' spacing; all must agree).")
    define("bool", "antialias", True, "create: Gaussian pre-filter when the output spacing is coarser.")
    define("string", "register_to", None, "create: affine-register every scan to this template volume (SimpleITK).")
    define("enum", "center", "foreground", "create: centre of the crop/pad.", enum_values=["foreground", "image"])
    define("bool", "normalize", True, "create: clip to foreground percentiles, map to [0, 1] (else clip to [0, 1]).")
    define("list", "percentiles", ["0.5", "99.5"], "create: low,high foreground percentiles of the intensity clip.")
    define("float", "foreground_fraction", 0.1, "create: foreground = voxels above min + f * (p99.5 - min).")
    define("enum", "storage_dtype", "uint16", "create/demo: stored voxel type.",
           enum_values=["uint16", "uint8", "float16"])
    define("string", "labels", None, "create: CSV with a filename column plus categorical/continuous columns.")
    define("string", "filename_column", None, "create: CSV column of file names (default: filename/file/path/...).")
    define("list", "categorical", [], "create: categorical label columns (one-hot).")
    define("list", "continuous", [], "create: continuous label columns (z-scored). Neither given: numeric "
           "columns are continuous, the others categorical.")
    define("string", "subject_column", None, "create: subject id column, kept for split (default subject/...).")
    define("integer", "workers", None, "create/demo: worker processes (default: all cores).")
    define("integer", "num_shards", 0, "create: number of TFRecord shards (0: ~256 MB each).")
    define("bool", "strict", False, "create: stop at the first bad input instead of skipping it.")
    define("bool", "verify", True, "info: read and check every record.")
    define("bool", "full", False, "info: print the whole manifest as JSON (with every file entry).")
    define("string", "indices", None, "extract: records to write, e.g. 0-9,20 (default: all).")
    define("enum", "dtype", "float32", "extract: NIfTI voxel type.", enum_values=["float32", "uint16", "uint8"])
    define("float", "test_fraction", 0.1, "split: fraction of subjects in the test part.")
    define("integer", "seed", 0, "split/demo: random seed.")
    define("enum", "res", "demo", "demo: 'demo' = 40x48x56 at 4 mm, '2mm' = 80x96x112 at 2 mm.",
           enum_values=["demo", "2mm"])
    define("integer", "num_volumes", None, "demo: number of volumes (default 200).")
    define("bool", "progress", True, "Show a progress bar.")
    # Names used by StyleGAN2-ADA's dataset_tool and by our other front ends.
    flags.DEFINE_alias("source", "input", flag_values=fv)
    flags.DEFINE_alias("dest", "output", flag_values=fv)
    flags.DEFINE_alias("outdir", "output", flag_values=fv)


def parse_triple(text, flag, kind=float):
    parts = str(text).replace("x", ",").split(",")
    try:
        vals = [kind(p) for p in parts if p.strip()]
    except ValueError:
        raise UserError(f"--{flag}={text!r}: expected one number or three like 2,2,2 / 80x96x112") from None
    if len(vals) == 1:
        vals = vals * 3
    if len(vals) != 3 or any(v <= 0 for v in vals):
        raise UserError(f"--{flag}={text!r}: expected one positive number or three")
    return vals


def preprocess_options(f=FLAGS):
    from volumes import preprocess

    spacing = parse_triple(f.spacing, "spacing")
    base = parse_triple(f.base_shape, "base_shape", int)
    shape = parse_triple(f.shape, "shape", int) if f.shape else list(preprocess.default_shape(spacing, base))
    preprocess.check_shape(shape, base)
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


def defaults():
    """Every flag's default as an EasyDict: tests (and scripts) fill it in and call run()."""
    from dnnlib.easydict import EasyDict

    saved = flags.FlagValues()
    define_flags(saved)
    return EasyDict({name: saved[name].default for name in saved})


def run(command, f=None):
    """Run one command with the parsed flags, or any object with the same attributes (see defaults())."""
    f = FLAGS if f is None else f
    if f.workers is not None and f.workers < 1:
        raise UserError(f"--workers={f.workers}: must be at least 1")
    if command == "create":
        from volumes.dataset_create import create_dataset
        from volumes.dataset_inputs import find_inputs
        from volumes.dataset_labels import LabelTable

        _require(f, "input", "output")
        opts = preprocess_options(f)
        if os.path.exists(f.output) and not f.overwrite:
            raise UserError(f"--output={f.output} already exists; pass --overwrite to replace it")
        inputs, root = find_inputs(f.input)
        labels = None
        if f.labels:
            labels = LabelTable(f.labels, f.filename_column, f.categorical, f.continuous, f.subject_column)
        m = create_dataset(
            inputs,
            f.output,
            opts,
            root=root,
            labels=labels,
            workers=f.workers,
            strict=f.strict,
            overwrite=f.overwrite,
            num_shards=f.num_shards,
            verbose=f.progress,
        )
        print(f"{f.output}: {m['num_volumes']} volumes, {len(m['skipped'])} skipped")
        return 0
    if command == "info":
        from volumes.dataset_ops import summary_lines, verify_dataset
        from volumes.manifest import load_manifest

        _require(f, "dataset")
        m = load_manifest(f.dataset)
        print(m.to_json() if f.full else "\n".join(summary_lines(m)))
        if f.verify:
            _, problems = verify_dataset(f.dataset)
            for p in problems:
                print(f"problem: {p}")
            if problems:
                raise UserError(f"{f.dataset}: {len(problems)} problem(s) found in the records")
            print(f"verified {m.num_volumes} records: counts, shapes, checksums ok")
        return 0
    if command == "extract":
        from volumes.dataset_ops import extract_dataset

        _require(f, "dataset", "output")
        indices = parse_int_ranges(f.indices, "--indices") if f.indices else None
        paths = extract_dataset(f.dataset, f.output, indices, f.dtype, f.overwrite)
        print(f"wrote {len(paths)} NIfTI volumes to {f.output}")
        return 0
    if command == "split":
        from volumes.dataset_ops import split_dataset

        _require(f, "dataset", "output")
        parts = split_dataset(f.dataset, f.output, f.test_fraction, f.seed, f.overwrite)
        print(f"{f.output}/train: {len(parts['train'])} volumes, {f.output}/test: {len(parts['test'])} volumes")
        return 0
    if command == "demo":
        from volumes.demo_data import build_demo_dataset, data_root

        out = f.output or os.path.join(data_root(), f"demo-{f.res}")
        m = build_demo_dataset(
            out,
            res=f.res,
            num_volumes=f.num_volumes,
            seed=f.seed,
            storage_dtype=f.storage_dtype,
            workers=f.workers,
            overwrite=f.overwrite,
            verbose=f.progress,
        )
        print(f"{out}: {m['num_volumes']} SYNTHETIC volumes {'x'.join(map(str, m['shape']))} at {m['spacing'][0]} mm")
        return 0
    raise UserError(f"give one command: {' | '.join(COMMANDS)} (got {command!r})")


def main(argv):
    args = argv[1:]
    if len(args) != 1 or args[0] not in COMMANDS:
        raise UserError(f"give one command: {' | '.join(COMMANDS)} (got {' '.join(args) or 'none'})")
    sys.exit(run(args[0]))


if __name__ == "__main__":
    define_flags()
    app.run(run_main(main))
