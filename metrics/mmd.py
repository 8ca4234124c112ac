"""Maximum mean discrepancy between fakes and reals, in the variants papers report. Each is named plainly:

* ``mmd_linear_batch8`` -- Kwon et al. and the original 3D-StyleGAN: biased linear-kernel MMD^2 per batch of B = 8,
  (sum XX^T + sum YY^T - 2 sum XY^T) / B^2, averaged over batches (here fakes vs reals; the original's shipped
  code compared real-train with real-test). The per-batch value equals |mean(X) - mean(Y)|^2.
* ``mmd_linear_unbiased`` -- MONAI's ``MMDMetric``: linear kernel, diagonals excluded,
  sum_{i!=j} x_i.x_j / (m(m-1)) + sum_{i!=j} y_i.y_j / (n(n-1)) - 2 sum x_i.y_j / (mn), computed here over the
  whole sample (not per batch) from running sums, so any number of volumes fits in memory.
* ``mmd_gaussian_median`` -- as HA-GAN: Gaussian kernel exp(-|x - y|^2 / (2 sigma^2)) with sigma the median of the
  pairwise Euclidean distances between distinct points of the pooled sample (median heuristic), unbiased estimator
  (diagonals excluded). Needs all vectors at once.

Voxel scale: volumes are mapped to [0, 1] (the intensities of the files) before flattening, so values do not
depend on the networks' [-1, 1] convention; linear-kernel values scale with the square of the intensity range.
"""

import numpy as np


def to_voxel_vectors(volumes):
    """[B, D, H, W, C] in [-1, 1] -> [B, D*H*W*C] float64 in [0, 1].

    Not volumes.volume_io.to_unit_range: that one is float32, and the kernel sums over all voxels need float64.
    """
    v = np.asarray(volumes, np.float64)
    return ((v + 1.0) * 0.5).reshape(v.shape[0], -1)


def mmd_linear_batch(real, fake, batch_size=8):
    """Mean over consecutive batches of (sum XX^T + sum YY^T - 2 sum XY^T) / B^2; a trailing partial batch is
    dropped (as the original's fixed-size batches). Returns (value, number of batches)."""
    x, y = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    n = min(x.shape[0], y.shape[0]) // batch_size
    if n < 1:
        raise ValueError(f"mmd_linear_batch{batch_size} needs at least {batch_size} reals and fakes")
    acc = LinearBatchMMD(batch_size)
    for i in range(n):
        s = slice(i * batch_size, (i + 1) * batch_size)
        acc.add(x[s], y[s])
    return acc.value(), n


class LinearBatchMMD:
    """Streaming mmd_linear_batch8: feed equal batches of B reals and B fakes."""

    def __init__(self, batch_size=8):
        self.batch_size = batch_size
        self.values = []

    def add(self, x, y):
        b = self.batch_size
        if x.shape[0] != b or y.shape[0] != b:
            raise ValueError(f"expected batches of {b}, got {x.shape[0]} and {y.shape[0]}")
        # (sum XX^T + sum YY^T - 2 sum XY^T) / B^2 == |sum X - sum Y|^2 / B^2, without the B x B Gram matrices.
        d = x.sum(axis=0) - y.sum(axis=0)
        self.values.append(float(d @ d) / b**2)

    def value(self):
        return float(np.mean(self.values))


class LinearUnbiasedMMD:
    """Streaming mmd_linear_unbiased from running sums: sum_{i!=j} x_i.x_j = |sum x|^2 - sum |x_i|^2."""

    def __init__(self):
        self.sums = [None, None]
        self.sq = [0.0, 0.0]
        self.count = [0, 0]

    def _add(self, k, v):
        v = np.asarray(v, np.float64)
        s = v.sum(axis=0)
        self.sums[k] = s if self.sums[k] is None else self.sums[k] + s
        self.sq[k] += float(np.sum(v * v))
        self.count[k] += v.shape[0]

    def add_real(self, v):
        self._add(0, v)

    def add_fake(self, v):
        self._add(1, v)

    def value(self):
        m, n = self.count
        if m < 2 or n < 2:
            raise ValueError("mmd_linear_unbiased needs at least 2 reals and 2 fakes")
        sx, sy = self.sums
        xx = (sx @ sx - self.sq[0]) / (m * (m - 1))
        yy = (sy @ sy - self.sq[1]) / (n * (n - 1))
        return float(xx + yy - 2.0 * (sx @ sy) / (m * n))


def mmd_linear_unbiased(real, fake):
    acc = LinearUnbiasedMMD()
    acc.add_real(real)
    acc.add_fake(fake)
    return acc.value()


def gram_matrix(z, chunk=1 << 16):
    """z @ z.T in float64, accumulated over column chunks so float32 voxel vectors need no float64 copy."""
    g = np.zeros((z.shape[0], z.shape[0]))
    for j in range(0, z.shape[1], chunk):
        c = np.asarray(z[:, j : j + chunk], np.float64)
        g += c @ c.T
    return g


def _sq_distances_from_gram(g):
    d = np.diag(g)
    return np.clip(d[:, None] + d[None, :] - 2.0 * g, 0, None)


