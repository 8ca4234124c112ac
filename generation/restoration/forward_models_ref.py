"""NumPy reference of the forward models in forward_models.py, written from their definitions with explicit loops
(one thick slice and one network slice at a time), for the tests.

Volumes are [N,D,H,W,C] or [D,H,W]; `axis` counts spatial axes. Float64 throughout.
"""

import math

import numpy as np


def axis_first(x, axis):
    """x as float64 with spatial axis `axis` moved first, and the array axis it came from."""
    x = np.asarray(x, np.float64)
    ax = axis + 1 if x.ndim == 5 else axis
    return np.moveaxis(x, ax, 0), ax


def default_count(length, factor, start):
    """Number of thick slices whose box [c - f/2, c + f/2] (c = start + j f) stays within [-0.5, length - 0.5]."""
    m = 0
    while start + m * factor + factor / 2 <= length - 0.5 + 1e-6:
        m += 1
    return m


def box_weight(i, centre, factor):
    """Length of network voxel i's extent [i - 0.5, i + 0.5] inside the slice box, divided by the thickness."""
    lo, hi = centre - factor / 2, centre + factor / 2
    return max(0.0, min(hi, i + 0.5) - max(lo, i - 0.5)) / factor


def gaussian_weight(i, centre, fwhm, truncate):
    sigma = fwhm / (2 * math.sqrt(2 * math.log(2)))
    d = i - centre
    if abs(d) > truncate * sigma + 1e-9:
        return 0.0
    return math.exp(-d * d / (2 * sigma * sigma))


def thicken_ref(x, axis, factor, profile="box", fwhm_vox=None, start=None, count=None, truncate=3.0):
    """Thick slice j = (sum_i w_ij * slice_i) / (sum_i w_ij), centres start + j * factor."""
    xs, ax = axis_first(x, axis)
    length = xs.shape[0]
    start = (factor - 1) / 2 if start is None else start
    count = default_count(length, factor, start) if count is None else count
    fwhm = factor if fwhm_vox is None else fwhm_vox
    out = np.zeros((count,) + xs.shape[1:])
    for j in range(count):
        c = start + j * factor
        total = 0.0
        for i in range(length):
            w = box_weight(i, c, factor) if profile == "box" else gaussian_weight(i, c, fwhm, truncate)
            if w > 0:
                out[j] += w * xs[i]
                total += w
        out[j] /= total
    return np.moveaxis(out, 0, ax)


def block_mean_ref(x, axis, factor):
    """Integer factor, default start: the mean of each complete block of `factor` slices (reshape, not weights)."""
    xs, ax = axis_first(x, axis)
    m = xs.shape[0] // factor
    out = xs[: m * factor].reshape((m, factor) + xs.shape[1:]).mean(axis=1)
    return np.moveaxis(out, 0, ax)


def thick_affine_ref(affine, axis, factor, start=None):
    """World position of thick slice j's centre = affine @ (network voxel coordinate start + j factor along axis)."""
    a = np.asarray(affine, np.float64)
    start = (factor - 1) / 2 if start is None else start
    e = np.zeros(3)
    e[axis] = start
    out = a.copy()
    out[:3, 3] = a[:3, :3] @ e + a[:3, 3]
    out[:3, axis] = factor * a[:3, axis]
    return out
