"""Bias + activation + gain + optional clamp, with a backward pass that keeps only the output.

Activations follow StyleGAN2's table. Where the derivative can be written from the output y
(linear, relu, lrelu, tanh, sigmoid, elu, selu, softplus) the gradient is a tf.custom_gradient that
captures y only, so the pre-activation need not stay alive for the backward pass. The gradient
function is built from differentiable ops of y, and y is the custom op's own output, so
second-order gradients (R1, path length) flow through it correctly.
"""

import math

import tensorflow as tf

_SELU_SCALE = 1.0507009873554805
_SELU_ALPHA = 1.6732632423543772


def _act_spec():
    # name -> (forward f(x, alpha: Python float), derivative from the output y = f(x) or None, default gain)
    return {
        "linear": (lambda x, a: x, lambda y, a: tf.ones_like(y), 1.0),
        "relu": (lambda x, a: tf.nn.relu(x), lambda y, a: tf.cast(y > 0, y.dtype), math.sqrt(2)),
        "lrelu": (
            # TF's fused LeakyRelu takes alpha as a float32 attribute: exact below float64 only.
            lambda x, a: tf.where(x > 0, x, x * a) if x.dtype == tf.float64 else tf.nn.leaky_relu(x, a),
            lambda y, a: tf.where(y > 0, tf.ones_like(y), tf.fill(tf.shape(y), a)),
            math.sqrt(2),
        ),
        "tanh": (lambda x, a: tf.tanh(x), lambda y, a: 1 - tf.square(y), 1.0),
        "sigmoid": (lambda x, a: tf.sigmoid(x), lambda y, a: y * (1 - y), 1.0),
        "elu": (lambda x, a: tf.nn.elu(x), lambda y, a: tf.where(y > 0, tf.ones_like(y), y + 1), 1.0),
        "selu": (
            lambda x, a: tf.nn.selu(x),
            lambda y, a: tf.where(y > 0, tf.fill(tf.shape(y), tf.constant(_SELU_SCALE, y.dtype)),
                                  y + tf.constant(_SELU_SCALE * _SELU_ALPHA, y.dtype)),
            1.0,
        ),
        "softplus": (lambda x, a: tf.nn.softplus(x), lambda y, a: -tf.math.expm1(-y), 1.0),
        "swish": (lambda x, a: x * tf.sigmoid(x), None, 1.0),
    }


ACTIVATIONS = tuple(_act_spec())
SCOPE = "bias_act"


def default_gain(act):
    return _act_spec()[act][2]


def _add_bias(x, b, axis):
    b = tf.cast(tf.convert_to_tensor(b), x.dtype)
    rank = x.shape.rank
    axis = axis % rank
    if b.shape.rank != 1 or b.shape[0] != x.shape[axis]:
        raise ValueError(f"fused_bias_act: bias shape {b.shape} does not match axis {axis} of x {x.shape}")
    if axis == rank - 1 and rank >= 2:
        return tf.nn.bias_add(x, b)  # one fused op; its gradient is a single reduction (BiasAddGrad)
    return x + tf.reshape(b, [-1 if i == axis else 1 for i in range(rank)])


def _scaled(x, gain):
    # A gain of 1 (the usual case once callers fold the gain into their weights) costs no extra pass.
    return x if gain == 1 else x * tf.constant(gain, x.dtype)


def fused_bias_act(x, b=None, axis=-1, act="linear", alpha=None, gain=None, clamp=None):
    """y = clamp(act(x + b) * gain, -clamp, clamp).

    x: any rank; b: [x.shape[axis]] or None. act: one of ACTIVATIONS. alpha: lrelu slope (default 0.2).
    gain: None = the activation's default (sqrt(2) for relu/lrelu, else 1). clamp: None or > 0.
    """
    spec = _act_spec()
    if act not in spec:
        raise ValueError(f"fused_bias_act: unknown act {act!r}; choose one of {ACTIVATIONS}")
    if clamp is not None and not clamp > 0:
        raise ValueError(f"fused_bias_act: clamp must be > 0 or None, got {clamp!r}")
    fn, dfn, def_gain = spec[act]
    gain = float(def_gain if gain is None else gain)
    alpha = float(0.2 if alpha is None else alpha)
    # One name scope for the op and its custom gradient, so that a profile can attribute their time.
    with tf.name_scope(SCOPE):
        return _bias_act(tf.convert_to_tensor(x), b, axis, fn, dfn, act, alpha, gain, clamp)


def gradient_path(act, gain, alpha, dtype):
    """How fused_bias_act is differentiated, on every device: 'autodiff' (no derivative from the output: swish,
    or gain 0), 'leaky_relu_grad' or 'from_output' (a custom gradient that keeps only the output)."""
    if _act_spec()[act][1] is None or gain == 0:
        return "autodiff"
    # lrelu with a positive gain and slope: sign(y) == sign(x), so TF's fused LeakyReluGrad (one pass, and
    # itself differentiable) gives the gradient from y; the generic formula takes four elementwise passes.
    # Its alpha is a float32 attribute: not exact in float64.
    if act == "lrelu" and gain > 0 and alpha >= 0 and tf.as_dtype(dtype) != tf.float64:
        return "leaky_relu_grad"
    return "from_output"


def _bias_act(x, b, axis, fn, dfn, act, alpha, gain, clamp):
    if b is not None:
        x = _add_bias(x, b, axis)

    path = gradient_path(act, gain, alpha, x.dtype)
    if path == "autodiff":
        y = _scaled(fn(x, alpha), gain)
        return y if clamp is None else tf.clip_by_value(y, -tf.constant(clamp, x.dtype), tf.constant(clamp, x.dtype))

    fused_lrelu_grad = path == "leaky_relu_grad"

    @tf.custom_gradient
    def op(x):
        dtype = x.dtype
        a = tf.constant(alpha, dtype)
        y = _scaled(fn(x, alpha), gain)
        if clamp is not None:
            y = tf.clip_by_value(y, -tf.constant(clamp, dtype), tf.constant(clamp, dtype))

        def grad(dy):
            # Everything below is a function of y (the op's output) and dy only.
            with tf.name_scope(SCOPE):
                if fused_lrelu_grad:
                    dx = tf.raw_ops.LeakyReluGrad(gradients=_scaled(dy, gain), features=y, alpha=alpha)
                else:
                    dx = dy * _scaled(dfn(_scaled(y, 1 / gain), a), gain)
                if clamp is not None:
                    dx = tf.where(tf.abs(y) < tf.constant(clamp, dtype), dx, tf.zeros_like(dx))
                return dx

        return y, grad

    return op(x)

