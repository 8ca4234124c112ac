"""Second-order gradients through slices under XLA (dnnlib/ops/xla_slice_grad.py), against the eager result and a
closed form."""

import numpy as np
import pytest
import tensorflow as tf

import dnnlib.ops.xla_slice_grad  # noqa: F401  (also imported by conv3d; explicit here)
from dnnlib.ops.conv3d import conv3d, pad_or_crop


def _second_order(fn, x):
    """d/dx sum((d/dx sum(fn(x)^2 * w))^2): a gradient of a gradient, as path length and R1 take."""
    w = tf.constant(np.random.RandomState(1).normal(size=fn(x).shape), x.dtype)
    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = tf.reduce_sum(fn(x) ** 2 * w)
        g = inner.gradient(y, x)
        z = tf.reduce_sum(g**2)
    return outer.gradient(z, x)


CROPS = [((-1, -2), (0, 0), (-1, 0)), ((0, -1), (-2, -1), (0, -3))]


@pytest.mark.parametrize("pads", CROPS)
def test_crop_second_order_under_xla_matches_closed_form(pads):
    """y = sum(crop(x)^2 w): dy/dx = 2 x w on the window, 0 outside; z = sum(4 x^2 w^2): dz/dx = 8 x w^2 there."""
    x = tf.constant(np.random.RandomState(0).normal(size=(1, 5, 6, 7, 2)))
    fn = lambda v: pad_or_crop(v, pads)  # noqa: E731
    got = tf.function(lambda v: _second_order(fn, v), jit_compile=True)(x).numpy()
    w = np.random.RandomState(1).normal(size=fn(x).shape)
    want = np.zeros(x.shape)
    window = tuple([slice(None)] + [slice(-a, n + b) for (a, b), n in zip(pads, x.shape[1:4], strict=True)])
    want[window] = 8 * x.numpy()[window] * w**2
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)


def test_conv3d_second_order_under_xla_matches_eager():
    rng = np.random.RandomState(2)
    x = tf.constant(rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32))
    k = tf.constant(rng.normal(size=(3, 3, 3, 3, 4)).astype(np.float32))
    fn = lambda v: conv3d(v, k, padding="SAME")  # noqa: E731
    eager = _second_order(fn, x).numpy()
    xla = tf.function(lambda v: _second_order(fn, v), jit_compile=True)(x).numpy()
    np.testing.assert_allclose(xla, eager, rtol=2e-4, atol=2e-4 * np.abs(eager).max())
