"""Frechet distance against closed forms and a direct computation."""

import numpy as np
import pytest
import scipy.linalg

from metrics import frechet


def test_diagonal_covariances_closed_form():
    rng = np.random.default_rng(0)
    d = 16
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    a, b = rng.uniform(0.1, 3, size=d), rng.uniform(0.1, 3, size=d)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-10)


def test_commuting_covariances_closed_form():
    rng = np.random.default_rng(1)
    d = 12
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    a, b = rng.uniform(0.0, 2, size=d), rng.uniform(0.0, 2, size=d)
    a[:3] = 0  # singular, still exact
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = rng.normal(size=d)
    expected = np.sum(mu**2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet.frechet_distance(mu, s1, np.zeros(d), s2) == pytest.approx(expected, rel=1e-8, abs=1e-9)


def test_matches_direct_sqrtm_on_general_covariances():
    rng = np.random.default_rng(2)
    d = 20
    x, y = rng.normal(size=(200, d)), rng.normal(size=(150, d)) @ rng.normal(size=(d, d)) * 0.5 + 1
    mu1, s1 = x.mean(0), np.cov(x, rowvar=False)
    mu2, s2 = y.mean(0), np.cov(y, rowvar=False)
    direct = np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2) - 2 * np.real(np.trace(scipy.linalg.sqrtm(s1 @ s2)))
    assert frechet.frechet_distance_from_features(x, y) == pytest.approx(direct, rel=1e-8)


def test_singular_covariances_are_finite():
    # N < d: rank-deficient covariances, the situation of 2048-d features and a few hundred volumes.
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(30, 256)), rng.normal(size=(30, 256)) + 0.5
    fd = frechet.frechet_distance_from_features(x, y)
    assert np.isfinite(fd) and fd > 0
    same = frechet.frechet_distance_from_features(x, x)
    assert abs(same) < 1e-6 * np.trace(np.cov(x, rowvar=False))


def test_statistics_and_errors():
    x = np.random.default_rng(4).normal(size=(10, 3))
    mu, s = frechet.feature_statistics(x)
    np.testing.assert_allclose(mu, x.mean(0))
    np.testing.assert_allclose(s, np.cov(x.T, ddof=1))
    with pytest.raises(ValueError):
        frechet.feature_statistics(x[:1])
    with pytest.raises(ValueError):
        frechet.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_sample_route_equals_covariance_route():
    # Fewer samples than dimensions: the SVD-of-samples route must equal the d x d route on the statistics.
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(25, 300)), rng.normal(size=(40, 300)) * 1.3 + 0.2
    fast = frechet.frechet_distance_from_features(x, y)
    slow = frechet.frechet_distance(*frechet.feature_statistics(x), *frechet.feature_statistics(y))
    # The d x d route takes sqrt of round-off-level eigenvalues of the singular product, hence the tolerance.
    assert fast == pytest.approx(slow, rel=1e-7)
