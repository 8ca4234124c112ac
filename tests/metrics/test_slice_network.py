"""The slice metrics (fid_slices, kid, pr_slices) on the standard FID Inception: from a local weights file, and from
the cache after a pinned download (served on 127.0.0.1). Synthetic weights of the real shapes stand in for the real
ones; each result records the network and weights that produced it."""

import hashlib
import http.server
import json
import os
import threading

import numpy as np
import pytest

from metrics import feature_networks, frechet, metric_main
from metrics import fid_inception as fi
from metrics import fid_inception_weights as fw
from tests.utils import FakeG, fakes_of, make_reals

NUM = 4  # volumes per side: the fewest precision/recall (k = 3) accepts


@pytest.fixture(scope="module")
def fid_npz(tmp_path_factory):
    weights = fi.random_weights(11)
    path = tmp_path_factory.mktemp("fid") / "fid-inception-test.npz"
    meta = fw.save_npz(path, weights, 1e-3)
    return path, meta, weights


def _numpy_fid_axis0(net, reals, fakes):
    """Independent slice convention: middle slice of axis 0, round((s + 1) * 127.5) clipped, grey -> RGB."""
    def feats(v):
        s = v[:, v.shape[1] // 2, :, :, 0].astype(np.float64)
        u8 = np.clip(np.round((s + 1.0) * 127.5), 0, 255).astype(np.float32)
        return net(np.repeat(u8[..., None], 3, axis=-1)).numpy()

    return frechet.frechet_distance_from_features(feats(reals), feats(fakes))


def test_slice_metrics_from_a_local_weights_file(fid_npz, tmp_path):
    path, meta, weights = fid_npz
    reals, ds = make_reals()
    G = FakeG()
    results = metric_main.calc_metrics(["fid_slices", "kid", "pr_slices"], G=G, dataset_dir=ds, num=NUM, batch=4,
                                       feature_weights=str(path), run_dir=str(tmp_path / "run"))
    by_name = {r.metric: r for r in results}
    for r in results:
        assert all(np.isfinite(v) for v in r.results.values()), (r.metric, r.results)
        ident = r.info["feature_network"]
        assert ident["name"] == fi.NAME and ident["weights_sha256"] == meta["weights_sha256"]
        assert ident["file"] == path.name and ident["standard"] is False
    expected = _numpy_fid_axis0(fi.FIDInception(weights), reals[:NUM], fakes_of(G, NUM))
    assert by_name["fid_slices"].results["fid_slices_axis0"] == pytest.approx(expected, rel=1e-3)

    # The table names the network and weights, and says these are not the standard weights.
    table = metric_main.format_table(results)
    assert f"{fi.NAME}@{meta['weights_sha256'][:12]}" in table
    assert "not the standard FID Inception" in table
    # So does every JSON line.
    line = json.loads(open(tmp_path / "run" / "metric-kid.jsonl").readline())
    assert line["info"]["feature_network"]["weights_sha256"] == meta["weights_sha256"]


class _Server:
    """Serves one payload on 127.0.0.1 and counts the requests."""

    def __init__(self, payload):
        requests = self.requests = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/fid-inception-test.npz"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def test_default_network_downloaded_once_then_read_from_the_cache(fid_npz, tmp_path, monkeypatch):
    path, meta, _ = fid_npz
    payload = path.read_bytes()
    server = _Server(payload)
    try:
        entry = {"url": server.url, "sha256": hashlib.sha256(payload).hexdigest(), "format": "npz"}
        monkeypatch.setitem(fw.KNOWN_FILES, "test-npz", entry)
        monkeypatch.setattr(fw, "DEFAULT_ORDER", ("test-npz",))
        monkeypatch.setenv("STYLEGAN3D_CACHE", str(tmp_path / "cache"))
        _, ds = make_reals()
        r = metric_main.calc_metric("fid_slices", G=FakeG(), dataset_dir=ds, num=NUM, batch=4)
    finally:
        server.stop()
    assert np.isfinite(r.results["fid_slices"])
    assert r.info["feature_network"]["weights_sha256"] == meta["weights_sha256"]
    assert r.info["feature_network"]["url"] == server.url and server.requests == ["/fid-inception-test.npz"]
    assert os.listdir(tmp_path / "cache") == ["fid-inception-test.npz"]
    # Offline now: the same network from the cache, no request.
    net = feature_networks.slice_network(None)
    assert net.network_id["weights_sha256"] == meta["weights_sha256"] and len(server.requests) == 1


def test_default_network_without_torch_fails_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN3D_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(fw, "DEFAULT_ORDER", ("fid-helper-default_1",))  # the pinned TorchScript file
    monkeypatch.setattr(fw, "_have_torch", lambda: False)
    _, ds = make_reals()
    G = FakeG()
    with pytest.raises(metric_main.MetricOptionError, match="needs torch") as e:
        metric_main.calc_metric("pr_slices", G=G, dataset_dir=ds, num=NUM, batch=4)
    assert e.value.option == "feature_weights" and G.calls == []
    # A copy converted earlier is enough: torch is needed once.
    entry = fw.KNOWN_FILES["fid-helper-default_1"]
    converted = fw._converted_path("fid-helper-default_1", entry, None)
    os.makedirs(os.path.dirname(converted))
    open(converted, "wb").close()
    metric_main.preflight(["pr_slices"])


# feature_weights -> the exception preflight raises (as a MetricOptionError naming feature_weights) and its message.
PREFLIGHT_ERRORS = [
    ("{tmp}/missing.pb", "no such FID Inception weights file"),
    ("{tmp}/notop.h5", "keras:"),
    ("keras:{tmp}/missing.h5", "no such InceptionV3 weights file"),
    ("{tmp}/junk.zip", "neither our .npz nor a TorchScript"),
]


@pytest.mark.parametrize("spec, message", PREFLIGHT_ERRORS)
def test_preflight_errors_name_the_option(tmp_path, spec, message):
    import zipfile

    with zipfile.ZipFile(tmp_path / "junk.zip", "w") as z:
        z.writestr("a.txt", "x")
    with pytest.raises(metric_main.MetricOptionError, match=message) as e:
        metric_main.preflight(["fid_slices"], feature_weights=spec.format(tmp=tmp_path))
    assert e.value.option == "feature_weights"
