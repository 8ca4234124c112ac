"""Trilinear affine resampling (dnnlib/ops/affine_resample_3d.py): the C++ kernel, the TensorFlow-ops path and the
formulations bench/formulations.py keeps, each against scipy.ndimage.affine_transform; the kernel's gradient as
the exact adjoint, to second order, deterministic; which path is chosen where."""

import numpy as np
import pytest
import tensorflow as tf

from bench import formulations as F
from dnnlib.ops import affine_resample_3d as AR
from dnnlib.ops.affine_resample_3d_ref import affine_resample_3d_ref


def _kernel_or_skip():
    if AR.kernel_library() is None:
        pytest.skip("the C++ kernel cannot be built on this machine (no g++?)")


def _matrices(n, seed, scale=0.3, shift=2.0):
    rng = np.random.RandomState(seed)
    M = np.tile(np.eye(4), (n, 1, 1))
    M[:, :3, :3] += rng.normal(0, scale, (n, 3, 3))
    M[:, :3, 3] = rng.normal(0, shift, (n, 3))
    return M


def _scipy(x, M, background):
    return affine_resample_3d_ref(x, M, background)


PATHS = {"kernel": AR._resample_kernel, "tf_ops": AR._resample_gather,
         **{name: fn for name, fn in F.RESAMPLINGS.items()}}


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("dtype, channels, background", [(np.float32, 1, -1.0), (np.float64, 3, 0.5)])
def test_every_path_matches_scipy(path, dtype, channels, background):
    if path == "kernel":
        _kernel_or_skip()
    rng = np.random.RandomState(3)
    x = rng.uniform(-1, 1, (2, 7, 8, 9, channels))
    M = _matrices(2, seed=4)
    M[1, :3, 3] += [6.0, 0.0, 0.0]  # partly outside the field of view
    got = PATHS[path](tf.constant(x.astype(dtype)), tf.constant(M.astype(dtype)), background).numpy()
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got, _scipy(x, M, background), atol=tol, rtol=0)


def test_integer_matrices_copy_voxels_exactly():
    # A signed permutation plus an integer shift (ADA's blit): every output is one input voxel or the background.
    _kernel_or_skip()
    x = np.random.RandomState(5).uniform(-1, 1, (1, 6, 6, 6, 1)).astype(np.float32)
    M = np.array([[[0, 1, 0, 1], [-1, 0, 0, 5], [0, 0, 1, -2], [0, 0, 0, 1]]], np.float32)
    got = AR.affine_resample_3d(tf.constant(x), tf.constant(M), -1.0).numpy()
    np.testing.assert_array_equal(got, _scipy(x, M, -1.0).astype(np.float32))


def test_kernel_gradient_is_the_exact_adjoint():
    # <A x, r> == <x, A^T r>: A x from scipy (background 0: linear), A^T r the kernel's gradient.
    _kernel_or_skip()
    rng = np.random.RandomState(6)
    x = rng.normal(size=(2, 5, 6, 7, 2))
    r = rng.normal(size=x.shape)
    M = _matrices(2, seed=7)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = tf.reduce_sum(AR._resample_kernel(xt, tf.constant(M), -1.0) * r)
    adjoint_r = tape.gradient(y, xt).numpy()
    assert np.sum(_scipy(x, M, 0.0) * r) == pytest.approx(np.sum(x * adjoint_r), rel=1e-12)


def _second_order(fn, x, M, w):
    """d/dw of |d sum(w * tanh(resample(x))) / dx|^2, R1's shape."""
    with tf.GradientTape() as outer:
        outer.watch(w)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.reduce_sum(w * tf.tanh(fn(x, M, -1.0)))
        g = inner.gradient(y, x)
        r1 = tf.reduce_sum(g * g)
    return outer.gradient(r1, w)


def test_kernel_and_tf_ops_agree_to_second_order_and_the_kernel_is_deterministic():
    _kernel_or_skip()
    rng = np.random.RandomState(8)
    x = tf.constant(rng.uniform(-1, 1, (3, 6, 7, 8, 1)))
    w = tf.constant(rng.normal(size=(1, 6, 7, 8, 1)))
    M = tf.constant(_matrices(3, seed=9))
    kernel = [_second_order(AR._resample_kernel, x, M, w).numpy() for _ in range(3)]
    ops = _second_order(AR._resample_gather, x, M, w).numpy()
    np.testing.assert_allclose(kernel[0], ops, rtol=1e-10, atol=1e-12)
    assert all(np.array_equal(kernel[0], k) for k in kernel[1:])


def _op_types(fn):
    return {op.type for op in fn.get_concrete_function().graph.get_operations()}


def test_kernel_on_cpu_and_tensorflow_ops_under_xla(monkeypatch):
    _kernel_or_skip()
    x = tf.zeros([1, 4, 5, 6, 1])
    M = tf.eye(4, batch_shape=[1])
    assert "AffineResample3d" in _op_types(tf.function(lambda: AR.affine_resample_3d(x, M)))
    assert "AffineResample3d" not in _op_types(tf.function(lambda: AR.affine_resample_3d(x, M), jit_compile=True))
    monkeypatch.setattr(AR, "kernel_library", lambda: None)  # no compiler: the TensorFlow ops
    assert "AffineResample3d" not in _op_types(tf.function(lambda: AR.affine_resample_3d(x, M)))


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="NDHWC"):
        AR.affine_resample_3d(tf.zeros([4, 5, 6]), tf.eye(4, batch_shape=[1]))
