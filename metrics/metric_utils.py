"""What every metric shares: feeding reals and fakes in batches, collecting features, caching real statistics.

Reals come from a dataset directory (volumes.dataset_reader.make_dataset) or any tf.data.Dataset yielding
volumes [B,D,H,W,C] in [-1,1] or (volumes, labels) pairs. Fakes come from a generator object (anything with
z_dim, c_dim and __call__(z, c, psi=, noise_mode=) -> [N,D,H,W,C] in [-1,1]): z = RandomState(seed).randn,
labels (conditional networks) drawn from the reals, outputs clipped to [-1, 1] as when written to disk. A
Generator's 'random' noise maps are drawn from the seed too (fake_noise), so a metric gives the same value on every
run and at every batch size.

Real-side results (features, statistics) are cached on disk under <dataset>/.cache (or opts.cache_dir), keyed by
a hash of the manifest (with its file checksums) and shard files, the feature network id, the number of volumes
and the options, so a second evaluation of the same dataset skips the reals. Results from random-weight networks
are never cached. Within one session (several metrics of one evaluation) features are also memoised in memory.
"""

import hashlib
import io
import json
import os

import numpy as np
import tensorflow as tf

from dnnlib.errors import InputError
from dnnlib.fileutil import atomic_write_bytes
from volumes.dataset_reader import make_dataset


def resolve_generator(G):
    """The generator object of a LoadedNetwork, or G itself (metrics take loaded networks: front ends load them)."""
    if hasattr(G, "G") and not hasattr(G, "z_dim"):
        return G.G
    if not (hasattr(G, "z_dim") and hasattr(G, "c_dim") and callable(G)):
        raise TypeError(f"not a generator: {type(G).__name__} (expected a LoadedNetwork or Generator)")
    return G


def _grid(shape):
    return "x".join(str(int(s)) for s in shape)


def check_grids(G, reals):
    """ValueError naming both grids when the reals' volumes [D,H,W] are not the generator's output grid:
    every metric compares the two sets volume by volume or feature by feature, so they must share a grid."""
    want = getattr(G, "img_shape", None)
    if want is None:
        return
    want = tuple(int(s) for s in want)[:3]
    if isinstance(reals, str | os.PathLike):
        from volumes.manifest import load_manifest

        have, where = tuple(int(s) for s in load_manifest(os.fspath(reals)).shape)[:3], os.fspath(reals)
    elif isinstance(reals, tf.data.Dataset):
        spec = reals.element_spec[0] if isinstance(reals.element_spec, tuple | list) else reals.element_spec
        if spec.shape.rank != 5 or not spec.shape[1:4].is_fully_defined():
            return  # checked volume by volume where they are compared
        have, where = tuple(int(s) for s in spec.shape[1:4]), "the reals (tf.data.Dataset)"
    else:
        return
    if have != want:
        raise InputError(f"{where}: the reals are {_grid(have)} volumes but the network makes {_grid(want)}; "
                         "metrics compare the two on one grid: use the dataset the network was trained on (or "
                         "one made on the network's grid)")


def dataset_key(reals):
    """Hash of a dataset directory: its whole manifest (source-file checksums, geometry, normalisation) plus the
    names, sizes and modification times of its shards, so a dataset rewritten in place gets a new key.
    None for an in-memory tf.data.Dataset (not cached)."""
    if not isinstance(reals, str | os.PathLike):
        return None
    from volumes.manifest import load_manifest

    root = os.fspath(reals)
    m = load_manifest(root)
    shards = []
    for name in m.get("shards", []):
        st = os.stat(os.path.join(root, name))
        shards.append([name, st.st_size, st.st_mtime_ns])
    content = {"manifest": m, "shards": shards}
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _real_dataset(opts, shuffle=False, repeat=False):
    if isinstance(opts.reals, str | os.PathLike):
        return make_dataset(os.fspath(opts.reals), batch_size=opts.batch, shuffle=shuffle, repeat=repeat,
                            seed=opts.seed)
    if isinstance(opts.reals, tf.data.Dataset):
        ds = opts.reals
        if shuffle:
            ds = ds.unbatch().shuffle(256, seed=opts.seed).batch(opts.batch)
        return ds.repeat() if repeat else ds
    raise TypeError(f"reals must be a dataset directory or a tf.data.Dataset, got {type(opts.reals).__name__}")


def _split(element):
    if isinstance(element, tuple | list):
        return element[0], (element[1] if len(element) > 1 else None)
    return element, None


def iterate_reals(opts, num=None, shuffle=False):
    """Yield float32 NumPy batches [b,D,H,W,C] in [-1,1], at most `num` (default opts.num) volumes in all."""
    num = opts.num if num is None else num
    done = 0
    for element in _real_dataset(opts, shuffle=shuffle):
        vol, _ = _split(element)
        vol = np.asarray(vol, np.float32)
        if vol.ndim != 5:
            raise InputError(f"reals must be batches [B,D,H,W,C]; got an element of shape {vol.shape}")
        vol = vol[: num - done]
        done += vol.shape[0]
        yield vol
        if done >= num:
            return


def _label_batches(opts, G):
    if G.c_dim == 0:
        while True:
            yield np.zeros([opts.batch, 0], np.float32)
    for element in _real_dataset(opts, shuffle=True, repeat=True):
        _, c = _split(element)
        if c is None:
            raise InputError(f"the generator is conditional (c_dim={G.c_dim}) but the reals carry no labels")
        yield np.asarray(c, np.float32)


