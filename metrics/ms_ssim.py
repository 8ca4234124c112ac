"""3D SSIM and MS-SSIM: the MONAI convention, and the legacy formula of Kwon et al.

Two variants, named plainly because their numbers differ:

* ``ms_ssim`` (MONAI ``MultiScaleSSIMMetric`` convention): Gaussian window (sigma 1.5, ``kernel_size`` taps,
  default 11) applied WITHOUT padding (valid region only), C1 = (0.01 L)^2, C2 = (0.03 L)^2, 5 scales with
  weights [0.0448, 0.2856, 0.3001, 0.2363, 0.1333], 2x average pooling (floor) between scales, a ReLU on each
  per-volume term, result prod_{j<M} cs_j^w_j * ssim_M^w_M.
  MONAI refuses a volume when ``size // max(1, scales - 1)**2 <= kernel_size - 1`` for any axis (at 80x96x112
  that refuses kernel 11). Our rule instead: keep the requested kernel if it passes that test, else use the
  largest odd kernel (>= 3) that passes; if even 3 fails, drop scales from the coarse end until it passes (the
  remaining weights renormalised to sum 1, so values keep the scale of SSIM). The kernel size and number of scales
  used are reported with every result: values are comparable only at equal kernel size and scales.

* ``ms_ssim_legacy_kwon``: the formula of Kwon et al. (cyclomon/3dbraingen) that the original 3D-StyleGAN and
  later papers reused, kept so published numbers can be compared. The window is scipy's
  ``gaussian_filter(sigma=1.5, truncate=4)`` (13 taps, 'reflect' padding, same-size output); no ReLU; and the
  last-scale SSIM term is multiplied into each of the other four factors, i.e.
  prod_{j<M} (cs_j^w_j * ssim_M^w_M) = prod_{j<M} cs_j^w_j * ssim_M^((M-1) w_M). A negative cs term gives NaN,
  as in the original.

The window is separable: each 3D filtering is three 1-D passes, each a product with a banded matrix (which also
absorbs the legacy variant's reflect padding).
"""

import functools
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from volumes.volume_io import to_unit_range


class MSSSIMResult(NamedTuple):
    values: np.ndarray  # [N] one value per pair of volumes
    kernel_size: int  # the window actually used (see the kernel-size rule)
    num_scales: int


MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
K1 = 0.01
K2 = 0.03


# ----------------------------------------------------------------------------------------------------------------
# Windows and separable filtering.


def gaussian_window(kernel_size, sigma=1.5):
    """MONAI's 1-D window: taps at offsets (1-k)/2 .. (k-1)/2, exp(-d^2 / 2 sigma^2), normalised to sum 1."""
    d = np.arange(kernel_size, dtype=np.float64) - (kernel_size - 1) / 2
    g = np.exp(-0.5 * (d / sigma) ** 2)
    return g / g.sum()


def scipy_gaussian_window(sigma=1.5, truncate=4.0):
    """scipy.ndimage.gaussian_filter's 1-D window: radius int(truncate * sigma + 0.5) (13 taps at sigma 1.5)."""
    return gaussian_window(2 * int(truncate * sigma + 0.5) + 1, sigma)