def mmd_gaussian_median(real, fake):
    """Unbiased Gaussian-kernel MMD^2 with the median-heuristic bandwidth. Returns (value, sigma)."""
    m, n = len(real), len(fake)
    if m < 2 or n < 2:
        raise ValueError("mmd_gaussian_median needs at least 2 reals and 2 fakes")
    z = np.concatenate([np.asarray(real).reshape(m, -1), np.asarray(fake).reshape(n, -1)])
    d2 = _sq_distances_from_gram(gram_matrix(z))
    sigma = float(np.sqrt(np.median(d2[np.triu_indices(m + n, k=1)])))  # median distance between distinct points
    if sigma == 0:
        return 0.0, 0.0  # every point identical: the distributions cannot be told apart
    k = np.exp(-d2 / (2.0 * sigma**2))
    kxx, kyy, kxy = k[:m, :m], k[m:, m:], k[:m, m:]
    value = (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
    return float(value - 2.0 * kxy.sum() / (m * n)), sigma


# ----------------------------------------------------------------------------------------------------------------
# Metrics (registered in metric_main). One pass over reals and fakes feeds every voxel variant.

VOXEL_VARIANTS = ("mmd_linear_batch8", "mmd_linear_unbiased", "mmd_gaussian_median")


def _voxel_pass(opts, keep_vectors):
    from metrics import metric_utils

    key = ("mmd_voxel_pass", keep_vectors)
    if key in opts.session:
        return opts.session[key]
    batch8, unbiased = LinearBatchMMD(8), LinearUnbiasedMMD()
    pending = [[], []]  # volumes waiting to fill batches of 8 (reals, fakes)
    kept = [[], []]
    reals, fakes = metric_utils.iterate_reals(opts), metric_utils.iterate_fakes(opts)
    live = [True, True]
    while any(live):
        for side, it in ((0, reals), (1, fakes)):
            if not live[side]:
                continue
            batch = next(it, None)
            if batch is None:
                live[side] = False
                continue
            v = to_voxel_vectors(batch)
            (unbiased.add_real if side == 0 else unbiased.add_fake)(v)
            pending[side].extend(v.astype(np.float32))
            if keep_vectors:
                kept[side].append(v.astype(np.float32))
        while len(pending[0]) >= 8 and len(pending[1]) >= 8:
            batch8.add(np.asarray(pending[0][:8], np.float64), np.asarray(pending[1][:8], np.float64))
            del pending[0][:8], pending[1][:8]
        if not live[0]:
            pending[1].clear()  # no reals left to pair them with
    two_each = min(unbiased.count) >= 2  # the unbiased estimators need two volumes of each set
    out = {"mmd_linear_batch8": batch8.value() if batch8.values else None,
           "mmd_linear_unbiased": unbiased.value() if two_each else None,
           "num_reals": unbiased.count[0], "num_fakes": unbiased.count[1], "batches8": len(batch8.values)}
    if keep_vectors and not two_each:
        out["mmd_gaussian_median"], out["sigma"] = None, None
    elif keep_vectors:
        out["mmd_gaussian_median"], out["sigma"] = mmd_gaussian_median(np.concatenate(kept[0]),
                                                                       np.concatenate(kept[1]))
    opts.session[key] = out
    return out


def _voxel_metric(opts, names, batch8_required=True):
    out = _voxel_pass(opts, keep_vectors="mmd_gaussian_median" in names)
    counts = f"got {out['num_reals']} reals and {out['num_fakes']} fakes"
    for name in names:  # the message names the metric that cannot be computed
        if out[name] is None and name != "mmd_linear_batch8":
            raise ValueError(f"{name} needs at least 2 reals and 2 fakes; {counts}")
    if out["mmd_linear_batch8"] is None and "mmd_linear_batch8" in names:
        if batch8_required:
            raise ValueError(f"mmd_linear_batch8 needs at least 8 reals and 8 fakes; {counts} (evaluate more "
                             "volumes)")
        names = [n for n in names if n != "mmd_linear_batch8"]
        opts.info["left_out"] = {"mmd_linear_batch8": f"needs at least 8 reals and 8 fakes, {counts}"}
    opts.info.update({"space": "voxels in [0,1]", "num_reals": out["num_reals"], "num_fakes": out["num_fakes"]})
    if out["mmd_linear_batch8"] is not None and "mmd_linear_batch8" in names:
        opts.info["batches_of_8"] = out["batches8"]
    if "mmd_gaussian_median" in names:
        opts.info["sigma"] = out["sigma"]
    return {name: out[name] for name in names}


def mmd_metric(opts):
    """All three voxel variants (mmd_linear_batch8 left out, with a note, below 8 volumes)."""
    return _voxel_metric(opts, VOXEL_VARIANTS, batch8_required=False)


def mmd_linear_batch8_metric(opts):
    return _voxel_metric(opts, ["mmd_linear_batch8"])


def mmd_linear_unbiased_metric(opts):
    return _voxel_metric(opts, ["mmd_linear_unbiased"])


def mmd_gaussian_median_metric(opts):
    return _voxel_metric(opts, ["mmd_gaussian_median"])


def mmd_gaussian_median_3d_metric(opts):
    """Gaussian-kernel MMD^2 (median bandwidth) on the features of the user's 3D network, as HA-GAN."""
    from metrics import fid_3d

    def compare(real, fake):
        value, opts.info["sigma"] = mmd_gaussian_median(real, fake)
        return {"mmd_gaussian_median_3d": value}

    return fid_3d.on_features_3d(opts, compare)
