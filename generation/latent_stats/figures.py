"""Pictures shared by the latent-statistics commands: rows of mid-slices and signed difference maps."""

import numpy as np

from volumes import visualize
from volumes.visualize import png_scale


def rows_png(path, unit_volumes):
    """One row per volume ([0, 1], [D,H,W] or [D,H,W,1]) of sagittal, coronal and axial mid-slices."""
    vols = np.stack([np.asarray(v, np.float32).reshape(np.shape(v)[:3]) for v in unit_volumes])
    visualize.mid_slices_png(path, vols, (0.0, 1.0), png_scale(vols.shape[1:4]))


def differences_png(path, differences):
    """Signed difference maps, one row each, grey = 0, white / black = +/- the largest |difference| shown."""
    d = np.stack([np.asarray(v, np.float32).reshape(np.shape(v)[:3]) for v in differences])
    r = float(np.max(np.abs(d))) or 1.0
    visualize.mid_slices_png(path, d, (-r, r), png_scale(d.shape[1:4]))
    return r
