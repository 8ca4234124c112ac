"""KID against a direct O(n^2) formula written with explicit loops."""

import numpy as np
import pytest

from metrics import kid


def _direct_unbiased_poly_mmd(x, y):
    m, d = len(x), x.shape[1]
    k = lambda a, b: (float(np.dot(a, b)) / d + 1) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_single_full_subset_equals_direct_formula():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(15, 6)), rng.normal(size=(15, 6)) + 0.3
    # One subset of all points: a permutation, which leaves the statistic unchanged.
    got = kid.kernel_inception_distance(real, fake, num_subsets=1, max_subset_size=1000)
    assert got == pytest.approx(_direct_unbiased_poly_mmd(fake, real), rel=1e-10)


def test_subsets_unbiased_near_zero_and_positive_for_shift():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    same = kid.kernel_inception_distance(a, b, num_subsets=20, max_subset_size=100)
    shifted = kid.kernel_inception_distance(a, b + 1.0, num_subsets=20, max_subset_size=100)
    assert abs(same) < 0.05 * shifted
    assert shifted > 0


BAD_FEATURE_CASES = [((5, 3), (5, 4), "equal d"), ((1, 3), (5, 3), "at least 2")]  # (real, fake shapes, message)


@pytest.mark.parametrize("real_shape, fake_shape, pattern", BAD_FEATURE_CASES)
def test_rejects_bad_features(real_shape, fake_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        kid.kernel_inception_distance(np.zeros(real_shape), np.zeros(fake_shape))
