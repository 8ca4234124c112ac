"""The data-copying test of Meehan, Chaudhuri and Dasgupta (AISTATS 2020), statistic C_T.

Three samples: the training set T, a held-out sample P_n of the same population (n points) and generated samples
Q_m (m points). For a point x, d(x) is the distance to its nearest training point. Within one region of space:

* U = #{(q, p) : d(q) > d(p)} + 0.5 #{(q, p) : d(q) = d(p)} over q in Q_m, p in P_n (Mann-Whitney);
* Z_U = (U - mn/2) / sqrt(mn(m + n + 1) / 12), its normal approximation under H0 (the generated points are as far
  from the training set as new points of the population), no tie correction.

Z_U << 0: generated points lie closer to the training set than new data does (data-copying); Z_U >> 0: farther
(underfitting). Copying in one region and underfitting in another cancel globally, so space is cut into cells
(k-means on the training points, as the paper) and

    C_T = sum_{c in kept} (n_c / n) Z_U(c) / sum_{c in kept} (n_c / n)

over the kept cells: those holding at least `min_samples` generated points (the paper's threshold tau on Q_m's
share of a cell, here a count) and at least one held-out point (a cell without one has weight 0 and no Z_U).
"""

import numpy as np
from scipy import stats


def mann_whitney_z(test_d, sample_d):
    """(Z_U, U) of the generated distances against the held-out ones (see module doc)."""
    p, q = np.asarray(test_d, np.float64), np.asarray(sample_d, np.float64)
    n, m = len(p), len(q)
    if n < 1 or m < 1:
        raise ValueError(f"the Mann-Whitney test needs at least one held-out and one generated distance, got {n} "
                         f"and {m}")
    ranks = stats.rankdata(np.concatenate([q, p]))  # average ranks for ties
    u = float(ranks[:m].sum() - m * (m + 1) / 2.0)
    return (u - m * n / 2.0) / np.sqrt(m * n * (m + n + 1) / 12.0), u


def kmeans(x, k, seed=0, iterations=100):
    """Centroids [k, d] of Lloyd's k-means on rows of x, k-means++ start from RandomState(seed)."""
    x = np.asarray(x, np.float64)
    if not 1 <= k <= len(x):
        raise ValueError(f"k-means with {k} cells needs at least {k} points, got {len(x)}")
    rng = np.random.RandomState(seed)
    centroids = [x[rng.randint(len(x))]]
    for _ in range(1, k):
        d2 = np.min(_sq_dist(x, np.array(centroids)), axis=1)
        total = d2.sum()
        pick = rng.choice(len(x), p=d2 / total) if total > 0 else rng.randint(len(x))
        centroids.append(x[pick])
    c = np.array(centroids)
    labels = None
    for _ in range(iterations):
        new = assign_cells(x, c)
        if labels is not None and np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if np.any(labels == j):  # an emptied cell keeps its centroid
                c[j] = x[labels == j].mean(axis=0)
    return c


def _sq_dist(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.clip((a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T, 0.0, None)


def assign_cells(x, centroids):
    """Index of the nearest centroid of each row."""
    return np.argmin(_sq_dist(x, centroids), axis=1)


def ct_statistic(test_d, test_cells, sample_d, sample_cells, num_cells, min_samples=20):
    """C_T and a per-cell table (list of dicts: cell, heldout, samples, z, kept). ValueError when no cell is kept."""
    test_d, sample_d = np.asarray(test_d, np.float64), np.asarray(sample_d, np.float64)
    test_cells, sample_cells = np.asarray(test_cells), np.asarray(sample_cells)
    n = len(test_d)
    table, num, den = [], 0.0, 0.0
    for c in range(num_cells):
        p, q = test_d[test_cells == c], sample_d[sample_cells == c]
        kept = len(q) >= min_samples and len(p) >= 1
        z = mann_whitney_z(p, q)[0] if kept else None
        table.append({"cell": c, "heldout": int(len(p)), "samples": int(len(q)), "z": z, "kept": kept})
        if kept:
            num += len(p) / n * z
            den += len(p) / n
    if den == 0:
        raise ValueError(f"no cell holds both {min_samples} generated volumes and a held-out one (cells: "
                         f"{[(t['heldout'], t['samples']) for t in table]} held-out/generated); evaluate more "
                         "generated volumes or use fewer cells")
    return num / den, table
