"""The memorisation audit: nearest neighbours against brute force, C_T / Mann-Whitney / authenticity against their
definitions computed by loops, known answers (copies flagged, new subjects and noise not), bad input."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage, stats
from scipy.spatial.distance import cdist

from metrics import authenticity, data_copying, memorization, metric_main
from metrics.nearest_neighbours import NearestNeighbours, prepare
from tests.utils import make_tiny_dataset, run_script

SHAPE = (12, 14, 16)


def population(n, seed):
    """n volumes [n, *SHAPE, 1] in [-1, 1] of one population: smooth random fields."""
    rng = np.random.default_rng(seed)
    f = np.stack([ndimage.gaussian_filter(rng.normal(size=SHAPE), 2.0) for _ in range(n)])
    return np.tanh(f / f.std())[..., None].astype(np.float32)


class ArrayG:
    """A 'generator' handing out given volumes in order (cycling), whatever z."""

    z_dim, c_dim = 4, 0

    def __init__(self, volumes):
        self.volumes, self.pos = volumes, 0

    def __call__(self, z, c=None, psi=1.0, noise_mode="random"):
        idx = (self.pos + np.arange(z.shape[0])) % len(self.volumes)
        self.pos += z.shape[0]
        return tf.constant(self.volumes[idx])


def noisy_shifted_copies(train, n, seed=0):
    """Training volumes, each with small noise and a one-voxel shift along a random axis."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        v = np.roll(train[i % len(train)], 1, axis=rng.integers(3))
        out.append(np.clip(v + rng.normal(scale=0.05, size=v.shape), -1, 1))
    return np.asarray(out, np.float32)


def as_dataset(volumes, batch=8):
    return tf.data.Dataset.from_tensor_slices(volumes).batch(batch)


# ----------------------------------------------------------------------------------------------------------------
# The pieces against their definitions.


@pytest.mark.parametrize("distance", ["correlation", "euclidean"])
def test_nearest_neighbours_match_brute_force(distance):
    rng = np.random.default_rng(1)
    ref, q = rng.normal(size=(13, 50)) * rng.uniform(0.5, 3, (13, 1)), rng.normal(size=(9, 50)) + 2.0
    d_full = cdist(q, ref, metric=distance)
    nn = NearestNeighbours(prepare(ref, distance), distance, block=4)  # blocks smaller than the sets
    d, idx = nn.query(prepare(q, distance))
    np.testing.assert_array_equal(idx, d_full.argmin(1))
    np.testing.assert_allclose(d, d_full.min(1), rtol=1e-5, atol=1e-6)
    d_self = cdist(ref, ref, metric=distance) + np.diag(np.full(13, np.inf))
    d, idx = nn.within()
    np.testing.assert_array_equal(idx, d_self.argmin(1))
    np.testing.assert_allclose(d, d_self.min(1), rtol=1e-5, atol=1e-6)


def test_correlation_distance_ignores_intensity_scale_and_offset():
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(5, 40))
    nn = NearestNeighbours(prepare(ref, "correlation"), "correlation")
    d, idx = nn.query(prepare(3.0 * ref[[2]] - 7.0, "correlation"))
    assert idx[0] == 2 and d[0] == pytest.approx(0.0, abs=1e-6)


def test_mann_whitney_matches_definition_and_scipy():
    rng = np.random.default_rng(3)
    p, q = rng.normal(size=11), np.concatenate([rng.normal(size=16) - 0.5, [0.25, 0.25]])
    p[0] = 0.25  # a tie counts one half
    n, m = len(p), len(q)
    u = sum((qi > pj) + 0.5 * (qi == pj) for qi in q for pj in p)
    z, got_u = data_copying.mann_whitney_z(p, q)
    assert got_u == pytest.approx(u)
    assert got_u == pytest.approx(stats.mannwhitneyu(q, p).statistic)
    assert z == pytest.approx((u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12))