def _generator_fn(opts):
    """G's forward pass (z, c, noise maps or None); a tf.Module generator is traced once per session (batches are
    padded to a fixed size)."""
    key = ("generator_fn",)
    if key not in opts.session:
        G = opts.G

        def fn(z, c, noise):
            if noise is None:
                return G(z, c, psi=opts.psi, noise_mode=opts.noise_mode)
            return G.synthesis(G.mapping(z, c, psi=opts.psi), noise=noise)

        opts.session[key] = tf.function(fn, autograph=False) if isinstance(G, tf.Module) else fn
    return opts.session[key]


NOISE_STREAM = 1  # the fakes' noise maps: a stream of the metric's seed apart from the latents'


def fake_noise(G, seed, noise_mode):
    """For 'random' noise of a Generator with noise inputs: a function n -> the next n fakes' maps (list of
    [n,D,H,W,1] float32), drawn volume after volume from (seed, NOISE_STREAM), so the first k fakes get the same maps
    whatever the batch size. None otherwise (G draws its own, or there is none)."""
    shapes = getattr(getattr(G, "synthesis", None), "noise_shapes", None)
    if noise_mode != "random" or not shapes:
        return None
    rng = np.random.default_rng([int(seed), NOISE_STREAM])

    def draw(n):
        per_volume = [[rng.standard_normal(shape[1:], dtype=np.float32) for shape in shapes] for _ in range(n)]
        return [np.stack([maps[k] for maps in per_volume]) for k in range(len(shapes))]

    return draw


def iterate_fakes(opts, num=None):
    """Yield float32 NumPy batches [b,D,H,W,C] in [-1,1] from opts.G, `num` (default opts.num) in all."""
    num = opts.num if num is None else num
    G, b = opts.G, opts.batch
    total = -(-num // b) * b  # whole batches: one static shape; the first `num` latents do not depend on b
    z_all = np.random.RandomState(opts.seed).randn(total, G.z_dim).astype(np.float32)
    labels = _label_batches(opts, G)
    gen = _generator_fn(opts)
    noise = fake_noise(G, opts.seed, opts.noise_mode)
    for i in range(0, num, b):
        c = next(labels)
        if c.shape[0] < b:
            raise InputError(f"the reals' label batches hold {c.shape[0]} labels, fewer than the batch size {b}")
        maps = None if noise is None else [tf.constant(m) for m in noise(b)]
        img = gen(tf.constant(z_all[i : i + b]), tf.constant(c[:b]) if G.c_dim else None, maps)
        yield np.clip(np.asarray(img, np.float32)[: num - i], -1.0, 1.0)


COUNT = "_num_volumes"


def count(arrays):
    """Number of volumes behind a dict made by collect()."""
    return int(arrays[COUNT].shape[0])


def collect(batches, extractor):
    """Run extractor (batch -> dict name -> [b, d]) over batches; concatenate per name."""
    parts = {}
    for batch in batches:
        parts.setdefault(COUNT, []).append(np.zeros([batch.shape[0], 0], np.float32))  # counts volumes
        for k, v in extractor(batch).items():
            parts.setdefault(k, []).append(np.asarray(v))
    if not parts:
        raise InputError("no volumes to evaluate (empty dataset?)")
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}


# ----------------------------------------------------------------------------------------------------------------
# Caching.


def _cache_path(opts, tag, extra):
    if opts.dataset_key is None or opts.cache_dir is False:
        return None
    key_src = json.dumps({"dataset": opts.dataset_key, "tag": tag, "num": opts.num, "extra": extra},
                         sort_keys=True, default=str)
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    cache_dir = opts.cache_dir or os.path.join(os.fspath(opts.reals), ".cache")
    return os.path.join(cache_dir, f"{tag}-{key}.npz")


def _save_npz(path, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        atomic_write_bytes(path, buf.getvalue())
    except OSError as e:  # a read-only dataset: evaluate anyway, just without the cache
        print(f"note: cannot write the real-statistics cache in {os.path.dirname(path)} ({e}); continuing without it")


def cached_reals(opts, tag, extra, compute, cacheable=True):
    """dict of arrays for the reals: from the session memo, the disk cache, or compute() (then stored)."""
    memo_key = ("reals", tag, json.dumps(extra, sort_keys=True, default=str))
    if memo_key in opts.session:
        return opts.session[memo_key]
    path = _cache_path(opts, tag, extra) if cacheable else None
    if path and os.path.isfile(path):
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        opts.cache_hits.append(path)
    else:
        arrays = compute()
        if path:
            _save_npz(path, arrays)
    opts.session[memo_key] = arrays
    return arrays


def memo_fakes(opts, tag, extra, compute):
    key = ("fakes", tag, json.dumps(extra, sort_keys=True, default=str))
    if key not in opts.session:
        opts.session[key] = compute()
    return opts.session[key]


def feature_network(opts, kind):
    """The session's feature network of `kind` ('inception' or '3d'), built once per session."""
    from metrics import feature_networks

    key = ("net", kind)
    if key not in opts.session:
        if kind == "inception":
            net = feature_networks.slice_network(opts.feature_weights, image_size=opts.inception_size)
        elif kind == "3d":
            net = feature_networks.load_3d_network(opts.feature_network, opts.feature_layer, opts.feature_input)
        else:
            raise InputError(f"unknown feature network kind {kind!r}: 'inception' or '3d'")
        if not net.comparable:
            print(f"warning: {net.description}: metric values exercise the plumbing only and are NOT comparable")
        opts.session[key] = net
    return opts.session[key]


def features(opts, kind, tag, extractor_factory, extra):
    """(real features dict, fake features dict, network) for a feature network kind; reals cached."""
    net = feature_network(opts, kind)
    extract = extractor_factory(net)
    extra = dict(extra, net=net.id)
    reals = cached_reals(opts, tag, extra, lambda: collect(iterate_reals(opts), extract), cacheable=net.comparable)
    fakes = memo_fakes(opts, tag, extra, lambda: collect(iterate_fakes(opts), extract))
    return reals, fakes, net

