"""Reconstruction metrics for the projector: PSNR, 3D SSIM, NRMSE.

Conventions (all three functions):
* ``a`` is the reference (the real scan), ``b`` the reconstruction; NumPy arrays or tensors of equal shape.
* Shapes: [D,H,W] (one volume), [D,H,W,C] (one volume, channels-last) or [N,D,H,W,C] (a batch).
* By default the result is one Python float over everything given. With ``per_volume=True`` the input must be
  a batch [N,D,H,W,C] and the result is a NumPy array [N] (for projecting several targets at once).
* ``data_range`` is the width of the intensity range: 1.0 for [0,1] files, 2.0 for network outputs in [-1,1].
"""

import numpy as np

from dnnlib.errors import InputError
from metrics import ms_ssim as _ms


def _as_float64(x):
    if hasattr(x, "numpy"):
        x = x.numpy()
    return np.asarray(x, dtype=np.float64)


def _pair(a, b, per_volume):
    a, b = _as_float64(a), _as_float64(b)
    if a.shape != b.shape:
        raise InputError(f"reference and reconstruction differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise InputError("empty volumes")
    if per_volume:
        if a.ndim != 5:
            raise InputError(f"per_volume=True needs a batch [N,D,H,W,C]; got shape {a.shape}")
        return a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return a.reshape(1, -1), b.reshape(1, -1)


def _out(values, per_volume):
    return values if per_volume else float(values[0])


def mse(a, b, per_volume=False):
    a, b = _pair(a, b, per_volume)
    return _out(np.mean((a - b) ** 2, axis=1), per_volume)


def psnr(a, b, data_range, per_volume=False):
    """Peak signal-to-noise ratio in dB: 10 log10(data_range^2 / MSE); +inf for identical volumes."""
    if not data_range > 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    err = np.atleast_1d(mse(a, b, per_volume=per_volume))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(float(data_range) ** 2 / err)
    return _out(values, per_volume)


def nrmse(a, b, per_volume=False):
    """Normalised RMSE, Euclidean normalisation (as skimage's default): ||a - b|| / ||a||, a = reference.

    Undefined (+inf, or NaN if also a == b) when the reference is all zeros.
    """
    a, b = _pair(a, b, per_volume)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.sqrt(np.sum((a - b) ** 2, axis=1)) / np.sqrt(np.sum(a * a, axis=1))
    return _out(values, per_volume)


def ssim_3d(a, b, data_range, kernel_size=11, sigma=1.5, k1=_ms.K1, k2=_ms.K2, per_volume=False):
    """3D SSIM, MONAI SSIMMetric convention: Gaussian window (sigma 1.5, `kernel_size` taps) without padding,
    population local statistics, C1=(k1 L)^2, C2=(k2 L)^2, mean over the valid region and the channels.

    A volume smaller than the window on some axis uses the largest odd window that fits.
    Without per_volume, a batch gives the mean over its volumes.
    """
    if not data_range > 0:
        raise InputError(f"data_range must be positive, got {data_range}")
    if per_volume and np.ndim(a) != 5:
        raise InputError(f"per_volume=True needs a batch [N,D,H,W,C]; got shape {np.shape(a)}")
    values = _ms.ssim_per_volume_tf(a, b, data_range, kernel_size=kernel_size, sigma=sigma, k1=k1, k2=k2)
    values = values.numpy().astype(np.float64)
    return values if per_volume else float(np.mean(values))


def reconstruction_metrics(a, b, data_range, per_volume=False):
    """All three at once, as a dict (what the projector writes beside its outputs)."""
    return {
        "psnr": psnr(a, b, data_range, per_volume=per_volume),
        "ssim_3d": ssim_3d(a, b, data_range, per_volume=per_volume),
        "nrmse": nrmse(a, b, per_volume=per_volume),
    }
