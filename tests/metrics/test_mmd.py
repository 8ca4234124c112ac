"""MMD variants against explicit loops."""

import numpy as np
import pytest

from metrics import mmd


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    return rng.uniform(size=(19, 10)), rng.uniform(size=(17, 10)) * 0.8 + 0.1


def test_linear_batch8_matches_loops(xy):
    x, y = xy
    expected = []
    for b in range(2):  # 19 and 17 volumes -> 2 full batches of 8; the rest is dropped
        xb, yb = x[b * 8 : (b + 1) * 8], y[b * 8 : (b + 1) * 8]
        sxx = sum(xb[i] @ xb[j] for i in range(8) for j in range(8))
        syy = sum(yb[i] @ yb[j] for i in range(8) for j in range(8))
        sxy = sum(xb[i] @ yb[j] for i in range(8) for j in range(8))
        expected.append((sxx + syy - 2 * sxy) / 64)
    value, batches = mmd.mmd_linear_batch(x, y)
    assert batches == 2
    assert value == pytest.approx(np.mean(expected), rel=1e-10)


def test_linear_unbiased_matches_loops(xy):
    x, y = xy
    m, n = len(x), len(y)
    xx = sum(x[i] @ x[j] for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(y[i] @ y[j] for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy_ = sum(x[i] @ y[j] for i in range(m) for j in range(n)) / (m * n)
    assert mmd.mmd_linear_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy_, rel=1e-9)
    # Streaming in pieces gives the same value.
    acc = mmd.LinearUnbiasedMMD()
    for part in (x[:5], x[5:]):
        acc.add_real(part)
    for part in (y[:11], y[11:]):
        acc.add_fake(part)
    assert acc.value() == pytest.approx(xx + yy - 2 * xy_, rel=1e-9)


def test_gaussian_median_matches_loops(xy):
    x, y = xy
    z = np.concatenate([x, y])
    dists = [np.linalg.norm(z[i] - z[j]) for i in range(len(z)) for j in range(i + 1, len(z))]
    sigma = np.median(dists)
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2))  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy_ = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    value, got_sigma = mmd.mmd_gaussian_median(x.astype(np.float32), y.astype(np.float32))
    assert got_sigma == pytest.approx(sigma, rel=1e-5)
    assert value == pytest.approx(xx + yy - 2 * xy_, rel=1e-4, abs=1e-7)


def test_voxel_scale_and_errors():
    v = np.full((2, 3, 3, 3, 1), -1.0)
    np.testing.assert_array_equal(mmd.to_voxel_vectors(v), np.zeros((2, 27)))
    with pytest.raises(ValueError):
        mmd.mmd_linear_batch(np.zeros((7, 3)), np.zeros((7, 3)))
    assert mmd.mmd_gaussian_median(np.ones((3, 4)), np.ones((3, 4))) == (0.0, 0.0)
