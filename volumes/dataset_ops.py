"""Looking at, verifying, exporting and dividing a dataset (dataset_tool.py info, extract and split)."""

import os

import numpy as np

from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_output_dir, share_permissions
from volumes import records
from volumes.manifest import load_manifest, volume_affine, write_manifest
from volumes.records import iterate_records
from volumes.volume_io import file_stem, write_nifti


def summary_lines(m):
    lines = [
        f"format       {m.format}{'   SYNTHETIC' if m.get('synthetic') else ''}",
        f"volumes      {m.get('num_volumes')} in {len(m.shards)} shard(s) ({m.get('compression')})",
        f"shape        {'x'.join(map(str, m.shape))}  spacing {m.spacing} mm  orientation {m.orientation}",
        f"mirror_axis  {m.mirror_axis}",
        f"storage      {m.storage_dtype}",
        f"affine       {np.asarray(m.affine).round(3).tolist()}",
        f"normalise    {m.get('normalisation')}",
        f"labels       {'none' if not m.get('labels') else m.labels.c_dim}"
        + ("" if not m.get("labels") else f" dims: {[c['name'] for c in m.labels.columns]}"),
        f"skipped      {len(m.get('skipped') or [])}",
    ]
    lines += [f"  - {s['reason']}" for s in (m.get("skipped") or [])]
    lines += covariate_lines(m)
    return lines


def covariate_lines(m):
    """One line per covariate listed in the manifest (files[].covariates): range and mean, or counts per value."""
    schema = m.get("covariates") or {}
    if not schema:
        return []
    lines = ["covariates   " + (m.get("covariate_rule") or "")]
    files = m.get("files") or []
    for name, spec in schema.items():
        values = [f["covariates"][name] for f in files if name in (f.get("covariates") or {})]
        if not values:
            lines.append(f"  {name}: no values")
        elif spec.get("kind") == "categorical":
            counts = {v: values.count(v) for v in sorted(set(values))}
            lines.append(f"  {name}: " + ", ".join(f"{k}: {n}" for k, n in counts.items()))
        else:
            v = np.array([_number(x) for x in values])
            if not np.all(np.isfinite(v)):
                bad = next(x for x, y in zip(values, v, strict=True) if not np.isfinite(y))
                lines.append(f"  {name}: {int(np.sum(~np.isfinite(v)))} of {len(v)} values are not finite "
                             f"numbers (e.g. {bad!r})")
                continue
            unit = f" {spec['unit']}" if spec.get("unit") else ""
            lines.append(f"  {name}: {v.min():.4g} to {v.max():.4g}{unit}, mean {v.mean():.4g} ({len(v)} volumes)")
    return lines


def _number(x):
    """float(x), NaN for what is not a number (text, booleans, lists)."""
    if isinstance(x, bool) or not isinstance(x, int | float | str):
        return float("nan")
    try:
        return float(x)
    except ValueError:
        return float("nan")


def verify_dataset(dataset_dir):
    """Read every record and check count, indices, shapes, label size and checksums against the manifest.

    Returns (manifest, problems) where problems is a list of one-line strings (empty when all is well).
    """
    m = load_manifest(dataset_dir)
    problems = []
    by_index = {int(f["index"]): f for f in (m.get("files") or [])}
    c_dim = int(m.labels.c_dim) if m.get("labels") else 0
    shape = tuple(int(s) for s in m.shape)
    seen = set()
    count = 0
    for rec in iterate_records(dataset_dir, m):
        count += 1
        where = f"{m.shards[rec.shard]} record index {rec.index}"
        if rec.index in seen:
            problems.append(f"{where}: duplicate index")
        seen.add(rec.index)
        if rec.shape != shape or rec.stored.size != int(np.prod(shape)):
            problems.append(f"{where}: shape {rec.shape} ({rec.stored.size} voxels), manifest says {shape}")
        digest = records.sha256_bytes(rec.raw)
        if rec.sha256 is not None and digest != rec.sha256:
            problems.append(f"{where}: checksum mismatch (data corrupt)")
        f = by_index.get(rec.index)
        if f is None:
            problems.append(f"{where}: not listed in the manifest")
        else:
            if f.get("stored_sha256") and f["stored_sha256"] != digest:
                problems.append(f"{where}: checksum differs from the manifest's for {f['path']}")
            if "shard" in f and int(f["shard"]) != rec.shard:
                problems.append(f"{where}: manifest puts it in shard {f['shard']}")
        if rec.label.size != c_dim:
            problems.append(f"{where}: label has {rec.label.size} values, manifest c_dim is {c_dim}")
        if not np.all(np.isfinite(rec.label)):
            # A NaN/Inf label trains to a NaN loss at the first step.
            problems.append(f"{where}: label holds non-finite values {rec.label.tolist()}")
    for col in (m.labels.columns if m.get("labels") else []):
        stats = [col.get(k) for k in ("mean", "std") if col.get(k) is not None]
        if not all(np.isfinite(float(v)) for v in stats):
            problems.append(f"labels column {col.get('name')!r}: non-finite statistics {stats}")
    if count != int(m.get("num_volumes", count)):
        problems.append(f"{count} records, manifest says num_volumes={m.num_volumes}")
    missing = set(by_index) - seen
    if missing:
        problems.append(f"{len(missing)} manifest entries have no record (e.g. index {min(missing)})")
    return m, problems


