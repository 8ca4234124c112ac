"""Creating a dataset (dataset_tool.py create): scans -> preprocessed volumes -> TFRecord shards + dataset.json.

Scans are preprocessed in worker processes (volumes/preprocess.py, no TensorFlow there); the parent
writes records in input order, so the same inputs and options always give the same dataset.
Bad inputs are skipped with a one-line reason (or stop everything with strict=True). The output folder
appears atomically, complete or not at all.
"""

import contextlib
import os
import sys
import time

import numpy as np

from dnnlib.digest import sha256_path
from dnnlib.easydict import EasyDict
from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_output_dir, share_permissions
from volumes import preprocess, records, work_pool
from volumes.manifest import make_manifest, write_manifest
from volumes.volume_io import DEFAULT_MAX_VOXELS, error_summary

# Peak memory of one worker per input voxel: the data as stored, its float32 copy, and the float32/float64
# intermediates of reorientation, anti-aliasing and resampling. Used with the voxel limit to bound the workers.
BYTES_PER_VOXEL = 16

# A scan whose data fills less than this fraction of the output grid is reported: the rest of the volume is
# background, so a partial field of view (a slab, a small patch) would train as a patch in an empty head.
MIN_COVERAGE = 0.5

# Worker state: options and the registration template, loaded once per process.
_W = EasyDict()


def _init(opts, max_voxels=None):
    _W.opts = opts
    _W.max_voxels = max_voxels
    _W.template = preprocess.Template(opts.register_to) if opts.register_to else None


def _work(path):
    """One scan -> ("ok", stored, affine, transform, source sha256) or ("skip", reason)."""
    try:
        vol01, affine, transform = preprocess.preprocess_file(path, _W.opts, _W.template, _W.max_voxels)
        stored = records.encode_volume(vol01, _W.opts.storage_dtype)
        return ("ok", stored, affine, transform, sha256_path(path))
    except Exception as e:  # noqa: BLE001 - one broken scan must not sink a 10,000-scan job
        return ("skip", skip_reason(path, e))


def skip_reason(path, e):
    """One line saying why a scan was skipped: our own input errors already start with the file's name."""
    if isinstance(e, ValueError | OSError) and str(e).startswith(str(path)):
        return str(e)
    return f"{path}: failed ({error_summary(e)})"


def _normalisation_doc(opts):
    if not opts.normalize:
        return {"method": "clip01", "range": [0, 1]}
    return {
        "method": "foreground_percentile_clip",
        "percentiles": list(opts.percentiles),
        "foreground": f"voxels > min + {opts.foreground_fraction} * (p99.5 - min), per volume after resampling",
        "range": [0, 1],
    }


