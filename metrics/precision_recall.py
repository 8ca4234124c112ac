"""Improved precision and recall (Kynkaanniemi et al. 2019), in any feature space.

Each set defines a manifold: the union of balls around its points, the radius of a ball being the distance to
the point's k-th nearest neighbour in the same set, the point itself excluded (k = 3).
Precision = fraction of fakes inside the real manifold (fidelity); recall = fraction of reals inside the fake
manifold (coverage). Distances in float64, computed in row blocks so N x N never has to fit at once.
"""

import numpy as np


def _pairwise_distances(a, b):
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.clip(d2, 0, None))


def knn_radii(features, k=3, block=1024):
    """Distance from each point to its k-th nearest neighbour, itself excluded."""
    x = np.asarray(features, np.float64)
    if x.shape[0] <= k:
        raise ValueError(f"need more than k={k} samples to define a manifold, got {x.shape[0]}")
    radii = np.empty(x.shape[0])
    for i in range(0, x.shape[0], block):
        d = _pairwise_distances(x[i : i + block], x)
        d[np.arange(d.shape[0]), np.arange(i, i + d.shape[0])] = -np.inf  # never count the point itself
        radii[i : i + block] = np.partition(d, k, axis=1)[:, k]
    return radii


def coverage(manifold, radii, probes, block=1024):
    """Fraction of probes within radius of at least one manifold point."""
    m = np.asarray(manifold, np.float64)
    p = np.asarray(probes, np.float64)
    inside = np.zeros(p.shape[0], bool)
    for i in range(0, p.shape[0], block):
        inside[i : i + block] = (_pairwise_distances(p[i : i + block], m) <= radii[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real_features, fake_features, k=3):
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    precision = coverage(real, knn_radii(real, k), fake)
    recall = coverage(fake, knn_radii(fake, k), real)
    return {"precision": precision, "recall": recall}


# ----------------------------------------------------------------------------------------------------------------
# Metrics (registered in metric_main).


def pr_slices(opts):
    """Precision/recall in the InceptionV3 slice feature space, per axis and averaged."""
    from metrics import fid_slices

    return fid_slices.per_axis(opts, precision_recall)


def pr_3d(opts):
    """Precision/recall in the feature space of the user's 3D network."""
    from metrics import fid_3d

    def compare(real, fake):
        pr = precision_recall(real, fake)
        return {"precision_3d": pr["precision"], "recall_3d": pr["recall"]}

    return fid_3d.on_features_3d(opts, compare)