def test_ct_is_the_weighted_mean_of_kept_cells():
    rng = np.random.default_rng(4)
    test_d, test_cells = rng.uniform(size=30), np.repeat([0, 1, 2, 3], [10, 12, 8, 0])
    sample_d = np.concatenate([rng.uniform(size=25) * 0.5, rng.uniform(size=30), rng.uniform(size=5),
                               rng.uniform(size=40)])
    sample_cells = np.repeat([0, 1, 2, 3], [25, 30, 5, 40])
    ct, table = data_copying.ct_statistic(test_d, test_cells, sample_d, sample_cells, 4, min_samples=20)
    # Cell 2 has too few samples, cell 3 no held-out volume: only cells 0 and 1 count, weighted 10/30 and 12/30.
    assert [c["kept"] for c in table] == [True, True, False, False]
    z = [data_copying.mann_whitney_z(test_d[test_cells == c], sample_d[sample_cells == c])[0] for c in (0, 1)]
    assert ct == pytest.approx((10 * z[0] + 12 * z[1]) / 22)
    with pytest.raises(ValueError, match="no cell holds both 50 generated"):
        data_copying.ct_statistic(test_d, test_cells, sample_d, sample_cells, 4, min_samples=50)


def test_kmeans_finds_separated_blobs():
    rng = np.random.default_rng(5)
    centres = np.array([[0, 0], [10, 0], [0, 10]], float)
    x = np.concatenate([c + rng.normal(size=(15, 2)) for c in centres])
    labels = data_copying.assign_cells(x, data_copying.kmeans(x, 3, seed=0))
    truth = np.repeat([0, 1, 2], 15)
    assert len(set(zip(labels, truth, strict=True))) == 3  # one cluster per blob, a bijection


def test_authenticity_and_copy_fraction_by_hand():
    # Training points 0, 1, 5 on a line: nearest other training point at 1, 1, 4.
    within = np.array([1.0, 1.0, 4.0])
    # Samples: 0.3 from point 0 (inside its radius 1), 2 from point 2 (inside 4), 1.0 from point 1 (on the radius).
    assert authenticity.authentic_fraction([0.3, 2.0, 1.0], [0, 2, 1], within) == pytest.approx(1 / 3)
    held = np.arange(1.0, 21.0)  # 20 held-out distances: the 5th percentile is 1.95
    frac, t = authenticity.copy_fraction([1.0, 1.9, 2.0, 9.0], held)
    assert t == pytest.approx(np.percentile(held, 5)) and frac == 0.5
    with pytest.raises(ValueError, match="at least 20 held-out"):
        authenticity.copy_threshold(held[:19])


# ----------------------------------------------------------------------------------------------------------------
# Known answers through the registered metric.

TRAIN, HELD = population(40, 10), population(20, 11)


def audit(samples, tmp_path=None, num=60, cells=2):
    return metric_main.calc_metric("memorization", G=ArrayG(samples), dataset_dir=as_dataset(TRAIN),
                                   heldout=as_dataset(HELD), num=num, batch=10, cells=cells, report_dir=tmp_path)


