"""Regression of latents on covariates: a planted linear relation recovered, the kernel estimator against its
formula, the closed-form leave-one-out error against refitting, cross-validation, and the refusals."""

import numpy as np
import pytest

from generation.latent_stats import regression
from generation.latent_stats.cohort import check_names, numeric_value

KINDS = {"age": "continuous", "group": "categorical", "sex": "categorical"}


def _cohort(n=12, seed=0):
    rng = np.random.RandomState(seed)
    age = rng.uniform(20, 80, n)
    group = np.arange(n) % 2
    return [{"age": float(a), "group": int(g), "sex": "FM"[i % 2]} for i, (a, g) in enumerate(zip(age, group,
                                                                                                    strict=True))]


def test_linear_recovers_a_planted_relation():
    rows = _cohort()
    rng = np.random.RandomState(1)
    intercept, slope_age, shift_group = rng.randn(3, 16)
    Y = np.stack([intercept + slope_age * r["age"] + shift_group * r["group"] for r in rows])
    design = regression.Design(["age", "group"], KINDS, rows)
    assert design.columns == ["intercept", "age", "group=1"]
    model = regression.fit(design, Y, "linear")
    np.testing.assert_allclose(model.coefficient("age"), slope_age, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.coefficient("group=1"), shift_group, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(model.predict([[50.0, 1.0]])[0], intercept + 50 * slope_age + shift_group, atol=1e-8)
    cv = regression.cross_validate(design, Y, "linear")
    assert cv.folds == len(rows) and cv.mse < 1e-16 * cv.baseline_mse + 1e-20 and cv.r2 == pytest.approx(1.0)


def test_kernel_prediction_is_the_nadaraya_watson_formula():
    rows = _cohort(8)
    Y = np.random.RandomState(2).randn(8, 5)
    design = regression.Design(["age"], KINDS, rows)
    model = regression.fit(design, Y, "kernel", bandwidth=0.7)
    ages = np.array([r["age"] for r in rows])
    k = np.exp(-0.5 * ((41.0 - ages) / ages.std() / 0.7) ** 2)
    np.testing.assert_allclose(model.predict([[41.0]])[0], k @ Y / k.sum(), rtol=1e-10)


def test_closed_form_leave_one_out_matches_refitting():
    rows = _cohort(9)
    Y = np.random.RandomState(3).randn(9, 4)
    design = regression.Design(["age"], KINDS, rows)
    for b in regression.BANDWIDTHS:
        # Refit per fold (the design's scale from all subjects, as the closed form uses it).
        err = 0.0
        for i in range(9):
            keep = np.arange(9) != i
            sub = regression._subset(design, keep)
            err += np.sum((regression.KernelModel(sub, Y[keep], b).predict(design.raw[i : i + 1]) - Y[i]) ** 2)
        assert regression._loo_kernel_mse(design, Y, b) == pytest.approx(err / Y.size, rel=1e-10)


def test_kernel_follows_a_nonlinear_trend_the_line_misses():
    rows = _cohort(40, seed=4)
    ages = np.array([r["age"] for r in rows])
    Y = np.stack([np.sin((ages - 20) / 60 * 2 * np.pi), np.cos((ages - 20) / 60 * 2 * np.pi)], axis=1)
    design = regression.Design(["age"], KINDS, rows)
    lin = regression.cross_validate(design, Y, "linear")
    ker = regression.cross_validate(design, Y, "kernel")
    assert ker.mse < 0.3 * lin.mse
    assert regression.choose_bandwidth(design, Y) in regression.BANDWIDTHS


def test_folds_cover_every_subject_once():
    for n, k in [(7, None), (60, None), (60, 4)]:
        f = regression.folds(n, k)
        assert sorted(np.concatenate(f).tolist()) == list(range(n))
        assert len(f) == (n if n <= 50 and k is None else (k or 10))


def test_refusals():
    rows = _cohort(6)
    with pytest.raises(ValueError, match="covariate 'sex' holds text"):
        regression.Design(["sex"], KINDS, rows, "cohort.json")
    with pytest.raises(ValueError, match="'agee' is not in the cohort"):
        check_names(["agee"], KINDS, "cohort.json")
    with pytest.raises(ValueError, match="finite"):
        numeric_value("age", float("nan"), "cohort.json")
    design = regression.Design(["age", "group"], KINDS, rows)
    assert regression.min_subjects(design, "linear") == 5 and regression.min_subjects(design, "kernel") == 3
    with pytest.raises(ValueError, match="method"):
        regression.fit(design, np.zeros((6, 2)), "spline")
