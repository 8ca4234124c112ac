"""NumPy reference of the data term in data_term.py, one item at a time, for the tests. Float64 throughout."""

import numpy as np


def masked_mse_ref(x, y, w=None):
    """Per item: sum over voxels and channels of w (x - y)^2 divided by the sum of the (broadcast) weights."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = x.shape[0]
    out = np.zeros(n)
    for k in range(n):
        d = (x[k] - y[k]) ** 2
        if w is None:
            out[k] = d.mean()
            continue
        wk = np.asarray(w, np.float64)
        wk = wk[k] if wk.ndim == 4 else wk
        wk = np.broadcast_to(wk[..., None], d.shape)
        out[k] = (wk * d).sum() / wk.sum() if wk.sum() > 0 else 0.0
    return out


def gaussian_nll_ref(x, y, sigma=None, w=None):
    """Gaussian negative log-likelihood per compared voxel without the constant: masked MSE / (2 sigma^2)."""
    scale = 1.0 if sigma is None else 1.0 / (2.0 * sigma**2)
    return scale * masked_mse_ref(x, y, w)
