"""The tf.data pipeline: shapes, range, decoding, labels, mirroring along the manifest's axis, sharding."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from volumes import dataset_reader as dataset
from volumes import records
from volumes.manifest import label_dim, load_manifest, make_manifest, write_manifest

SHAPE = (10, 12, 14)


def _write(tmp_path, n=6, num_shards=2, c_dim=0, storage_dtype="uint16", mirror_axis=None, name="ds"):
    """A dataset written straight from known volumes (no preprocessing), so values can be checked exactly."""
    rng = np.random.default_rng(0)
    vols = rng.random((n, *SHAPE)).astype(np.float32)
    labels = rng.standard_normal((n, c_dim)).astype(np.float32)
    out = tmp_path / name
    out.mkdir()
    w = records.ShardedWriter(str(out), num_shards)
    files = []
    for i in range(n):
        stored = records.encode_volume(vols[i], storage_dtype)
        s = w.write(records.serialize_example(stored, i, labels[i] if c_dim else None))
        files.append(
            {"path": f"v{i}", "index": i, "shard": s, "stored_sha256": records.sha256_bytes(stored.tobytes())}
        )
    shards = w.close()
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    lab = {"c_dim": c_dim, "columns": []} if c_dim else None
    m = make_manifest(SHAPE, [2, 2, 2], affine, storage_dtype, shards, files, labels=lab)
    if mirror_axis is not None:
        m["mirror_axis"] = mirror_axis
    write_manifest(str(out), m)
    return str(out), vols, labels


def _all(ds):
    xs, cs = zip(*[(x.numpy(), c.numpy()) for x, c in ds], strict=True)
    return np.concatenate(xs), np.concatenate(cs)


def test_shapes_range_and_values(tmp_path):
    path, vols, _ = _write(tmp_path, n=6, num_shards=2)
    x, c = _all(dataset.make_dataset(path, 4, shuffle=False, repeat=False))
    assert x.shape == (6, *SHAPE, 1) and x.dtype == np.float32
    assert c.shape == (6, 0)
    assert x.min() >= -1.0 and x.max() <= 1.0
    # Round-robin sharding + interleave returns records in index order; values are round(v*65535)/65535*2-1.
    expected = np.round(vols * 65535) / 65535 * 2 - 1
    np.testing.assert_allclose(x[..., 0], expected, atol=1e-6)


def test_repeat_gives_static_full_batches(tmp_path):
    path, _, _ = _write(tmp_path, n=5, num_shards=1)
    ds = dataset.make_dataset(path, 4, shuffle=True, repeat=True, seed=3)
    assert ds.element_spec[0].shape.as_list() == [4, *SHAPE, 1]
    batches = [x for x, _ in ds.take(4)]
    assert all(b.shape == (4, *SHAPE, 1) for b in batches)


def test_shuffle_is_a_permutation(tmp_path):
    path, vols, _ = _write(tmp_path, n=8, num_shards=3)
    x, _ = _all(dataset.make_dataset(path, 8, shuffle=True, repeat=False, seed=1))
    means = np.sort(((x[..., 0] + 1) / 2).mean(axis=(1, 2, 3)))
    np.testing.assert_allclose(means, np.sort(vols.mean(axis=(1, 2, 3))), atol=1e-4)


def test_labels(tmp_path):
    path, _, labels = _write(tmp_path, n=4, num_shards=1, c_dim=3)
    _, c = _all(dataset.make_dataset(path, 2, shuffle=False, repeat=False))
    np.testing.assert_allclose(c, labels, atol=1e-6)


@pytest.mark.parametrize("storage_dtype, atol", [("uint8", 1e-6), ("float16", 2e-3)])
def test_other_storage_dtypes(tmp_path, storage_dtype, atol):
    path, vols, _ = _write(tmp_path, n=2, num_shards=1, storage_dtype=storage_dtype)
    x, _ = _all(dataset.make_dataset(path, 2, shuffle=False, repeat=False))
    ref = np.round(vols * 255) / 255 if storage_dtype == "uint8" else vols
    np.testing.assert_allclose((x[..., 0] + 1) / 2, ref, atol=atol)


@pytest.mark.parametrize("mirror_axis", [0, 2])
def test_mirror_flips_only_along_the_manifest_axis(tmp_path, mirror_axis):
    path, vols, _ = _write(tmp_path, n=1, num_shards=1, mirror_axis=mirror_axis)
    ref = np.round(vols[0] * 65535) / 65535 * 2 - 1
    flipped = np.flip(ref, axis=mirror_axis)
    ds = dataset.make_dataset(path, 1, shuffle=False, repeat=True, mirror=True, seed=0)
    n_flip = 0
    for x, _ in ds.take(24):
        v = x.numpy()[0, ..., 0]
        is_same, is_flip = np.allclose(v, ref, atol=1e-6), np.allclose(v, flipped, atol=1e-6)
        assert is_same or is_flip
        n_flip += int(is_flip)
    assert 0 < n_flip < 24


class _Ctx:
    def __init__(self, n, i):
        self.num_input_pipelines, self.input_pipeline_id = n, i

    def get_per_replica_batch_size(self, global_batch):
        return global_batch // self.num_input_pipelines


@pytest.mark.parametrize("num_shards", [4, 1])
def test_each_input_pipeline_reads_its_own_part(tmp_path, num_shards):
    # 4 shards for 2 workers: files are divided; 1 shard: records are divided.
    path, vols, _ = _write(tmp_path, n=8, num_shards=num_shards)
    seen = []
    for i in range(2):
        ds = dataset.make_dataset(path, 4, shuffle=True, repeat=False, input_context=_Ctx(2, i), seed=5)
        assert ds.element_spec[0].shape.as_list()[0] in (None, 2)
        x, _ = _all(ds)
        assert len(x) == 4
        seen.append(np.round(((x[..., 0] + 1) / 2).mean(axis=(1, 2, 3)), 4))
    assert not set(seen[0]) & set(seen[1])
    np.testing.assert_allclose(np.sort(np.concatenate(seen)), np.sort(vols.mean(axis=(1, 2, 3))), atol=1e-4)


def test_under_a_distribution_strategy(tmp_path):
    path, _, _ = _write(tmp_path, n=4, num_shards=2)
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    dist = strategy.distribute_datasets_from_function(
        lambda ctx: dataset.make_dataset(path, 2, shuffle=False, repeat=True, input_context=ctx)
    )
    x, c = next(iter(dist))
    assert x.shape == (2, *SHAPE, 1) and c.shape == (2, 0)


def test_load_manifest_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_manifest(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="dataset.json: missing"):
        load_manifest(tmp_path / "empty")
    path, _, _ = _write(tmp_path, n=2, num_shards=2)
    m = json.loads(open(os.path.join(path, "dataset.json")).read())
    os.remove(os.path.join(path, m["shards"][1]))
    with pytest.raises(FileNotFoundError, match="missing from"):
        load_manifest(path)
    with open(os.path.join(path, "dataset.json"), "w") as f:
        f.write("{broken")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_manifest(path)


def test_manifest_geometry(tmp_path):
    path, _, _ = _write(tmp_path, n=2, num_shards=1)
    m = load_manifest(path)
    assert m.orientation == "RAS" and m.mirror_axis == 0 and m.shape == list(SHAPE)
    assert m.num_volumes == 2 and label_dim(m) == 0
