"""fused_bias_act against NumPy formulas with closed-form first and second derivatives."""

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops.fused_bias_act import ACTIVATIONS, default_gain, fused_bias_act
from dnnlib.ops.fused_bias_act_ref import DEFAULT_GAINS, fused_bias_act_ref


def _inputs(shape, axis, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * 2
    b = rng.standard_normal(shape[axis])
    x[np.abs(x) < 1e-3] = 0.5  # keep away from the kinks of relu/lrelu/elu/selu
    return x, b


def test_default_gains_follow_stylegan2():
    assert default_gain("lrelu") == pytest.approx(np.sqrt(2))
    assert default_gain("relu") == pytest.approx(np.sqrt(2))
    assert default_gain("linear") == 1.0
    assert {a: default_gain(a) for a in ACTIVATIONS} == pytest.approx(DEFAULT_GAINS)


@pytest.mark.parametrize("act", ACTIVATIONS)
@pytest.mark.parametrize("clamp", [None, 0.8])
def test_value_and_first_and_second_derivatives(act, clamp):
    axis = 1
    x, b = _inputs((3, 4, 5), axis)
    rng = np.random.default_rng(1)
    v, u = rng.standard_normal(x.shape), rng.standard_normal(x.shape)
    y_ref, d1, d2 = fused_bias_act_ref(x, b, axis=axis, act=act, clamp=clamp)
    if clamp is not None:
        assert 0 < np.sum(np.abs(y_ref) >= clamp) < y_ref.size  # the clamp is exercised on both sides
    xt, bt = tf.constant(x), tf.constant(b)
    with tf.GradientTape(persistent=True) as outer:
        outer.watch([xt, bt])
        with tf.GradientTape() as inner:
            inner.watch([xt, bt])
            y = fused_bias_act(xt, bt, axis=axis, act=act, clamp=clamp)
            loss = tf.reduce_sum(y * v)
        gx, gb = inner.gradient(loss, [xt, bt])
        second = tf.reduce_sum(gx * u)
    hx, hb = outer.gradient(second, [xt, bt], unconnected_gradients=tf.UnconnectedGradients.ZERO)
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(gx.numpy(), v * d1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gb.numpy(), (v * d1).sum(axis=(0, 2)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(hx.numpy(), u * v * d2, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(hb.numpy(), (u * v * d2).sum(axis=(0, 2)), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("act", ["lrelu", "tanh", "softplus"])
def test_second_order_matches_plain_autodiff_in_float32(act):
    # Same R1-like construction as the GAN loss: gradient of a function of the gradient.
    x, b = _inputs((2, 3, 4, 6), -1, seed=3)
    xt, bt = tf.constant(x, tf.float32), tf.constant(b, tf.float32)
    plain = {"lrelu": lambda z: tf.nn.leaky_relu(z, 0.2), "tanh": tf.tanh, "softplus": tf.nn.softplus}[act]

    def r1(fn):
        with tf.GradientTape() as outer:
            outer.watch([xt, bt])
            with tf.GradientTape() as inner:
                inner.watch(xt)
                y = fn(xt, bt)
                loss = tf.reduce_sum(tf.sin(y))
            g = inner.gradient(loss, xt)
            pen = tf.reduce_sum(tf.square(g))
        return [g, *outer.gradient(pen, [xt, bt])]

    mine = r1(lambda x, b: fused_bias_act(x, b, act=act))
    ref = r1(lambda x, b: plain(x + b) * default_gain(act))
    for m, r in zip(mine, ref, strict=True):
        np.testing.assert_allclose(m.numpy(), r.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 2, -1, -4])
def test_bias_axis_gain_alpha(axis):
    x, b = _inputs((2, 3, 4, 5), axis, seed=4)
    y = fused_bias_act(tf.constant(x), tf.constant(b), axis=axis, act="lrelu", alpha=0.1, gain=0.5)
    want, _, _ = fused_bias_act_ref(x, b, axis=axis, act="lrelu", alpha=0.1, gain=0.5)
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-12)


def test_no_bias_float16_and_errors():
    x = np.linspace(-3, 3, 24).reshape(2, 12)
    y = fused_bias_act(tf.constant(x, tf.float16), act="lrelu", clamp=2.0)
    assert y.dtype == tf.float16
    want, _, _ = fused_bias_act_ref(x, act="lrelu", clamp=2.0)
    np.testing.assert_allclose(y.numpy().astype(np.float64), want, atol=5e-3)
    with pytest.raises(ValueError, match="unknown act"):
        fused_bias_act(tf.zeros([2]), act="gelu")
    with pytest.raises(ValueError, match="bias shape"):
        fused_bias_act(tf.zeros([2, 3]), tf.zeros([2]), axis=1)
    with pytest.raises(ValueError, match="clamp"):
        fused_bias_act(tf.zeros([2]), clamp=0)


def test_works_inside_tf_function_with_dynamic_batch():
    @tf.function(input_signature=[tf.TensorSpec([None, 4]), tf.TensorSpec([4])])
    def f(x, b):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fused_bias_act(x, b, act="lrelu")
            loss = tf.reduce_sum(y)
        return y, tape.gradient(loss, x)

    x = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)
    y, g = f(tf.constant(x), tf.zeros([4]))
    s = np.sqrt(2)
    np.testing.assert_allclose(y.numpy(), np.where(x > 0, x, 0.2 * x) * s, rtol=1e-6)
    np.testing.assert_allclose(g.numpy(), np.where(x > 0, 1, 0.2) * s, rtol=1e-6)
