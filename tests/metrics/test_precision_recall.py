"""Precision/recall (Kynkaanniemi et al., k=3) against brute-force loops."""

import numpy as np
import pytest

from metrics import precision_recall as pr


def _brute(real, fake, k=3):
    def radii(s):
        return [sorted(np.linalg.norm(s[i] - s[j]) for j in range(len(s)) if j != i)[k - 1] for i in range(len(s))]

    rr, rf = radii(real), radii(fake)
    prec = np.mean([any(np.linalg.norm(f - real[i]) <= rr[i] for i in range(len(real))) for f in fake])
    rec = np.mean([any(np.linalg.norm(r - fake[i]) <= rf[i] for i in range(len(fake))) for r in real])
    return prec, rec


def test_matches_brute_force():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(40, 5)), rng.normal(size=(35, 5)) * 1.5 + 0.7
    got = pr.precision_recall(real, fake)
    p, r = _brute(real, fake)
    assert got["precision"] == pytest.approx(p) and got["recall"] == pytest.approx(r)
    assert 0 < got["precision"] < 1 and 0 < got["recall"] < 1


def test_blocks_and_extremes():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 4))
    np.testing.assert_allclose(pr.knn_radii(x, block=7), pr.knn_radii(x, block=1000))
    assert pr.precision_recall(x, x) == {"precision": 1.0, "recall": 1.0}
    assert pr.precision_recall(x, x + 100.0) == {"precision": 0.0, "recall": 0.0}
    with pytest.raises(ValueError):
        pr.knn_radii(x[:3])
