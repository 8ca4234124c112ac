"""`dataset_tool.py create`: scans -> preprocessed volumes -> TFRecord shards + dataset.json, atomically.

Scans are preprocessed in worker processes (volumes/preprocess.py, no TensorFlow there); the parent
writes records in input order, so the same inputs and options always give the same dataset.
Bad inputs are skipped with a one-line reason (or stop everything with strict=True).
"""

import contextlib
import os
import sys
import time

import numpy as np

from dnnlib.easydict import EasyDict
from dnnlib.errors import UserError
from dnnlib.fileutil import atomic_output_dir, share_permissions
from volumes import preprocess, records, work_pool
from volumes.manifest import make_manifest, write_manifest

# Worker state: options and the registration template, loaded once per process.
_W = EasyDict()


def _init(opts):
    _W.opts = opts
    _W.template = preprocess.Template(opts.register_to) if opts.register_to else None


def _work(path):
    """One scan -> ("ok", stored, affine, transform, source sha256) or ("skip", reason)."""
    try:
        vol01, affine, transform = preprocess.preprocess_file(path, _W.opts, _W.template)
        stored = records.encode_volume(vol01, _W.opts.storage_dtype)
        return ("ok", stored, affine, transform, records.sha256_file(path))
    except UserError as e:
        return ("skip", str(e))
    except Exception as e:  # noqa: BLE001 - one broken scan must not sink a 10,000-scan job
        return (
            "skip",
            f"{path}: failed ({type(e).__name__}: {str(e).strip().splitlines()[-1][:200] if str(e).strip() else ''})",
        )


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
):
    """Build a dataset. inputs: list of paths; labels: LabelTable or None. Returns the manifest dict."""
    log = log or (lambda msg: print(msg, file=sys.stderr))
    opts = EasyDict(opts)
    preprocess.check_shape(opts.shape, opts.base_shape)
    if opts.register_to and not os.path.exists(opts.register_to):
        raise UserError(f"--register_to={opts.register_to}: no such file")
    if root is None:
        root = os.path.commonpath([os.path.dirname(os.path.abspath(p)) for p in inputs]) if inputs else "."
    if os.path.exists(out_dir) and not overwrite:
        raise UserError(f"{out_dir} already exists; pass --overwrite to replace it")
    t0 = time.time()
    skipped, jobs, job_labels = [], [], []

    def skip(path, reason):
        if strict:
            raise UserError(reason + " (--strict stops at the first bad input)")
        skipped.append({"path": os.path.abspath(path), "reason": reason})
        log(f"skip: {reason}")

    for p in inputs:
        label = subject = None
        if labels is not None:
            try:
                label, subject = labels.lookup(p, root)
            except UserError as e:
                skip(p, str(e))
                continue
        jobs.append(p)
        job_labels.append((label, subject))

    files, affines = [], []
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp, contextlib.ExitStack() as stack:
        n_shards = num_shards or records.choose_num_shards(max(len(jobs), 1), opts.shape, opts.storage_dtype)
        writer = records.ShardedWriter(tmp, n_shards)
        progress = work_pool.Progress(len(jobs), label="create ", enabled=verbose)
        results = stack.enter_context(contextlib.closing(work_pool.imap_ordered(_work, jobs, workers, _init, (opts,))))
        for path, (label, subject), res in zip(jobs, job_labels, results, strict=True):
            progress.update()
            if res[0] == "skip":
                skip(path, res[1])
                continue
            _, stored, affine, transform, src_sha = res
            if affines and not np.allclose(affine[:3, :3], affines[0][:3, :3], atol=1e-5):
                # Only when --noreorient/--noresample: every volume must share axes and spacing.
                skip(
                    path,
                    f"{path}: voxel axes/spacing {np.round(affine[:3, :3], 4).tolist()} differ from the first volume's",
                )
                continue
            index = len(files)
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
        if not files:
            raise UserError(f"no usable volumes: all {len(inputs)} inputs were skipped ({len(skipped)} reasons above)")
        shards = writer.close()
        for f in files:
            f["shard"] = writer.shard_map[f["shard"]]
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
        share_permissions(tmp)
    if verbose:
        log(
            f"wrote {len(files)} volumes ({len(shards)} shards) to {out_dir}; skipped {len(skipped)} of {len(inputs)}"
            f" in {time.time() - t0:.1f}s"
        )
    return manifest
