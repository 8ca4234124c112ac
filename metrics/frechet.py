"""Frechet distance between Gaussians fitted to features (FID), computed stably in float64.

FD = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2)).

With 2048-d features and a few hundred volumes the covariances are singular, and scipy.linalg.sqrtm of the
non-symmetric product S1 S2 can return complex or non-finite values. We use the symmetric form instead:
tr(sqrt(S1 S2)) = tr(sqrt(A)) with A = S1^(1/2) S2 S1^(1/2), which is symmetric positive semi-definite, so both
square roots come from eigh with tiny negative eigenvalues (round-off) clipped to zero. If that is non-finite
(NaN/inf features), we fall back to sqrtm with an epsilon on the diagonals, as pytorch-fid does.
"""

import numpy as np
import scipy.linalg


def feature_statistics(features):
    """Mean and covariance (unbiased, ddof=1, as pytorch-fid and the TF1 FID) of features [N, d], float64."""
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need features [N >= 2, d] to estimate a covariance, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False, ddof=1).reshape(x.shape[1], x.shape[1])


def _sqrt_psd(s):
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def trace_sqrt_product(s1, s2):
    """tr(sqrt(S1 S2)) for symmetric PSD S1, S2 via the symmetric form (see module docstring)."""
    r = _sqrt_psd(s1)
    a = r @ s2 @ r
    w = np.linalg.eigvalsh((a + a.T) / 2)
    return float(np.sum(np.sqrt(np.clip(w, 0, None))))


def trace_sqrt_product_sqrtm(s1, s2, eps=1e-6):
    """The pytorch-fid way (non-symmetric sqrtm, epsilon on the diagonal if non-finite). For comparison/fallback."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    return float(np.real(np.trace(covmean)))


def frechet_distance(mu1, sigma1, mu2, sigma2):
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"mismatched statistics: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}")
    diff = mu1 - mu2
    try:
        tr_covmean = trace_sqrt_product(s1, s2)
    except np.linalg.LinAlgError:
        tr_covmean = float("nan")
    if not np.isfinite(tr_covmean):
        tr_covmean = trace_sqrt_product_sqrtm(s1, s2)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr_covmean)


def frechet_distance_from_features(real_features, fake_features):
    """FD of the Gaussians fitted to two feature sets [N, d]. With fewer samples than dimensions (the usual case
    for 3D data), exact and much faster through the samples: with centred A [n1, d], B [n2, d],
    S1 = A^T A / (n1-1), S2 = B^T B / (n2-1), the non-zero eigenvalues of S1 S2 are the squared singular values
    of A B^T / sqrt((n1-1)(n2-1)), so tr(sqrt(S1 S2)) is that matrix's nuclear norm: an n1 x n2 SVD instead of
    d x d eigen-decompositions."""
    x = np.asarray(real_features, np.float64)
    y = np.asarray(fake_features, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1] or min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"need feature sets [N >= 2, d] with equal d, got {x.shape} and {y.shape}")
    n1, n2, d = x.shape[0], y.shape[0], x.shape[1]
    if max(n1, n2) >= d:
        return frechet_distance(*feature_statistics(x), *feature_statistics(y))
    a, b = x - x.mean(0), y - y.mean(0)
    c1, c2 = n1 - 1, n2 - 1
    tr_covmean = float(np.sum(np.linalg.svd(a @ b.T, compute_uv=False))) / np.sqrt(c1 * c2)
    diff = x.mean(0) - y.mean(0)
    return float(diff @ diff + np.sum(a * a) / c1 + np.sum(b * b) / c2 - 2.0 * tr_covmean)
