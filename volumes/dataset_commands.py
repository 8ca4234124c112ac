"""The commands of dataset_tool.py: one options object in, the work done and its one-line summary printed.

run(opts) takes the EasyDict that dataset_tool.py builds from its flags (opts.command plus that command's
resolved options) and calls create_dataset / verify_dataset / extract_dataset / split_dataset /
build_demo_dataset. Importing this module loads nothing heavy (each command imports what it needs), so the
front end can check its command name against COMMANDS quickly.
"""

import os

from dnnlib.errors import InputError


def create(opts):
    from dnnlib.fileutil import check_output_dir
    from volumes.dataset_create import create_dataset
    from volumes.dataset_inputs import find_inputs, spec_paths
    from volumes.dataset_labels import LabelTable
    from volumes.volume_io import DEFAULT_MAX_VOXELS

    # dataset_tool.py resolves the input once to check the output against every scan; reuse that list.
    inputs, root = (opts.scans, opts.root) if opts.get("scans") else find_inputs(opts.input)
    protected = spec_paths(opts.input)
    # Every resolved scan is checked before labels are read or any work starts; create_dataset checks again.
    check_output_dir(opts.output, list(inputs) + protected, overwrite=opts.overwrite)
    labels = None
    if opts.labels:
        lb = opts.labels
        labels = LabelTable(lb.path, lb.filename_column, lb.categorical, lb.continuous, lb.subject_column,
                            missing_values=lb.get("missing_values") or ())
    m = create_dataset(
        inputs,
        opts.output,
        opts.preprocess,
        root=root,
        labels=labels,
        workers=opts.workers,
        strict=opts.strict,
        overwrite=opts.overwrite,
        num_shards=opts.num_shards,
        verbose=opts.progress,
        max_voxels=opts.get("max_voxels", DEFAULT_MAX_VOXELS),
        protected=protected,
    )
    print(f"{opts.output}: {m['num_volumes']} volumes, {len(m['skipped'])} skipped")


def info(opts):
    from volumes.dataset_ops import summary_lines, verify_dataset
    from volumes.manifest import load_manifest

    m = load_manifest(opts.dataset)
    print(m.to_json() if opts.full else "\n".join(summary_lines(m)))
    if opts.verify:
        _, problems = verify_dataset(opts.dataset)
        for p in problems:
            print(f"problem: {p}")
        if problems:
            raise InputError(f"{opts.dataset}: {len(problems)} problem(s) found in the records")
        print(f"verified {m.num_volumes} records: counts, shapes, checksums ok")
    if opts.get("picture"):
        from volumes.dataset_pictures import dataset_montage

        result = dataset_montage(opts.picture, opts.dataset, m)
        print(f"picture: {opts.picture}" if result.png else f"no picture: {result.note}")


def extract(opts):
    from volumes.dataset_ops import extract_dataset
    from volumes.dataset_pictures import MONTAGE_NAME

    paths = extract_dataset(opts.dataset, opts.output, opts.indices, opts.dtype, opts.overwrite)
    print(f"wrote {len(paths)} NIfTI volumes to {opts.output}; picture: {os.path.join(opts.output, MONTAGE_NAME)}")


def split(opts):
    from volumes.dataset_ops import split_dataset

    parts = split_dataset(opts.dataset, opts.output, opts.test_fraction, opts.seed, opts.overwrite)
    print(f"{opts.output}/train: {len(parts['train'])} volumes, {opts.output}/test: {len(parts['test'])} volumes")


def demo(opts):
    from volumes.demo_data import build_demo_dataset

    m = build_demo_dataset(
        opts.output,
        res=opts.res,
        num_volumes=opts.num_volumes,
        seed=opts.seed,
        storage_dtype=opts.storage_dtype,
        workers=opts.workers,
        overwrite=opts.overwrite,
        verbose=opts.progress,
    )
    shape = "x".join(map(str, m["shape"]))
    print(f"{opts.output}: {m['num_volumes']} SYNTHETIC volumes {shape} at {m['spacing'][0]} mm")


_RUNNERS = {"create": create, "info": info, "extract": extract, "split": split, "demo": demo}
COMMANDS = tuple(_RUNNERS)


def run(opts):
    """Run opts.command with its options; returns the exit status (0). Raises ValueError/OSError for bad input."""
    if opts.command not in _RUNNERS:
        raise InputError(f"unknown command {opts.command!r}: expected one of {', '.join(COMMANDS)}")
    _RUNNERS[opts.command](opts)
    return 0
