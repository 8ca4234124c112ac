"""The metrics end to end, offline: a stand-in generator, in-memory reals, random-weight InceptionV3 and a tiny
random 3D network saved to disk. Plumbing values are checked against direct computations on the same volumes."""

import ast
import glob
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from metrics import frechet, memorization, metric_main, mmd, ms_ssim
from tests.utils import REPO, FakeG, fakes_of, make_reals, make_tiny_dataset


@pytest.fixture(scope="module")
def net3d(tmp_path_factory):
    inp = keras.Input((None, None, None, 1))
    h = keras.layers.Conv3D(6, 3, activation="relu", name="c1")(inp)
    h = keras.layers.Conv3D(8, 3, name="c2")(h)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling3D()(h))
    path = str(tmp_path_factory.mktemp("net") / "net3d.keras")
    model.save(path)
    return path, keras.Model(model.inputs, model.get_layer("c2").output)


def test_all_metrics_end_to_end(tmp_path, net3d):
    path, feat_model = net3d
    reals, ds = make_reals()
    G = FakeG()
    writer = tf.summary.create_file_writer(str(tmp_path / "tb"))
    # The memorisation audit needs a held-out split and 20 volumes: tests/metrics/test_memorization.py.
    names = [n for n in metric_main.list_metrics() if n not in memorization.METRIC_NAMES]
    results = metric_main.calc_metrics(
        names, G=G, dataset_dir=ds, num=10, batch=4, feature_weights="random", inception_size=75,
        feature_network=path, feature_layer="c2", run_dir=str(tmp_path / "run"), tb_writer=writer, step=3)
    by_name = {r.metric: r for r in results}
    assert set(by_name) == set(names)
    for r in results:
        if r.metric != "ms_ssim_legacy_kwon":  # the legacy formula may give NaN on unrelated pairs, by design
            assert r.results and all(np.isfinite(v) for v in r.results.values()), (r.metric, r.results)
        print(r.metric, r.total_time_str)
    real10, fake10 = reals[:10], fakes_of(G, 10)

    # 3D FID: the same as the Frechet distance of the 3D features computed here directly.
    f = lambda v: tf.reduce_mean(feat_model(v), axis=[1, 2, 3]).numpy()  # noqa: E731
    assert by_name["fid_3d"].results["fid_3d"] == pytest.approx(
        frechet.frechet_distance_from_features(f(real10), f(fake10)), rel=1e-4, abs=1e-9)
    # Voxel MMDs on [0,1] vectors.
    x, y = mmd.to_voxel_vectors(real10), mmd.to_voxel_vectors(fake10)
    assert by_name["mmd"].results["mmd_linear_unbiased"] == pytest.approx(mmd.mmd_linear_unbiased(x, y), rel=1e-6)
    assert by_name["mmd"].results["mmd_linear_batch8"] == pytest.approx(mmd.mmd_linear_batch(x, y)[0], rel=1e-6)
    assert by_name["mmd_gaussian_median"].results["mmd_gaussian_median"] == pytest.approx(
        mmd.mmd_gaussian_median(x, y)[0], rel=1e-5, abs=1e-9)
    # MS-SSIM of fakes: mean over the pairs (0,1), (2,3), ... of the fakes.
    expected = ms_ssim.ms_ssim((fake10[0::2] + 1) / 2, (fake10[1::2] + 1) / 2, 1.0).values.mean()
    assert by_name["ms_ssim"].results["ms_ssim_fakes"] == pytest.approx(expected, rel=1e-5)
    assert by_name["ms_ssim"].info["kernel_size"] == 3 and by_name["ms_ssim"].info["num_scales"] == 3
    assert 0 < by_name["ms_ssim"].results["ms_ssim_reals"] < 1
    legacy = ms_ssim.ms_ssim_legacy_kwon((fake10[0::2] + 1) / 2, (fake10[1::2] + 1) / 2, 1.0)
    got = by_name["ms_ssim_legacy_kwon"]
    assert got.info.get("nan_pairs_fakes", 0) == np.isnan(legacy).sum()
    if np.isfinite(legacy).any():
        assert got.results["ms_ssim_legacy_kwon_fakes"] == pytest.approx(np.nanmean(legacy), rel=1e-5)
    assert by_name["fid_slices"].info["comparable"] is False
    assert "NOT comparable" in metric_main.format_table(results)
    assert 0 <= by_name["pr_3d"].results["precision_3d"] <= 1
    # Slice metrics: per axis, then the mean over the axes, in that order.
    pr = by_name["pr_slices"].results
    assert list(pr) == [f"{m}_axis{a}" for a in range(3) for m in ("precision", "recall")] + ["precision", "recall"]
    assert pr["recall"] == pytest.approx(np.mean([pr[f"recall_axis{a}"] for a in range(3)]), rel=1e-12)
    assert list(by_name["kid"].results) == ["kid_axis0", "kid_axis1", "kid_axis2", "kid"]

    # One JSON line per metric in the run directory; TensorBoard events written.
    lines = [json.loads(x) for x in open(tmp_path / "run" / "metric-fid_3d.jsonl")]
    assert len(lines) == 1 and lines[0]["results"]["fid_3d"] == by_name["fid_3d"].results["fid_3d"]
    assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path / "tb"))


