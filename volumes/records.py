"""Writing a dataset: compressed TFRecord shards (one example per volume) plus dataset.json.

Record layout (docs/DESIGN.md): `volume` raw little-endian bytes of the storage dtype in C order
[i, j, k]; `shape` int64 x3; `index` int64; `label` float list (only when labelled); `sha256` of the
stored bytes, so `dataset_tool.py info` can verify every record without trusting the writer.
"""

import contextlib
import os

import numpy as np

from dnnlib.digest import sha256_bytes
from dnnlib.easydict import EasyDict
from dnnlib.errors import InputError
from volumes.manifest import STORAGE_DTYPES, load_manifest


def encode_volume(volume01, storage_dtype="uint16"):
    """[0, 1] float volume -> stored array (uint16: round(v * 65535), uint8: round(v * 255), float16)."""
    np_dtype, scale = STORAGE_DTYPES[storage_dtype]
    v = np.clip(np.asarray(volume01, dtype=np.float32), 0.0, 1.0)
    if scale is None:
        return np.ascontiguousarray(v.astype(np_dtype))
    return np.ascontiguousarray(np.round(v * scale).astype(np_dtype))


def decode_volume(stored, storage_dtype="uint16"):
    """Stored array -> float32 volume in [0, 1]."""
    _, scale = STORAGE_DTYPES[storage_dtype]
    v = np.asarray(stored).astype(np.float32)
    return v if scale is None else v / np.float32(scale)


def shard_name(s, num_shards):
    return f"data-{s:05d}-of-{num_shards:05d}.tfrecord.gz"


def serialize_example(stored, index, label=None):
    """One tf.train.Example (bytes) for a stored volume."""
    import tensorflow as tf

    raw = np.ascontiguousarray(stored).tobytes()
    feature = {
        "volume": tf.train.Feature(bytes_list=tf.train.BytesList(value=[raw])),
        "shape": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(s) for s in stored.shape])),
        "index": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(index)])),
        "sha256": tf.train.Feature(bytes_list=tf.train.BytesList(value=[sha256_bytes(raw).encode()])),
    }
    if label is not None and len(label) > 0:
        feature["label"] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(x) for x in label]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def parse_example_numpy(serialized, storage_dtype):
    """Parse an example outside tf.data (info, extract): returns EasyDict(stored, shape, index, label, sha256)."""
    import tensorflow as tf

    ex = tf.train.Example.FromString(serialized)
    f = ex.features.feature
    shape = tuple(int(s) for s in f["shape"].int64_list.value)
    raw = f["volume"].bytes_list.value[0]
    np_dtype, _ = STORAGE_DTYPES[storage_dtype]
    stored = np.frombuffer(raw, dtype=np_dtype)
    return EasyDict(
        stored=stored,
        raw=raw,
        shape=shape,
        index=int(f["index"].int64_list.value[0]),
        label=np.asarray(f["label"].float_list.value, np.float32) if "label" in f else np.zeros([0], np.float32),
        sha256=f["sha256"].bytes_list.value[0].decode() if "sha256" in f else None,
    )


class ShardedWriter:
    """Writes examples round-robin into `num_shards` GZIP TFRecord files inside out_dir.

    Round-robin keeps shards balanced, so each worker of a distributed run reads a similar amount.
    close() drops shards left empty (when fewer volumes than shards survived) and renames the rest
    so the names stay "-of-<count>"; it returns the final shard names.
    """

    def __init__(self, out_dir, num_shards):
        self.out_dir = out_dir
        self.num_shards = max(1, int(num_shards))
        self._names = [shard_name(s, self.num_shards) for s in range(self.num_shards)]
        self._writers = []
        for n in self._names:
            self._writers.append(_open_shard(os.path.join(out_dir, n)))
        self._counts = [0] * self.num_shards
        self.count = 0
        self._names_out = None

    def write(self, serialized):
        """Append one serialized example; returns the shard number it went to."""
        s = self.count % self.num_shards
        _writer_call(lambda: self._writers[s].write(serialized), os.path.join(self.out_dir, self._names[s]))
        self._counts[s] += 1
        self.count += 1
        return s

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()

    def abort(self):
        """Release the shard files after a failure (their folder is about to be removed); never raises."""
        self._names_out = self._names_out if self._names_out is not None else []
        for w in self._writers:
            try:
                w.close()
            except Exception:  # noqa: BLE001, S110 - the first error is the one being reported
                pass

    def close(self):
        """Finish the shards and return their final names; called again, it returns them again."""
        if self._names_out is not None:
            return self._names_out
        self._names_out = []
        for s, w in enumerate(self._writers):
            _writer_call(w.close, os.path.join(self.out_dir, self._names[s]))
        kept = [s for s in range(self.num_shards) if self._counts[s] > 0]
        names = []
        for new_s, s in enumerate(kept):
            name = shard_name(new_s, len(kept))
            if name != self._names[s]:
                os.replace(os.path.join(self.out_dir, self._names[s]), os.path.join(self.out_dir, name))
            names.append(name)
        for s in range(self.num_shards):
            if self._counts[s] == 0:
                os.remove(os.path.join(self.out_dir, self._names[s]))
        # Remember where each old shard number went, so manifest entries can be fixed up.
        self.shard_map = {s: new_s for new_s, s in enumerate(kept)}
        self._names_out = names
        return names


