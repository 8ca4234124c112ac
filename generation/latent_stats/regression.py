"""Latents regressed on covariates: the conditional atlas (Dalca et al. 2019's conditional templates, here a
regression in the generator's latent space).

Rows Y [N, P] (one flattened latent per subject) against covariates. The design: an intercept, each continuous
covariate as its value, each categorical one as 0/1 indicators of its levels after the first (sorted).
- linear: ordinary least squares Y = X B (numpy.linalg.lstsq); needs N >= parameters + 2, so that every
  leave-one-out fit still has more subjects than parameters.
- kernel: Nadaraya-Watson, f(c) = sum_i k(c, c_i) Y_i / sum_i k(c, c_i), Gaussian k on the covariates divided by
  their standard deviation; the bandwidth, unless given, is the one of BANDWIDTHS with the least leave-one-out
  error (chosen once on all subjects, also for the cross-validation). Follows non-linear trends; flattens
  towards the nearest subjects' mean outside the data's range.
Cross-validated error: K-fold (leave-one-out up to 50 subjects) mean squared prediction error per latent
coordinate, beside the same for the training folds' mean latent (the model without covariates).
"""

import numpy as np

from dnnlib import EasyDict
from generation.latent_stats.cohort import numeric_value

METHODS = ("linear", "kernel")
BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)  # in standard deviations of the covariates


class Design:
    """Covariate dicts -> design rows. names: covariates used; kinds: {name: 'continuous' | 'categorical'}."""

    def __init__(self, names, kinds, rows, where="the cohort"):
        self.names = list(names)
        self.kinds = {n: kinds[n] for n in self.names}
        values = {n: [numeric_value(n, r[n], where) for r in rows] for n in self.names}
        self.levels = {n: sorted(set(values[n])) for n in self.names if self.kinds[n] == "categorical"}
        self.columns = ["intercept"]
        for n in self.names:
            if self.kinds[n] == "categorical":
                self.columns += [f"{n}={v:g}" for v in self.levels[n][1:]]
            else:
                self.columns.append(n)
        self.raw = np.asarray([[values[n][i] for n in self.names] for i in range(len(rows))], np.float64)
        self.raw = self.raw.reshape(len(rows), len(self.names))
        self.scale = np.where(self.raw.std(axis=0) > 0, self.raw.std(axis=0), 1.0) if len(rows) else None

    def matrix(self, raw):
        """Design rows [M, columns] for raw covariate values [M, len(names)] (in the order of names)."""
        raw = np.asarray(raw, np.float64).reshape(-1, len(self.names))
        cols = [np.ones(len(raw))]
        for j, n in enumerate(self.names):
            if self.kinds[n] == "categorical":
                cols += [(raw[:, j] == v).astype(np.float64) for v in self.levels[n][1:]]
            else:
                cols.append(raw[:, j])
        return np.stack(cols, axis=1)

    def raw_of(self, values):
        """{name: value} -> [1, len(names)] (every name must be there)."""
        return np.asarray([[float(values[n]) for n in self.names]], np.float64)


def min_subjects(design, method):
    return len(design.columns) + 2 if method == "linear" else 3


class LinearModel:
    def __init__(self, design, Y):
        self.design = design
        self.B, *_ = np.linalg.lstsq(design.matrix(design.raw), np.asarray(Y, np.float64), rcond=None)

    def predict(self, raw):
        return self.design.matrix(raw) @ self.B

    def coefficient(self, column):
        """The latent direction of one design column ('age', 'group=1'): dY per unit (per level change)."""
        return self.B[self.design.columns.index(column)]


class KernelModel:
    def __init__(self, design, Y, bandwidth):
        self.design, self.Y, self.bandwidth = design, np.asarray(Y, np.float64), float(bandwidth)

    def weights(self, raw):
        d = (np.asarray(raw, np.float64).reshape(-1, 1, len(self.design.names)) - self.design.raw[None]) / \
            self.design.scale
        logk = -0.5 * np.sum(d**2, axis=2) / self.bandwidth**2
        k = np.exp(logk - logk.max(axis=1, keepdims=True))  # stable: the nearest subject has weight 1
        return k / k.sum(axis=1, keepdims=True)

    def predict(self, raw):
        return self.weights(raw) @ self.Y


def fit(design, Y, method, bandwidth=None):
    if method == "linear":
        return LinearModel(design, Y)
    if method == "kernel":
        return KernelModel(design, Y, bandwidth if bandwidth is not None else choose_bandwidth(design, Y))
    raise ValueError(f"regression method {method!r}: expected one of {', '.join(METHODS)}")


def _subset(design, idx):
    sub = Design.__new__(Design)
    sub.__dict__.update(design.__dict__)
    sub.raw = design.raw[idx]
    return sub


def folds(n, k=None):
    """Test index sets of K-fold cross-validation in a fixed order (leave-one-out up to 50 subjects)."""
    k = n if k is None and n <= 50 else (10 if k is None else int(k))
    return [np.arange(n)[i::k] for i in range(k)]


def cross_validate(design, Y, method, bandwidth=None, k=None):
    """EasyDict(mse, baseline_mse, r2 = 1 - mse / baseline_mse, folds): per latent coordinate."""
    Y = np.asarray(Y, np.float64)
    n = len(Y)
    err = base = 0.0
    test_sets = folds(n, k)
    if method == "kernel" and bandwidth is None:
        bandwidth = choose_bandwidth(design, Y)  # once, on every subject: the folds then share it
    for test in test_sets:
        train = np.setdiff1d(np.arange(n), test)
        model = fit(_subset(design, train), Y[train], method, bandwidth)
        pred = model.predict(design.raw[test])
        err += float(np.sum((pred - Y[test]) ** 2))
        base += float(np.sum((Y[train].mean(axis=0) - Y[test]) ** 2))
    size = n * Y.shape[1]
    return EasyDict(mse=err / size, baseline_mse=base / size, r2=1.0 - err / base if base > 0 else float("nan"),
                    folds=len(test_sets))


def _loo_kernel_mse(design, Y, bandwidth):
    """Leave-one-out error of the kernel model in closed form: every subject predicted from the others' weights."""
    d = (design.raw[:, None] - design.raw[None]) / design.scale
    logk = -0.5 * np.sum(d**2, axis=2) / bandwidth**2
    np.fill_diagonal(logk, -np.inf)
    k = np.exp(logk - logk.max(axis=1, keepdims=True))
    return float(np.mean(((k / k.sum(axis=1, keepdims=True)) @ Y - Y) ** 2))


def choose_bandwidth(design, Y):
    """The bandwidth of BANDWIDTHS with the least leave-one-out error (ties: the wider)."""
    Y = np.asarray(Y, np.float64)
    errs = [_loo_kernel_mse(design, Y, b) for b in BANDWIDTHS]
    best = min(errs)
    return max(b for b, e in zip(BANDWIDTHS, errs, strict=True) if e <= best * (1 + 1e-9))