def test_real_statistics_are_cached(tmp_path, net3d, monkeypatch):
    path, _ = net3d
    _, ds = make_reals()
    monkeypatch.setattr(metric_main.metric_utils, "dataset_key", lambda reals: "fixed-key")
    kwargs = dict(G=FakeG(), dataset_dir=ds, num=8, batch=4, feature_network=path, feature_layer="c2",
                  cache_dir=str(tmp_path / "cache"))
    first = metric_main.calc_metric("fid_3d", **kwargs)
    assert len(os.listdir(tmp_path / "cache")) == 1
    # A second evaluation reads the reals from the cache: an empty dataset would fail if it were iterated.
    empty = ds.take(0)
    second = metric_main.calc_metric("fid_3d", **dict(kwargs, dataset_dir=empty))
    assert second.results == first.results
    # Another number of volumes is another key.
    metric_main.calc_metric("fid_3d", **dict(kwargs, num=6))
    assert len(os.listdir(tmp_path / "cache")) == 2


def test_conditional_generator_gets_labels_from_reals():
    labels = np.eye(3, dtype=np.float32)[np.arange(12) % 3]
    _, ds = make_reals(labels=labels)
    G = FakeG(c_dim=3)
    metric_main.calc_metric("mmd_linear_unbiased", G=G, dataset_dir=ds, num=8, batch=4)
    got = [c for _, c in G.calls]
    assert all(c is not None and c.shape == (4, 3) and np.all(c.sum(1) == 1) for c in got)


# (metric, keywords of calc_metric, exception, message pattern, option named by a MetricOptionError)
LIBRARY_ERRORS = [
    ("fid50k", {}, metric_main.MetricOptionError, "unknown metric.*choose from.*fid_slices", "metrics"),
    ("fid_3d", {}, metric_main.MetricOptionError, "fid_3d needs a 3D feature network", "feature_network"),
    ("mmd", {"num": 1}, ValueError, "at least 2 volumes", None),
    ("mmd", {"G": object()}, TypeError, "not a generator", None),
    ("mmd", {"dataset_dir": "/nonexistent/dataset"}, FileNotFoundError, "no such dataset", None),
]


@pytest.mark.parametrize("name, kwargs, error, pattern, option", LIBRARY_ERRORS)
def test_bad_input_raises_plain_exceptions(name, kwargs, error, pattern, option):
    _, ds = make_reals()
    kwargs = dict(dict(G=FakeG(), dataset_dir=ds), **kwargs)
    with pytest.raises(error, match=pattern) as e:
        metric_main.calc_metric(name, **kwargs)
    assert getattr(e.value, "option", None) == option