def rewrite_shard(path, examples):
    """Replace the shard at `path` with the serialized `examples` (an iterable, which may read the old shard as it
    goes), in the same format. They are written to a temporary file beside it that takes the shard's name only once
    complete; on an error it is removed and the old shard stays."""
    tmp = path + ".rewrite"
    writer = _open_shard(tmp)
    try:
        for serialized in examples:
            _writer_call(lambda serialized=serialized: writer.write(serialized), tmp)
        _writer_call(writer.close, tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(Exception):
            writer.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def _open_shard(path):
    """A TFRecordWriter on `path` in the shard format: GZIP at level 6."""
    import tensorflow as tf

    opts = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=6)
    return _writer_call(lambda: tf.io.TFRecordWriter(path, opts), path)


def _writer_call(fn, path):
    """Run a TFRecordWriter call; TensorFlow's errors (a full disk, a vanished folder) become an OSError naming
    the shard, so the command line reports them like any other file error instead of with a traceback."""
    import tensorflow as tf

    try:
        return fn()
    except tf.errors.OpError as e:
        text = (e.message or str(e)).strip().splitlines()
        raise OSError(f"{path}: cannot write ({text[-1][:200] if text else type(e).__name__})") from None


def choose_num_shards(num_volumes, shape, storage_dtype, target_mb=256, min_shards=1):
    """Enough shards that each holds ~target_mb of raw data, but never more shards than volumes."""
    nbytes = int(np.prod(shape)) * np.dtype(STORAGE_DTYPES[storage_dtype][0]).itemsize
    per_shard = max(1, int(target_mb * 2**20 // max(nbytes, 1)))
    return int(max(min_shards, min(num_volumes, -(-num_volumes // per_shard))))


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
            raise InputError(f"{path}: corrupt shard ({e.message.splitlines()[0][:200]})") from None


def shard_identity(path):
    """What changes whenever a shard's bytes may have: device, inode, size, modification and change times (the
    change time cannot be set back by anyone, so a rewritten or touched file never keeps its identity)."""
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def check_shards(dataset_dir, manifest, verified=None):
    """Read every record of every shard, so TensorFlow checks each record's CRC (and GZIP's own checksum); an
    InputError names the shard and the first record that cannot be read. Training calls this before it creates
    its run folder, so a corrupt dataset costs nothing but the read.

    verified: {shard name: shard_identity} of an earlier check (a resumed run's record); a shard whose identity is
    unchanged is not read again. Returns {shard name: identity} of every shard, as checked now."""
    import tensorflow as tf

    verified = verified or {}
    identities = {}
    for name in manifest.shards:
        path = os.path.join(str(dataset_dir), name)
        identity = shard_identity(path)  # before the read: a change during it shows next time
        identities[name] = identity
        if verified.get(name) == identity:
            continue
        count = 0
        try:
            for _ in tf.data.TFRecordDataset(path, compression_type=manifest.get("compression") or None):
                count += 1
        except tf.errors.OpError as e:
            raise InputError(f"{path}: corrupt shard: record {count} cannot be read "
                             f"({e.message.splitlines()[0][:200]})") from None
    return identities