def test_copies_are_flagged(tmp_path):
    copies = noisy_shifted_copies(TRAIN, 60)
    result = audit(copies, tmp_path)
    r = result.results
    # Every copy closer to the training set than every held-out volume: each cell's z at its minimum,
    # -(mn/2) / sqrt(mn(m+n+1)/12) = -sqrt(3mn/(m+n+1)).
    kept = [c for c in result.info["cell_table"] if c["kept"]]
    z_min = [-np.sqrt(3 * c["samples"] * c["heldout"] / (c["samples"] + c["heldout"] + 1)) for c in kept]
    assert r["memorization_ct"] == pytest.approx(np.average(z_min, weights=[c["heldout"] for c in kept]))
    assert r["memorization_ct"] < -4
    assert r["memorization_copy_fraction"] > 0.9
    assert r["memorization_authenticity"] < 0.1
    assert r["memorization_nn_median_samples"] < r["memorization_nn_min_heldout"]
    report = tmp_path / "memorization"
    for name in ("report.txt", "distances.png", "closest_pairs.png", "samples.csv", "heldout.csv", "summary.json"):
        assert (report / name).is_file(), name
    assert "C_T over 2 k-means cells" in (report / "report.txt").read_text()
    # The streamed nearest neighbours (batches of 10) equal a brute force over all pairs.
    d_full = cdist(copies.reshape(60, -1), TRAIN.reshape(40, -1), metric="correlation")
    rows = np.loadtxt(report / "samples.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(rows[:, 1], d_full.argmin(1))
    np.testing.assert_allclose(rows[:, 2], d_full.min(1), rtol=1e-4, atol=1e-6)
    d_mean = cdist(TRAIN.mean(0).reshape(1, -1), TRAIN.reshape(40, -1), metric="correlation").min()
    assert r["memorization_nn_training_mean"] == pytest.approx(d_mean, rel=1e-4)


def test_new_subjects_are_not_flagged():
    r = audit(population(60, 12)).results  # never-seen subjects of the same population, offered as samples
    assert -3 < r["memorization_ct"] < 3
    assert r["memorization_copy_fraction"] < 0.2
    # About as authentic as new subjects are (the held-out reference), far from the copies' 0.
    assert r["memorization_authenticity"] > 0.3
    assert abs(r["memorization_authenticity"] - r["memorization_authenticity_heldout"]) < 0.25


def test_heldout_volumes_as_samples_are_not_flagged():
    r = audit(HELD).results  # the 20 held-out volumes three times over: the same distances as the reference
    assert r["memorization_ct"] == pytest.approx(0.0, abs=1e-9)
    assert r["memorization_copy_fraction"] == pytest.approx(1 / 20)  # only the one below the 5th percentile
    assert r["memorization_authenticity"] == pytest.approx(r["memorization_authenticity_heldout"])


def test_noise_is_not_copying():
    noise = np.random.default_rng(13).uniform(-1, 1, size=(60, *SHAPE, 1)).astype(np.float32)
    r = audit(noise).results
    assert r["memorization_ct"] > 3  # farther from the training set than new subjects: underfitting, not copying
    assert r["memorization_copy_fraction"] == 0
    assert r["memorization_authenticity"] == 1


# ----------------------------------------------------------------------------------------------------------------
# Bad input.


def test_library_errors_name_the_problem():
    copies = noisy_shifted_copies(TRAIN, 60)
    other_grid = population(20, 14)[:, :-2]
    with pytest.raises(ValueError, match=r"held-out volumes are \[10, 14, 16, 1\].*network makes \[12, 14, 16, 1\]"):
        metric_main.calc_metric("memorization", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN),
                                heldout=as_dataset(other_grid), num=60)
    with pytest.raises(ValueError, match=r"training volumes are \[10, 14, 16, 1\].*network makes"):
        metric_main.calc_metric("memorization", G=ArrayG(copies), dataset_dir=as_dataset(other_grid),
                                heldout=as_dataset(HELD), num=60)
    with pytest.raises(ValueError, match="at least 20 held-out volumes, got 12"):
        metric_main.calc_metric("memorization", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN),
                                heldout=as_dataset(HELD[:12]), num=60)
    with pytest.raises(ValueError, match="the held-out split holds no volumes"):
        metric_main.calc_metric("memorization", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN),
                                heldout=as_dataset(HELD[:0]), num=60)
    with pytest.raises(ValueError, match="at least 20 generated volumes"):
        metric_main.calc_metric("memorization", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN),
                                heldout=as_dataset(HELD), num=10)
    with pytest.raises(metric_main.MetricOptionError, match="held-out") as e:
        metric_main.calc_metric("memorization", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN), num=60)
    assert e.value.option == "heldout"


CLI_ERRORS = [  # (held-out dataset: shape, volumes; substrings of the one error line)
    pytest.param(((20, 24, 28), 20), ["held-out volumes are 20x24x28", "same grid"], id="heldout-other-grid"),
    pytest.param(((40, 48, 56), 0), ["held/dataset.json", "no shards"], id="empty-heldout"),
    pytest.param(None, ["--heldout", "give the held-out dataset"], id="no-heldout"),
]