def _reflect_index(i, n):
    # scipy 'reflect' (d c b a | a b c d | d c b a): period 2n, mirrored about the edges, edge sample repeated.
    i = np.mod(i, 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


@functools.lru_cache(maxsize=64)
def _filter_matrix(n, taps, mode):
    """[n_out, n] float32 NumPy matrix M with M @ v = v filtered by `taps` (a tuple) along one axis of length n.
    (NumPy, not a tensor: a cached tensor made while tracing would belong to that graph.)"""
    k = len(taps)
    if mode == "valid":
        if n < k:
            raise ValueError(f"axis of length {n} is shorter than the window ({k} taps)")
        m = np.zeros((n - k + 1, n))
        for o in range(n - k + 1):
            m[o, o : o + k] = taps
    elif mode == "reflect":  # the mirrored samples are folded into the matrix
        m = np.zeros((n, n))
        for o in range(n):
            np.add.at(m[o], _reflect_index(np.arange(o - k // 2, o - k // 2 + k), n), taps)
    else:
        raise ValueError(f"unknown filter mode {mode!r}")
    return m.astype(np.float32)


def filter_3d(x, taps, mode):
    """Filter x [B, D, H, W] separably with 1-D `taps` along the three spatial axes.

    mode 'valid': no padding, each axis shrinks by len(taps) - 1 (MONAI). mode 'reflect': scipy's 'reflect'
    padding (any width, even wider than the axis), same-size output (scipy.ndimage.gaussian_filter).
    Each pass is a product with a banded matrix, whose cost does not grow with the window (13 taps for the legacy
    variant), unlike a conv3d or a sum of shifted slices.
    """
    taps = tuple(float(t) for t in taps)
    md, mh, mw = (tf.constant(_filter_matrix(int(n), taps, mode)) for n in x.shape[1:])
    x = tf.einsum("bdhw,ow->bdho", x, mw)
    x = tf.einsum("bdhw,oh->bdow", x, mh)
    return tf.einsum("bdhw,od->bohw", x, md)


# ----------------------------------------------------------------------------------------------------------------
# Core SSIM on [B, D, H, W] float32 tensors (channels folded into the batch by the callers).


def ssim_and_cs_maps(x, y, taps, mode, data_range, k1=K1, k2=K2):
    """SSIM and contrast-sensitivity maps, population (biased) local statistics as MONAI and Kwon et al."""
    c1 = (k1 * data_range) ** 2
    c2 = (k2 * data_range) ** 2
    b = tf.shape(x)[0]
    # One filtering pass over the five stacked maps instead of five passes.
    stats = filter_3d(tf.concat([x, y, x * x, y * y, x * y], axis=0), taps, mode)
    mu_x, mu_y, mu_xx, mu_yy, mu_xy = (stats[i * b : (i + 1) * b] for i in range(5))
    sigma_x = mu_xx - mu_x * mu_x
    sigma_y = mu_yy - mu_y * mu_y
    sigma_xy = mu_xy - mu_x * mu_y
    cs = (2.0 * sigma_xy + c2) / (sigma_x + sigma_y + c2)
    ssim = (2.0 * mu_x * mu_y + c1) / (mu_x * mu_x + mu_y * mu_y + c1) * cs
    return ssim, cs


def to_volume_batch(x):
    """Accept [D,H,W], [D,H,W,C] or [N,D,H,W,C] (NumPy or tensor); return float32 [N, C, D, H, W]."""
    x = tf.convert_to_tensor(x)
    x = tf.cast(x, tf.float32)
    if x.shape.rank == 3:
        x = x[None, ..., None]
    elif x.shape.rank == 4:
        x = x[None]
    elif x.shape.rank != 5:
        raise ValueError(f"expected a volume [D,H,W], [D,H,W,C] or a batch [N,D,H,W,C]; got shape {x.shape}")
    return tf.transpose(x, [0, 4, 1, 2, 3])


def _fold(x):
    # [N, C, D, H, W] -> [N*C, D, H, W]
    s = x.shape
    return tf.reshape(x, [s[0] * s[1], s[2], s[3], s[4]])


def _per_volume_mean(m, n):
    return tf.reduce_mean(tf.reshape(m, [n, -1]), axis=1)


def _avg_pool2(x):
    # x [B, D, H, W]; 2x average pooling with floor, as torch avg_pool3d(kernel_size=2).
    return tf.nn.avg_pool3d(x[..., None], ksize=2, strides=2, padding="VALID")[..., 0]


# ----------------------------------------------------------------------------------------------------------------
# Kernel-size rule (MONAI's test, then our fallback for small volumes).


def monai_accepts(shape, kernel_size, num_scales):
    """MONAI's size test: every axis must satisfy size // max(1, scales-1)**2 > kernel_size - 1."""
    div = max(1, num_scales - 1) ** 2
    return all(s // div > kernel_size - 1 for s in shape)


def fit_kernel_and_scales(shape, kernel_size=11, num_scales=len(MS_SSIM_WEIGHTS)):
    """Return (kernel_size, num_scales) actually used for a volume of spatial `shape` (see module docstring)."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
    for scales in range(num_scales, 0, -1):
        if monai_accepts(shape, kernel_size, scales):
            return kernel_size, scales
        div = max(1, scales - 1) ** 2
        k = min(kernel_size, min(shape) // div)  # largest k with size // div > k - 1
        k = k if k % 2 == 1 else k - 1
        if k >= 3 and monai_accepts(shape, k, scales):
            return k, scales
    raise ValueError(f"volume of shape {tuple(shape)} is too small for SSIM (needs every axis >= 3)")


# ----------------------------------------------------------------------------------------------------------------
# Public API. Inputs: [D,H,W], [D,H,W,C] or [N,D,H,W,C]; NumPy or tensors. Outputs: NumPy [N] per volume
# (channels averaged, as MONAI), plus the kernel size and scales used.


def single_scale_kernel_size(spatial, kernel_size=11):
    """The window of single-scale SSIM: kernel_size, or the largest odd size that fits the smallest axis."""
    k = min(kernel_size, min(spatial))
    k = k if k % 2 == 1 else k - 1
    if k < 1:
        raise ValueError(f"volume of shape {tuple(spatial)} is empty")
    return k


def ssim_per_volume_tf(a, b, data_range, kernel_size=11, sigma=1.5, k1=K1, k2=K2):
    """Single-scale 3D SSIM as a differentiable float32 tensor [N] (channels averaged); the projector's loss term.

    MONAI convention (valid Gaussian window); the window shrinks to single_scale_kernel_size when a volume is small.
    """
    xa, xb = to_volume_batch(a), to_volume_batch(b)
    _check_same_shape(xa, xb)
    k = single_scale_kernel_size(xa.shape[2:], kernel_size)
    ssim, _ = ssim_and_cs_maps(_fold(xa), _fold(xb), gaussian_window(k, sigma), "valid", float(data_range), k1, k2)
    return _per_volume_mean(ssim, xa.shape[0])


def ms_ssim(a, b, data_range, kernel_size=11, sigma=1.5, weights=MS_SSIM_WEIGHTS, k1=K1, k2=K2):
    """MS-SSIM, MONAI convention. Returns MSSSIMResult(values=np [N], kernel_size, num_scales)."""
    xa, xb = to_volume_batch(a), to_volume_batch(b)
    _check_same_shape(xa, xb)
    spatial = tuple(xa.shape[2:])
    k, scales = fit_kernel_and_scales(spatial, kernel_size, len(weights))
    w = tuple(weights) if scales == len(weights) else tuple(np.asarray(weights[:scales]) / np.sum(weights[:scales]))
    static = (float(data_range), k, float(sigma), w, float(k1), float(k2))
    values = _ms_ssim_core(*static, xa, xb)
    return MSSSIMResult(values.numpy().astype(np.float64), k, scales)


def _ms_ssim_core(data_range, kernel_size, sigma, weights, k1, k2, xa, xb):
    n = xa.shape[0]
    x, y = _fold(xa), _fold(xb)
    taps = gaussian_window(kernel_size, sigma)
    terms = []
    for j in range(len(weights)):
        ssim, cs = ssim_and_cs_maps(x, y, taps, "valid", data_range, k1, k2)
        last = j == len(weights) - 1
        terms.append(tf.nn.relu(_per_volume_mean(ssim if last else cs, n)))
        if not last:
            x, y = _avg_pool2(x), _avg_pool2(y)
    w = tf.constant(weights, tf.float32)[:, None]
    return tf.reduce_prod(tf.stack(terms) ** w, axis=0)


def ms_ssim_legacy_kwon(a, b, data_range, sigma=1.5, truncate=4.0, weights=MS_SSIM_WEIGHTS, k1=K1, k2=K2):
    """Legacy MS-SSIM of Kwon et al. / the original 3D-StyleGAN (see module docstring). Returns np [N]."""
    xa, xb = to_volume_batch(a), to_volume_batch(b)
    _check_same_shape(xa, xb)
    if min(xa.shape[2:]) < 2 ** (len(weights) - 1):
        raise ValueError(f"volume of shape {tuple(xa.shape[2:])} is too small for {len(weights)} scales")
    static = (float(data_range), float(sigma), float(truncate), tuple(weights), float(k1), float(k2))
    values = _legacy_core(*static, xa, xb)
    return values.numpy().astype(np.float64)


def _legacy_core(data_range, sigma, truncate, weights, k1, k2, xa, xb):
    n = xa.shape[0]
    x, y = _fold(xa), _fold(xb)
    taps = scipy_gaussian_window(sigma, truncate)
    cs_terms, ssim_terms = [], []
    for j in range(len(weights)):
        ssim, cs = ssim_and_cs_maps(x, y, taps, "reflect", data_range, k1, k2)
        cs_terms.append(_per_volume_mean(cs, n) ** weights[j])
        ssim_terms.append(_per_volume_mean(ssim, n) ** weights[j])
        if j < len(weights) - 1:
            x, y = _avg_pool2(x), _avg_pool2(y)
    # The defect kept on purpose: prod(pow1[:-1] * pow2[-1]) puts the last SSIM term into every factor.
    factors = tf.stack(cs_terms[:-1]) * ssim_terms[-1][None]
    return tf.reduce_prod(factors, axis=0)


def _check_same_shape(xa, xb):
    if xa.shape != xb.shape:
        raise ValueError(f"volumes differ in shape: {tuple(xa.shape)} vs {tuple(xb.shape)} (as [N,C,D,H,W])")


# ----------------------------------------------------------------------------------------------------------------
# Metrics (registered in metric_main): mean MS-SSIM over random pairs of fakes (diversity; lower = more diverse)
# and, for reference, of reals. Volumes are mapped to [0, 1] (file intensities) with data_range 1, as the original.


def pair_values(batches, fn, pairs_per_call=2):
    """Pair consecutive volumes of a stream (0-1, 2-3, ...), apply fn(a, b) -> [pairs] to fixed-size chunks of
    pairs (the last chunk padded by repetition, so a compiled fn sees one shape), return all values in order."""

    p = max(1, int(pairs_per_call))
    pending, values = [], []

    def call(vols):
        a, b = vols[0::2], vols[1::2]
        m = a.shape[0]
        if m < p:
            a = np.concatenate([a, np.repeat(a[-1:], p - m, axis=0)])
            b = np.concatenate([b, np.repeat(b[-1:], p - m, axis=0)])
        values.append(np.asarray(fn(a, b))[:m])

    for batch in batches:
        pending.extend(to_unit_range(batch))
        while len(pending) >= 2 * p:
            call(np.stack(pending[: 2 * p]))
            del pending[: 2 * p]
    if len(pending) >= 2:
        call(np.stack(pending[: len(pending) // 2 * 2]))
    if not values:
        raise ValueError("MS-SSIM needs at least 2 volumes")
    return np.concatenate(values)


def _pairs_metric(opts, name, fn, extra):
    from metrics import metric_utils

    real = metric_utils.cached_reals(
        opts, name + "_reals", dict(extra, seed=opts.seed),
        lambda: {"values": pair_values(metric_utils.iterate_reals(opts, shuffle=True), fn, opts.batch // 2)})["values"]
    fake = pair_values(metric_utils.iterate_fakes(opts), fn, opts.batch // 2)
    opts.info.update({"pairs_fakes": int(fake.size), "pairs_reals": int(real.size), "data_range": "[0,1]"})
    if not (np.isfinite(fake).all() and np.isfinite(real).all()):
        # Only the legacy formula can give NaN (a negative cs term to a fractional power): average the others
        # and say how many pairs were left out.
        opts.info.update({"nan_pairs_fakes": int(np.isnan(fake).sum()), "nan_pairs_reals": int(np.isnan(real).sum())})
    return {f"{name}_fakes": _nanmean(fake), f"{name}_reals": _nanmean(real)}


def _nanmean(v):
    v = v[np.isfinite(v)]
    return float(np.mean(v)) if v.size else float("nan")


def ms_ssim_metric(opts):
    shape = None

    def fn(a, b):
        nonlocal shape
        r = ms_ssim(a, b, data_range=1.0, kernel_size=opts.kernel_size)
        shape = (r.kernel_size, r.num_scales)
        return r.values

    results = _pairs_metric(opts, "ms_ssim", fn, {"kernel_size": opts.kernel_size})
    opts.info.update({"kernel_size": shape[0], "num_scales": shape[1], "convention": "MONAI MultiScaleSSIMMetric"})
    return results


def ms_ssim_legacy_kwon_metric(opts):
    fn = lambda a, b: ms_ssim_legacy_kwon(a, b, data_range=1.0)  # noqa: E731
    results = _pairs_metric(opts, "ms_ssim_legacy_kwon", fn, {"sigma": 1.5, "truncate": 4.0})
    opts.info.update({"convention": "legacy Kwon et al. (scipy reflect window, last SSIM term in every factor)"})
    return results