def extract_dataset(dataset_dir, out_dir, indices=None, dtype="float32", overwrite=False):
    """Write records back as NIfTI ([0, 1] intensities) at their own world grid, with their montage
    (dataset_pictures.MONTAGE_NAME) beside them. Returns the written volumes' paths."""
    m = load_manifest(dataset_dir)
    by_index = {int(f["index"]): f for f in (m.get("files") or [])}
    wanted = None if indices is None else set(int(i) for i in indices)
    n = int(m.get("num_volumes", 0))
    outside = sorted(i for i in (wanted or ()) if i < 0 or i >= n)
    if outside:
        raise InputError(f"record indices {outside} are out of range: {dataset_dir} has records 0..{n - 1}")
    written = []
    from volumes import dataset_pictures, visualize

    pool = sorted(wanted) if wanted is not None else list(range(n))
    drawn_ids = {pool[k] for k in visualize.sample_indices(len(pool), dataset_pictures.MAX_ROWS)}
    drawn = {}
    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=(dataset_dir,)) as tmp:
        for rec in iterate_records(dataset_dir, m):
            if wanted is not None and rec.index not in wanted:
                continue
            vol = records.decode_volume(rec.stored, m.storage_dtype).reshape(rec.shape)
            if rec.index in drawn_ids:
                drawn[rec.index] = vol
            src = by_index.get(rec.index, {}).get("path", "volume")
            name = f"{rec.index:05d}-{file_stem(src).replace(':', '-')}.nii.gz"
            write_nifti(os.path.join(tmp, name), vol, volume_affine(m, rec.index), dtype=dtype)
            written.append(os.path.join(out_dir, name))
        if drawn:
            picture = dataset_pictures.montage(os.path.join(tmp, dataset_pictures.MONTAGE_NAME), m,
                                               [drawn[i] for i in sorted(drawn)], sorted(drawn),
                                               title=os.path.basename(os.path.normpath(dataset_dir)))
            if picture.note:
                print(f"no picture: {picture.note}")
        share_permissions(tmp)
    return sorted(written)


def split_dataset(dataset_dir, out_dir, test_fraction=0.1, seed=0, overwrite=False):
    """Deterministic train/test split into out_dir/train and out_dir/test (each a full dataset).

    Volumes of one subject (manifest files[].subject, from the labels' subject column) stay together;
    without subjects every volume is its own subject. Returns {"train": [...indices], "test": [...]}.
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise InputError(f"test fraction {test_fraction} must be between 0 and 1")
    m = load_manifest(dataset_dir)
    files = sorted(m.get("files") or [], key=lambda f: int(f["index"]))
    if len(files) < 2:
        raise InputError(f"{dataset_dir}: {len(files)} volume(s) cannot be split")
    subject_of = {int(f["index"]): str(f.get("subject", f"#{f['index']}")) for f in files}
    subjects = sorted(set(subject_of.values()))
    if len(subjects) < 2:
        raise InputError(f"{dataset_dir}: all volumes belong to one subject; nothing to split")
    order = np.random.default_rng(seed).permutation(len(subjects))
    n_test = min(max(1, int(round(test_fraction * len(subjects)))), len(subjects) - 1)
    test_subjects = {subjects[i] for i in order[:n_test]}
    parts = {
        "train": [i for i in sorted(subject_of) if subject_of[i] not in test_subjects],
        "test": [i for i in sorted(subject_of) if subject_of[i] in test_subjects],
    }
    by_index = {int(f["index"]): f for f in files}
    with atomic_output_dir(out_dir, overwrite=overwrite, inputs=(dataset_dir,)) as tmp:
        writers, new_files = {}, {}
        for part, idx in parts.items():
            os.makedirs(os.path.join(tmp, part))
            n_shards = records.choose_num_shards(len(idx), m.shape, m.storage_dtype)
            writers[part] = records.ShardedWriter(os.path.join(tmp, part), n_shards)
            new_files[part] = []
        part_of = {i: p for p, idx in parts.items() for i in idx}
        for rec in iterate_records(dataset_dir, m):
            part = part_of[rec.index]
            new_index = len(new_files[part])
            label = rec.label if rec.label.size else None
            shard = writers[part].write(
                records.serialize_example(rec.stored.reshape(rec.shape), new_index, label)
            )
            entry = dict(by_index[rec.index])
            entry.update(index=new_index, shard=shard, source_index=rec.index)
            new_files[part].append(entry)
        for part in parts:
            shards = writers[part].close()
            for f in new_files[part]:
                f["shard"] = writers[part].shard_map[f["shard"]]
            sub = dict(m)
            sub.update(
                shards=shards,
                files=sorted(new_files[part], key=lambda f: f["index"]),
                num_volumes=len(new_files[part]),
                split={
                    "part": part,
                    "source": os.path.abspath(str(dataset_dir)),
                    "test_fraction": float(test_fraction),
                    "seed": int(seed),
                    "by": "subject" if any("subject" in f for f in files) else "volume",
                },
            )
            write_manifest(os.path.join(tmp, part), sub)
        share_permissions(tmp)
    return parts
