"""Reference for affine_resample_3d: SciPy's trilinear affine_transform, per sample and channel (float64).

mode="grid-constant" pads the background around the grid before interpolating, which is the product paths' rule
(a position within one voxel of the edge blends the edge voxel with the background).
"""

import numpy as np
from scipy import ndimage


def affine_resample_3d_ref(x, matrix, background=0.0):
    """x [N, D, H, W, C], matrix [N, 4, 4] or [N, 3, 4] (output voxel -> input voxel) -> [N, D, H, W, C]."""
    x = np.asarray(x, np.float64)
    matrix = np.asarray(matrix, np.float64)
    return np.stack([np.stack([ndimage.affine_transform(x[n, ..., c], matrix[n, :3, :4], order=1,
                                                        mode="grid-constant", cval=background)
                               for c in range(x.shape[-1])], -1) for n in range(x.shape[0])])