def create_dataset(
    inputs,
    out_dir,
    opts,
    root=None,
    labels=None,
    workers=None,
    strict=False,
    overwrite=False,
    num_shards=0,
    verbose=True,
    log=None,
    max_voxels=DEFAULT_MAX_VOXELS,
    protected=(),
):
    """Build a dataset. inputs: list of paths; labels: LabelTable or None. Returns the manifest dict.

    FileExistsError if out_dir exists and not overwrite; ValueError if no input is usable (or, with strict,
    for the first bad one), or if out_dir is, contains or lies inside an input: any of `inputs`, the label
    table, the registration template, or the paths in `protected` (e.g. the folder or list file the inputs
    came from). Scans whose header declares more than max_voxels voxels (None: no limit) are skipped unread;
    the number of workers is bounded by the memory such scans could need.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    opts = EasyDict(opts)
    preprocess.check_shape(opts.shape, opts.base_shape)
    if opts.register_to and not os.path.exists(opts.register_to):
        # Checked here: a template missing in the workers' initializer would make the pool restart them forever.
        raise FileNotFoundError(f"{opts.register_to}: registration template not found")
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in inputs]) if inputs else "."
    guarded = list(inputs) + list(protected) + ([labels.path] if labels is not None else [])
    guarded += [opts.register_to] if opts.register_to else []
    t0 = time.time()
    skipped, jobs, job_rows = [], [], []

    def skip(path, reason):
        if strict:
            raise InputError(reason + " (strict mode stops at the first bad input)")
        skipped.append({"path": os.path.abspath(path), "reason": reason})
        log(f"skip: {reason}")

    for p in inputs:
        row = None
        if labels is not None:
            try:
                row = labels.find_row(p, root)
                labels.check_row(row, p)
            except ValueError as e:
                skip(p, str(e))
                continue
        jobs.append(p)
        job_rows.append(row)
    if labels is not None:
        # Categories and statistics of the scans' own rows: rows without a scan must not shift them.
        labels.fit(job_rows)
        unmatched = labels.unmatched(job_rows)
        if unmatched:
            shown = ", ".join(map(repr, unmatched[:5])) + (", ..." if len(unmatched) > 5 else "")
            log(f"labels: {len(unmatched)} of {len(labels.rows)} rows of {labels.path} match no scan and are "
                f"not used ({shown})")

    if max_voxels is not None and len(jobs) > 1:
        limit = work_pool.memory_bounded_workers(workers, BYTES_PER_VOXEL * int(max_voxels))
        if limit < (work_pool.default_workers() if workers is None else workers):
            log(f"create: {limit} worker(s), as many as the available memory holds for scans of up to "
                f"{int(max_voxels)} voxels")
        workers = limit

    files, affines, file_rows = [], [], []
    # The montage shows an even sample of the inputs; only those volumes are kept in memory.
    from volumes import dataset_pictures, visualize

    drawn_jobs = set(visualize.sample_indices(len(jobs), dataset_pictures.MAX_ROWS))
    drawn, partial = {}, []
    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=guarded) as tmp, contextlib.ExitStack() as stack:
        n_shards = num_shards or records.choose_num_shards(max(len(jobs), 1), opts.shape, opts.storage_dtype)
        writer = stack.enter_context(records.ShardedWriter(tmp, n_shards))
        progress = work_pool.Progress(len(jobs), label="create ", enabled=verbose)
        results = stack.enter_context(
            contextlib.closing(work_pool.imap_ordered(_work, jobs, workers, _init, (opts, max_voxels)))
        )
        for position, (path, row, res) in enumerate(zip(jobs, job_rows, results, strict=True)):
            progress.update()
            if res[0] == "skip":
                skip(path, res[1])
                continue
            label = labels.encode(row, path) if labels is not None else None
            subject = labels.subject(row) if labels is not None else None
            _, stored, affine, transform, src_sha = res
            if affines and not np.allclose(affine[:3, :3], affines[0][:3, :3], atol=1e-5):
                # Only without reorientation or resampling: every volume must share axes and spacing.
                skip(
                    path,
                    f"{path}: voxel axes/spacing {np.round(affine[:3, :3], 4).tolist()} differ from the first volume's",
                )
                continue
            index = len(files)
            coverage = transform.get("coverage")
            if coverage is not None and coverage < MIN_COVERAGE:
                partial.append(path)
                log(f"warning: {path}: the scan covers {coverage:.0%} of the output grid "
                    f"({'x'.join(map(str, opts.shape))} at {'x'.join(f'{s:g}' for s in opts.spacing)} mm); "
                    "the rest is background: a partial field of view becomes a small patch in an empty volume")
            if position in drawn_jobs or not drawn:
                drawn[index] = records.decode_volume(stored, opts.storage_dtype).reshape(tuple(opts.shape))
            shard = writer.write(records.serialize_example(stored, index, label))
            entry = {
                "path": os.path.abspath(path),
                "sha256": src_sha,
                "stored_sha256": records.sha256_bytes(stored.tobytes()),
                "index": index,
                "shard": shard,
                "affine": affine.tolist(),
                "transform": transform,
            }
            if label is not None:
                entry["label"] = [float(v) for v in label]
            if subject is not None:
                entry["subject"] = subject
            files.append(entry)
            affines.append(affine)
            file_rows.append(row)
        if not files:
            raise InputError(f"no usable volumes: all {len(inputs)} inputs were skipped ({len(skipped)} reasons above)")
        shards = writer.close()
        for f in files:
            f["shard"] = writer.shard_map[f["shard"]]
        if labels is not None and len(file_rows) < len(job_rows):
            # Some labelled scans failed to convert: their rows must not count either.
            before = labels.columns
            if labels.fit(file_rows) != before:
                new = [labels.encode(r, f["path"]) for r, f in zip(file_rows, files, strict=True)]
                _relabel(tmp, shards, files, new, opts.storage_dtype)
        # One affine for generated volumes: the template grid when registered (all identical), otherwise
        # the mean of the per-volume grids (they differ only by where the foreground sat).
        shared = np.mean(np.stack(affines), axis=0)
        manifest = make_manifest(
            opts.shape,
            opts.spacing if opts.resample else np.linalg.norm(affines[0][:3, :3], axis=0),
            shared,
            opts.storage_dtype,
            shards,
            files,
            skipped=skipped,
            normalisation=_normalisation_doc(opts),
            labels=labels.schema() if labels is not None else None,
            synthetic=False,
            affine_note="files[].affine is each volume's exact grid; 'affine' is the shared grid for generated volumes",
            base_shape=list(opts.base_shape),
            preprocessing=dict(opts),
            num_inputs=len(inputs),
            build_seconds=round(time.time() - t0, 2),
        )
        write_manifest(tmp, manifest)
        picture = dataset_pictures.montage(os.path.join(tmp, dataset_pictures.MONTAGE_NAME), manifest,
                                           [drawn[i] for i in sorted(drawn)], sorted(drawn),
                                           title=os.path.basename(os.path.normpath(out_dir)))
        share_permissions(tmp)
    if verbose:
        log(
            f"wrote {len(files)} volumes ({len(shards)} shards) to {out_dir}; skipped {len(skipped)} of {len(inputs)}"
            f" in {time.time() - t0:.1f}s"
        )
    if partial:
        log(f"warning: {len(partial)} scan(s) cover less than {MIN_COVERAGE:.0%} of the output grid (listed above)")
    log(f"picture: {os.path.join(out_dir, dataset_pictures.MONTAGE_NAME)}" if picture.png
        else f"no picture: {picture.note}")
    return manifest


def _relabel(out_dir, shards, files, new_labels, storage_dtype):
    """Rewrite the finished shards in out_dir with new label vectors (same records, order and shards)."""
    import tensorflow as tf

    by_index = dict(zip((f["index"] for f in files), new_labels, strict=True))

    def relabelled(path):
        for rec in tf.data.TFRecordDataset(path, compression_type="GZIP").as_numpy_iterator():
            ex = records.parse_example_numpy(rec, storage_dtype)
            yield records.serialize_example(ex.stored.reshape(ex.shape), ex.index, by_index[ex.index])

    for name in shards:
        path = os.path.join(out_dir, name)
        records.rewrite_shard(path, relabelled(path))
    for f, label in zip(files, new_labels, strict=True):
        f["label"] = [float(v) for v in label]
