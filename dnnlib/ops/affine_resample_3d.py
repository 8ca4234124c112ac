"""Trilinear resampling of NDHWC volumes through one affine voxel map per sample (ADA's geometry, training/augment.py).

affine_resample_3d(x, matrix, background) -> out[n, o] = x[n, matrix[n] @ (o, 1)]: matrix [N, 4, 4] (or [N, 3, 4])
maps output voxel indices to input voxel indices; positions between voxels are interpolated trilinearly, and
outside the grid the volume is `background` (as if padded with it: a position within one voxel of the edge blends
the edge voxel with the background). Linear in x plus a constant: the gradient of any order w.r.t. x is exact; the
matrix gets none (the positions are parameters).

Paths, chosen per trace like upfirdn_3d's: the C++ op (affine_resample_3d_kernel.cc: CPU, float32/64, when it
builds) computes each output voxel's corners on the fly and is its own gradient (adjoint flag); TensorFlow ops (GPU,
XLA, SavedModel export, other dtypes, no compiler) gather the 8 corners from index and weight tensors, and autodiff
makes the gradient a scatter-add.
"""

import os

import numpy as np
import tensorflow as tf

from dnnlib.ops import conv3d as _conv3d_mod
from dnnlib.ops import custom_op_build

SCOPE = "affine_resample_3d"


def affine_resample_3d(x, matrix, background=0.0):
    """Trilinear resampling of x [N, D, H, W, C] (static D, H, W, C) at matrix[n] @ (output voxel, 1)."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 5 or not x.shape[1:].is_fully_defined():
        raise ValueError(f"affine_resample_3d expects an NDHWC tensor with static D, H, W, C, got shape {x.shape}")
    matrix = tf.cast(matrix, x.dtype)
    with tf.name_scope(SCOPE):
        if _use_kernel(x):
            return _resample_kernel(x, matrix, background)
        return _resample_gather(x, matrix, background)


# ----------------------------------------------------------------------------------------------
# CPU kernel, built at first use.

_KERNEL_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "affine_resample_3d_kernel.cc")
_kernel = custom_op_build.LazyLibrary(_KERNEL_SOURCE, required_op="affine_resample3d",
                                      gradients={"AffineResample3d": lambda op, dy: _kernel_grad(op, dy)})


def kernel_library():
    """The loaded op library (built on first call), or None if it cannot be built here."""
    return _kernel()


def _use_kernel(x):
    """The kernel on CPU for float32/64 where it builds; TensorFlow ops on GPU, for other dtypes, under XLA and in
    SavedModel exports (the same rule as the FIR's)."""
    return custom_op_build.kernel_path(x.dtype, gpu=_conv3d_mod._have_gpu(), kernel_builds=lambda: kernel_library()
                                       is not None) == "kernel"


def _resample_kernel(x, matrix, background):
    return kernel_library().affine_resample3d(x, matrix, background=float(background), adjoint=False)


def _kernel_grad(op, dy):
    """The forward map's gradient is its adjoint, the adjoint's is the forward map without the background."""
    with tf.name_scope(SCOPE):
        dx = kernel_library().affine_resample3d(dy, op.inputs[1], background=0.0, adjoint=not op.get_attr("adjoint"))
    return [dx, None]


# ----------------------------------------------------------------------------------------------
# TensorFlow ops.


def trilinear_corners(shape, matrix):
    """Flat indices into the volume padded by one voxel [8, N, P] (int32) and weights [8, N, P] of the 8 corners of
    every output voxel (P = D * H * W); shape (N, D, H, W)."""
    N, D, H, W = shape
    sizes = [D, H, W]
    grid = np.stack(np.meshgrid(np.arange(D), np.arange(H), np.arange(W), indexing="ij"), -1).reshape(-1, 3)
    coords = tf.einsum("nij,pj->npi", matrix[:, :3, :3], tf.constant(grid, matrix.dtype)) + matrix[:, None, :3, 3]
    idx0, frac = [], []
    for a, n in enumerate(sizes):
        c = tf.clip_by_value(coords[..., a], -1.0, float(n)) + 1.0  # padded index in [0, n + 1]
        f0 = tf.floor(c)
        idx0.append(tf.cast(f0, tf.int32))
        frac.append(c - f0)
    Hp, Wp = H + 2, W + 2
    base = (tf.range(N) * ((D + 2) * Hp * Wp))[:, None]
    lins, weights = [], []
    for corner in range(8):
        bits = [(corner >> (2 - a)) & 1 for a in range(3)]
        ids = [tf.minimum(idx0[a] + bits[a], sizes[a] + 1) for a in range(3)]
        w = 1.0
        for a in range(3):
            w = w * (frac[a] if bits[a] else 1.0 - frac[a])
        lins.append(base + (ids[0] * Hp + ids[1]) * Wp + ids[2])
        weights.append(w)
    return tf.stack(lins), tf.stack(weights)


def _resample_gather(x, matrix, background):
    N, D, H, W, C = x.shape
    lins, weights = trilinear_corners((tf.shape(x)[0], D, H, W), matrix)
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]], constant_values=background)
    # One gather of the 8 corners (its gradient is one scatter-add, not eight).
    values = tf.gather(tf.reshape(xp, [-1, C]), lins)  # [8, N, P, C]
    out = tf.reduce_sum(values * weights[..., None], axis=0)
    return tf.reshape(out, [-1, D, H, W, C])
