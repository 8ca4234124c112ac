"""The data term of a projection through a forward model: how the degraded volume is compared with its target.

The loss per item is the mean squared error over the compared voxels (a mask's weights, see `masks`), times
1/(2 sigma^2) when a noise level sigma is given (the Gaussian negative log-likelihood per compared voxel, without
its constant; multiply by the number of compared voxels for the full sum). sigma is in the units of the volumes
compared (the projector compares in [-1, 1], twice the [0, 1] file range).
"""

import math

from dnnlib.errors import InputError


def _weights_5d(w, dtype):
    import tensorflow as tf

    w = tf.convert_to_tensor(w, dtype)
    if w.shape.rank == 3:
        return w[None, ..., None]
    if w.shape.rank == 4:
        return w[..., None]
    if w.shape.rank == 5:
        return w
    raise InputError(f"mask weights must be [D,H,W], [N,D,H,W] or [N,D,H,W,C], got shape {w.shape}")


def masked_mse(x, y, weights=None):
    """[N]: mean of (x - y)^2 over the voxels (and channels) with weight 1 (weighted mean for soft weights).
    An item whose weights are all 0 gets 0."""
    import tensorflow as tf

    d = tf.square(tf.convert_to_tensor(x) - tf.convert_to_tensor(y, x.dtype))
    if weights is None:
        return tf.reduce_mean(d, axis=[1, 2, 3, 4])
    w = tf.broadcast_to(_weights_5d(weights, d.dtype), tf.shape(d))
    return tf.math.divide_no_nan(tf.reduce_sum(w * d, axis=[1, 2, 3, 4]), tf.reduce_sum(w, axis=[1, 2, 3, 4]))


def noise_weight(sigma):
    """Loss weight 1/(2 sigma^2) of a Gaussian likelihood with noise SD sigma; 1 when sigma is None."""
    if sigma is None:
        return 1.0
    if not (math.isfinite(sigma) and sigma > 0):
        raise InputError(f"noise level sigma must be positive, got {sigma!r}")
    return 1.0 / (2.0 * float(sigma) ** 2)


def gaussian_data_term(x, y, sigma=None, weights=None):
    """[N]: masked MSE times 1/(2 sigma^2): the Gaussian negative log-likelihood per compared voxel."""
    return noise_weight(sigma) * masked_mse(x, y, weights)
