"""The trivial inverse, the baseline a restoration is compared with: thick slices interpolated back onto the
network grid along each thickened axis (NumPy; a mask is ignored)."""

import numpy as np

from dnnlib.errors import InputError
from generation.restoration.forward_models import array_axis


def trivial_inverse(degraded, axis, factor, kind="linear", start=None, length=None):
    """Thick slices back on the network grid by interpolation along `axis` alone (NumPy; the mask is ignored).

    Slice j sits at network position start + j * factor (start defaults to (factor - 1) / 2, as in Thicken);
    network slice i gets, at t = (i - start) / factor, kind="linear": (1 - frac t) * slice[floor t] +
    frac t * slice[floor t + 1], kind="nearest": slice[round t]; beyond the first/last slice centre the end
    slice is repeated. Exact for a volume linear along `axis` between the first and last slice centres (the box
    average of a linear profile is its value at the centre). `length` = network slices (default round(M * f)).
    """
    y = np.asarray(degraded)
    ax = array_axis(y.ndim, axis)
    if kind not in ("linear", "nearest"):
        raise InputError(f"trivial inverse kind must be 'linear' or 'nearest', got {kind!r}")
    m = y.shape[ax]
    start = (factor - 1.0) / 2.0 if start is None else float(start)
    length = int(round(m * factor)) if length is None else int(length)
    t = np.clip((np.arange(length, dtype=np.float64) - start) / factor, 0.0, m - 1.0)
    if kind == "nearest":
        return np.take(y, np.floor(t + 0.5).astype(np.int64), axis=ax)
    j0 = np.minimum(np.floor(t).astype(np.int64), max(m - 2, 0))
    j1 = np.minimum(j0 + 1, m - 1)
    frac = (t - j0).reshape([-1 if k == ax else 1 for k in range(y.ndim)])
    out = (1.0 - frac) * np.take(y, j0, axis=ax) + frac * np.take(y, j1, axis=ax)
    return out.astype(y.dtype if np.issubdtype(y.dtype, np.floating) else np.float32)


def trivial_inverse_volume(deg, degraded, net_shape, kind="linear"):
    """The baseline restoration: `trivial_inverse` along each thickened (or cropped) axis of the Degradation
    `deg`, last op first; a mask is left as is. degraded [d,h,w(,C)] on deg's grid -> [D,H,W(,C)] on the network
    grid."""
    y = np.asarray(degraded, np.float32)
    y5 = y[None] if y.ndim == 4 else y  # trivial_inverse takes [N,D,H,W,C] or [D,H,W]
    for op in reversed(deg.ops):
        y5 = trivial_inverse(y5, op.axis, float(op.factor), kind, op.first_centre, int(net_shape[op.axis]))
    return y5[0] if y.ndim == 4 else y5
