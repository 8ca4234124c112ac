"""Reading datasets written by dataset_tool.py: the manifest and a tf.data pipeline.

make_dataset yields (volumes [B, D, H, W, 1] float32 in [-1, 1], labels [B, c_dim] float32).
Geometry (shape, spacing, affine, mirror axis) always comes from dataset.json, never from guesses.
"""

import contextlib
import json
import os

import numpy as np

from dnnlib.easydict import EasyDict
from dnnlib.errors import UserError
from training.dataset_writer import FORMAT, MANIFEST_NAME, STORAGE_DTYPES, parse_example_numpy

_REQUIRED_KEYS = ("format", "shape", "spacing", "affine", "orientation", "mirror_axis", "storage_dtype", "shards")

# Shuffle raw records up to about this many bytes, so a 1 mm dataset does not fill the RAM.
_SHUFFLE_BYTES = 1 << 30


def load_manifest(dataset_dir):
    """Read and check <dataset_dir>/dataset.json; UserError naming the problem if missing or invalid."""
    dataset_dir = str(dataset_dir)
    path = os.path.join(dataset_dir, MANIFEST_NAME)
    if not os.path.isdir(dataset_dir):
        raise UserError(f"{dataset_dir}: dataset folder not found (create one with dataset_tool.py create)")
    if not os.path.isfile(path):
        raise UserError(f"{path}: missing; {dataset_dir} is not a dataset made by dataset_tool.py")
    try:
        m = EasyDict.load_json(path)
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{path}: not valid JSON ({e})") from None
    missing = [k for k in _REQUIRED_KEYS if k not in m]
    if missing:
        raise UserError(f"{path}: missing keys {missing}")
    if m.format != FORMAT:
        raise UserError(f"{path}: format {m.format!r} is not {FORMAT!r}")
    if m.storage_dtype not in STORAGE_DTYPES:
        raise UserError(f"{path}: unknown storage_dtype {m.storage_dtype!r}")
    if len(m.shape) != 3 or np.asarray(m.affine).shape != (4, 4):
        raise UserError(f"{path}: shape must have 3 entries and affine must be 4x4")
    if not m.shards:
        raise UserError(f"{path}: the dataset has no shards")
    for s in m.shards:
        if not os.path.isfile(os.path.join(dataset_dir, s)):
            raise UserError(f"{path}: shard {s} listed but missing from {dataset_dir}")
    m.setdefault("channels", 1)
    m.setdefault("labels", None)
    m.setdefault("compression", "GZIP")
    m.setdefault("synthetic", False)
    return m


def label_dim(manifest):
    return int(manifest.labels.c_dim) if manifest.get("labels") else 0


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
        raise UserError(f"batch size {batch_size} gives {batch} volumes per replica; it must be >= 1")
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
        raise UserError(f"{dataset_dir}: manifest mirror_axis {m.mirror_axis!r} cannot be used for mirroring")

    def decode(count, serialized):
        ex = tf.io.parse_single_example(serialized, features)
        vol = tf.io.decode_raw(ex["volume"], tf_dtype, little_endian=True)
        vol = tf.reshape(vol, shape + [1])
        vol = tf.cast(vol, tf.float32)
        if scale is not None:
            vol = vol * (1.0 / scale)
        vol = vol * 2.0 - 1.0
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


def iterate_records(dataset_dir, manifest=None):
    """Yield every record of a dataset as parsed NumPy (EasyDict from parse_example_numpy), shard by shard."""
    import tensorflow as tf

    m = manifest or load_manifest(dataset_dir)
    for s, name in enumerate(m.shards):
        path = os.path.join(str(dataset_dir), name)
        try:
            for rec in tf.data.TFRecordDataset(path, compression_type=m.compression or None).as_numpy_iterator():
                ex = parse_example_numpy(rec, m.storage_dtype)
                ex.shard = s
                ex.serialized = rec
                yield ex
        except tf.errors.OpError as e:
            raise UserError(f"{path}: corrupt shard ({e.message.splitlines()[0][:200]})") from None


def volume_affine(manifest, index):
    """The world affine of record `index`: its own grid if the manifest lists one, else the shared grid."""
    for f in manifest.get("files") or []:
        if int(f.get("index", -1)) == int(index) and f.get("affine") is not None:
            return np.asarray(f["affine"], dtype=np.float64)
    return np.asarray(manifest.affine, dtype=np.float64)


def data_root():
    """Where built-in datasets live: $STYLEGAN3D_DATA, else <repo>/datasets."""
    env = os.environ.get("STYLEGAN3D_DATA")
    if env:
        return os.path.abspath(env)
    return os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")


def default_demo_dataset(res="demo", root=None, num_volumes=None, verbose=True):
    """Path of the built-in synthetic demo dataset datasets/demo-<res>, built once (atomically) if absent.

    res: "demo" (40x48x56 at 4 mm, the demo training config) or "2mm" (80x96x112 at 2 mm).
    Concurrent callers wait on a lock file, so the set is built only once.
    """
    from training import demo_data

    if res not in demo_data.RESOLUTIONS:
        raise UserError(f"demo resolution {res!r} unknown; choose one of {sorted(demo_data.RESOLUTIONS)}")
    root = os.path.abspath(root or data_root())
    path = os.path.join(root, f"demo-{res}")
    if _is_valid_dataset(path):
        return path
    os.makedirs(root, exist_ok=True)
    with _file_lock(os.path.join(root, f".demo-{res}.lock")):
        if _is_valid_dataset(path):  # someone else built it while we waited
            return path
        if os.path.exists(path):  # never delete something we did not make
            try:
                load_manifest(path)
            except UserError as e:
                raise UserError(f"{path} exists but is not a usable dataset ({e}); remove it to rebuild") from None
        kwargs = {} if num_volumes is None else {"num_volumes": num_volumes}
        demo_data.build_demo_dataset(path, res=res, verbose=verbose, **kwargs)
    return path


def _is_valid_dataset(path):
    try:
        load_manifest(path)
        return True
    except UserError:
        return False


@contextlib.contextmanager
def _file_lock(path):
    import fcntl

    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