@pytest.mark.parametrize("heldout, expected", CLI_ERRORS)
def test_cli_bad_input_one_error_line_exit_2(tmp_path, heldout, expected):
    train = make_tiny_dataset(tmp_path / "train", num=4, shape=(40, 48, 56), spacing=4.0)
    args = ["--network=demo", f"--data={train}", "--metrics=memorization", "--num=20", "--batch=10"]
    if heldout is not None:
        shape, num = heldout
        held = make_tiny_dataset(tmp_path / "held", num=num, shape=shape, spacing=4.0 if shape[0] == 40 else 8.0)
        args.append(f"--heldout={held}")
    p = run_script("run_metrics.py", *args, timeout=300)
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1, p.stderr
    for text in expected:
        assert text in err[0], err[0]


def test_default_cells():
    assert memorization.default_cells(180, 20) == 2
    assert memorization.default_cells(500, 400) == 10
    assert memorization.default_cells(3, 20) == 1


def test_3d_feature_space_matches_brute_force(tmp_path):
    import keras

    keras.utils.set_random_seed(0)  # the feature network's weights: fixed seed, the same distances every run
    inp = keras.Input((*SHAPE, 1))
    h = keras.layers.Conv3D(6, 3, strides=2, activation="tanh")(inp)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling3D()(h))
    model.export(str(tmp_path / "sm"), verbose=False)
    copies = noisy_shifted_copies(TRAIN, 40)
    result = metric_main.calc_metric("memorization_3d", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN),
                                     heldout=as_dataset(HELD), num=40, batch=10, cells=1,
                                     feature_network=str(tmp_path / "sm"), report_dir=tmp_path / "report")
    f_train, f_copies = model(TRAIN).numpy(), model(copies).numpy()
    d_full = cdist(f_copies, f_train)
    rows = np.loadtxt(tmp_path / "report" / "memorization_3d" / "samples.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(rows[:, 1], d_full.argmin(1))
    # Features of batches of 10 (the metric) and of 40 (here) differ by float32 rounding, about 1e-6 of their size:
    # a larger share of the smallest distances (a noisy copy next to its source) than rtol alone allows.
    np.testing.assert_allclose(rows[:, 2], d_full.min(1), rtol=1e-3, atol=2e-5)
    assert result.info["distance"] == "Euclidean"
    assert result.results["memorization_3d_nn_min_heldout"] == pytest.approx(
        cdist(model(HELD).numpy(), f_train).min(), rel=1e-3)


def _pool2(s):
    """A tiny stand-in slice network: 2x2 mean pooling of grey slices [B, h, w] -> [B, (h//2)*(w//2)]."""
    s = np.asarray(s, np.float32)
    b, h, w = s.shape[0], s.shape[1] // 2 * 2, s.shape[2] // 2 * 2
    return s[:, :h, :w].reshape(b, h // 2, 2, w // 2, 2).mean(axis=(2, 4)).reshape(b, -1)


def test_slice_feature_space_matches_brute_force(tmp_path, monkeypatch):
    """memorization_slices: the middle slice along each axis through the slice network, concatenated."""
    from metrics import feature_networks

    tiny = feature_networks.FeatureNetwork(_pool2, "pool2", False, "2x2 pooling (test)")
    monkeypatch.setattr(feature_networks, "slice_network", lambda *a, **k: tiny)
    copies = noisy_shifted_copies(TRAIN, 20)
    result = metric_main.calc_metric("memorization_slices", G=ArrayG(copies), dataset_dir=as_dataset(TRAIN),
                                     heldout=as_dataset(HELD), num=20, batch=10, cells=1, feature_weights="random",
                                     report_dir=tmp_path)

    def features(v):
        return np.concatenate([_pool2(np.take(v[..., 0], v.shape[a + 1] // 2, axis=a + 1)) for a in range(3)], 1)

    d_full = cdist(features(copies), features(TRAIN))
    rows = np.loadtxt(tmp_path / "memorization_slices" / "samples.csv", delimiter=",", skiprows=1)
    np.testing.assert_array_equal(rows[:, 1], d_full.argmin(1))
    np.testing.assert_allclose(rows[:, 2], d_full.min(1), rtol=1e-4, atol=1e-6)
    assert result.info["distance"] == "Euclidean" and result.info["comparable"] is False