def _raised_strings(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            for part in ast.walk(node.exc):
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    yield part.value


def test_library_messages_name_no_flags():
    # The metrics are reached through two front ends with different flag names: only they name flags.
    for path in sorted(glob.glob(os.path.join(REPO, "metrics", "*.py"))):
        with open(path) as f:
            tree = ast.parse(f.read())
        flags = [s for s in _raised_strings(tree) if re.search(r"--[a-z]", s)]
        assert not flags, (path, flags)


def test_real_generator_and_dataset_folder(tmp_path, net3d):
    """With the project's own Generator (demo-tiny), exported SavedModel and dataset folder."""
    from training.configs import build_networks
    from training.network_io import export_generator, load_generator

    data = make_tiny_dataset(str(tmp_path / "data"))
    G, _ = build_networks("demo-tiny")
    export = str(tmp_path / "export")
    export_generator(G, {"shape": [20, 24, 28]}, export)
    kwargs = dict(dataset_dir=data, num=6, batch=4, feature_network=net3d[0], feature_layer="c2")
    first = metric_main.calc_metrics(["fid_3d", "ms_ssim", "mmd_linear_unbiased"], G=load_generator(export), **kwargs)
    assert all(np.isfinite(v) for r in first for v in r.results.values())
    assert first[1].info["kernel_size"] == 5 and first[1].info["num_scales"] == 3
    cached = os.listdir(os.path.join(data, ".cache"))
    assert len(cached) == 2  # 3D features and the real MS-SSIM pairs
    # The same weights as a Generator object give the same numbers, reals now read from the cache.
    second = metric_main.calc_metrics(["fid_3d", "ms_ssim"], G=G, **kwargs)
    assert second[0].results == pytest.approx(first[0].results, rel=1e-4)
    assert second[1].results["ms_ssim_reals"] == first[1].results["ms_ssim_reals"]


def test_mmd_below_eight_volumes():
    _, ds = make_reals()
    with pytest.raises(ValueError, match="at least 8 reals and 8 fakes"):
        metric_main.calc_metric("mmd_linear_batch8", G=FakeG(), dataset_dir=ds, num=6, batch=4)
    r = metric_main.calc_metric("mmd", G=FakeG(), dataset_dir=ds, num=6, batch=4)
    assert set(r.results) == {"mmd_linear_unbiased", "mmd_gaussian_median"}
    assert "at least 8 reals and 8 fakes, got 6 reals and 6 fakes" in r.info["left_out"]["mmd_linear_batch8"]
    table = metric_main.format_table([r]).splitlines()
    # The table says so itself: a row for the metric left out, and a note with the reason.
    assert any(line.split()[:3] == ["mmd", "mmd_linear_batch8", "left"] for line in table), table
    assert "note: mmd: mmd_linear_batch8 left out: needs at least 8 reals and 8 fakes" in table[-1]


@pytest.mark.parametrize("name", ["mmd_gaussian_median", "mmd_linear_unbiased", "mmd"])
def test_one_real_names_the_metric_asked_for(name):
    _, ds = make_reals(n=1)
    want = "mmd_linear_unbiased" if name == "mmd" else name  # mmd: the first variant that cannot be computed
    with pytest.raises(ValueError, match=f"^{want} needs at least 2 reals and 2 fakes; got 1 reals and 4 fakes"):
        metric_main.calc_metric(name, G=FakeG(), dataset_dir=ds, num=4, batch=4)


def test_reals_on_another_grid_are_refused_naming_both_grids(tmp_path):
    G = FakeG()
    G.img_shape = (20, 24, 28)
    _, ds = make_reals()
    with pytest.raises(ValueError, match="the reals are 16x16x16 volumes but the network makes 20x24x28"):
        metric_main.calc_metric("ms_ssim", G=G, dataset_dir=ds, num=4, batch=4)
    assert G.calls == []  # refused before any volume is generated
    data = make_tiny_dataset(str(tmp_path / "data"))
    with pytest.raises(ValueError, match=f"{tmp_path / 'data'}: the reals are 20x24x28 volumes but the network "
                                         "makes 16x16x16"):
        metric_main.calc_metric("mmd_gaussian_median", G=FakeG(), dataset_dir=data, num=4, batch=4)
