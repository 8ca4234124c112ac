"""NumPy reference of the trivial inverse in trivial_inverse.py (np.interp per line), for the tests.

Volumes are [N,D,H,W,C] or [D,H,W]; `axis` counts spatial axes. Float64 throughout.
"""

import numpy as np

from generation.restoration.forward_models_ref import axis_first


def linear_inverse_ref(y, axis, factor, length, start=None):
    """Network slice i from the two thick slices around position i (np.interp per line, ends held)."""
    ys, ax = axis_first(y, axis)
    m = ys.shape[0]
    start = (factor - 1) / 2 if start is None else start
    pos = start + factor * np.arange(m)
    flat = ys.reshape(m, -1)
    out = np.empty((length, flat.shape[1]))
    for k in range(flat.shape[1]):
        out[:, k] = np.interp(np.arange(length), pos, flat[:, k])
    return np.moveaxis(out.reshape((length,) + ys.shape[1:]), 0, ax)
