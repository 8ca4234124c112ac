"""The tf.data pipeline that feeds training (and metrics) from a dataset written by dataset_tool.py.

make_dataset yields (volumes [B, D, H, W, 1] float32 in [-1, 1], labels [B, c_dim] float32).
Geometry (shape, spacing, affine, mirror axis) always comes from dataset.json, never from guesses.
"""

import os

import numpy as np

from dnnlib.errors import InputError
from volumes.manifest import label_dim, load_manifest
from volumes.records import STORAGE_DTYPES
from volumes.volume_io import from_unit_range

# Shuffle raw records up to about this many bytes, so a 1 mm dataset does not fill the RAM.
_SHUFFLE_BYTES = 1 << 30


def _record_bytes(manifest):
    return int(np.prod(manifest.shape)) * np.dtype(STORAGE_DTYPES[manifest.storage_dtype][0]).itemsize


def make_dataset(
    dataset_dir,
    batch_size,
    shuffle=True,
    repeat=True,
    mirror=False,
    seed=0,
    input_context=None,
    shuffle_buffer=None,
    drop_remainder=None,
):
    """tf.data pipeline over a dataset folder.

    batch_size: the global batch; with a tf.distribute.InputContext each pipeline yields
    input_context.get_per_replica_batch_size(batch_size) and reads its own shards (its own records
    when there are fewer shards than pipelines). mirror: random flips along the manifest's
    left-right axis. drop_remainder defaults to `repeat` (training needs static batch shapes;
    a single pass for metrics keeps the last partial batch).
    """
    import tensorflow as tf

    m = load_manifest(dataset_dir)
    shape = [int(s) for s in m.shape]
    c_dim = label_dim(m)
    np_dtype, scale = STORAGE_DTYPES[m.storage_dtype]
    tf_dtype = tf.as_dtype(np.dtype(np_dtype).newbyteorder("="))
    batch = int(batch_size)
    files = [os.path.join(str(dataset_dir), s) for s in m.shards]
    num_pipes, pipe_id = 1, 0
    if input_context is not None:
        num_pipes, pipe_id = input_context.num_input_pipelines, input_context.input_pipeline_id
        batch = input_context.get_per_replica_batch_size(batch_size)
    if batch < 1:
        raise InputError(f"batch size {batch_size} gives {batch} volumes per replica; it must be >= 1")
    shard_files = len(files) >= num_pipes
    if num_pipes > 1 and shard_files:
        files = files[pipe_id::num_pipes]

    ds = tf.data.Dataset.from_tensor_slices(files)
    if shuffle and shard_files:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True)
    ds = ds.interleave(
        lambda f: tf.data.TFRecordDataset(f, compression_type=m.compression or None),
        cycle_length=min(len(files), 4),
        num_parallel_calls=tf.data.AUTOTUNE,
        # Record sharding needs every worker to see the same order.
        deterministic=not shuffle or (num_pipes > 1 and not shard_files),
    )
    if num_pipes > 1 and not shard_files:
        # Fewer shards than workers: every worker reads all records in the same order and keeps its share.
        ds = ds.shard(num_pipes, pipe_id)
    if shuffle:
        n = int(m.get("num_volumes", 0)) or 1024
        buf = shuffle_buffer or max(1, min(n, _SHUFFLE_BYTES // max(_record_bytes(m), 1)))
        ds = ds.shuffle(int(buf), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ds = ds.repeat()

    features = {"volume": tf.io.FixedLenFeature([], tf.string)}
    if c_dim:
        features["label"] = tf.io.FixedLenFeature([c_dim], tf.float32)
    mirror_axis = int(m.mirror_axis) if mirror else None
    if mirror and (mirror_axis is None or not 0 <= mirror_axis < 3):
        raise InputError(f"{dataset_dir}: manifest mirror_axis {m.mirror_axis!r} cannot be used for mirroring")

    def decode(count, serialized):
        ex = tf.io.parse_single_example(serialized, features)
        vol = tf.io.decode_raw(ex["volume"], tf_dtype, little_endian=True)
        vol = tf.reshape(vol, shape + [1])
        vol = tf.cast(vol, tf.float32)
        if scale is not None:
            vol = vol * (1.0 / scale)
        vol = from_unit_range(vol)
        if mirror_axis is not None:
            # Stateless per-example coin: reproducible for a given seed and position in the stream.
            coin = tf.random.stateless_uniform([], seed=tf.stack([tf.cast(seed, tf.int64), count]))
            vol = tf.cond(coin < 0.5, lambda: tf.reverse(vol, axis=[mirror_axis]), lambda: vol)
        label = ex["label"] if c_dim else tf.zeros([0], tf.float32)
        return vol, label

    ds = ds.enumerate().map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=not shuffle)
    ds = ds.batch(batch, drop_remainder=repeat if drop_remainder is None else drop_remainder)
    ds = ds.prefetch(tf.data.AUTOTUNE)
    opts = tf.data.Options()
    # We shard ourselves (above); tf.distribute must not shard again.
    opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    opts.deterministic = not shuffle
    return ds.with_options(opts)


