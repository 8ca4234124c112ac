"""NumPy reference for fused_bias_act: activation formulas with closed-form first and second derivatives."""

import math

import numpy as np

SELU_SCALE = 1.0507009873554805
SELU_ALPHA = 1.6732632423543772
DEFAULT_GAINS = {"linear": 1.0, "relu": math.sqrt(2), "lrelu": math.sqrt(2), "tanh": 1.0, "sigmoid": 1.0,
                 "elu": 1.0, "selu": 1.0, "softplus": 1.0, "swish": 1.0}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def activation_ref(act, x, alpha=0.2):
    """(f(x), f'(x), f''(x)) as float64 arrays (derivatives at kinks taken from the x > 0 test)."""
    x = np.asarray(x, dtype=np.float64)
    one, zero = np.ones_like(x), np.zeros_like(x)
    pos = x > 0
    if act == "linear":
        return x, one, zero
    if act == "relu":
        return np.where(pos, x, 0.0), np.where(pos, 1.0, 0.0), zero
    if act == "lrelu":
        return np.where(pos, x, alpha * x), np.where(pos, 1.0, alpha), zero
    if act == "tanh":
        t = np.tanh(x)
        return t, 1 - t**2, -2 * t * (1 - t**2)
    if act == "sigmoid":
        s = _sigmoid(x)
        return s, s * (1 - s), s * (1 - s) * (1 - 2 * s)
    if act == "elu":
        e = np.exp(np.minimum(x, 0))
        return np.where(pos, x, e - 1), np.where(pos, 1.0, e), np.where(pos, 0.0, e)
    if act == "selu":
        e = np.exp(np.minimum(x, 0))
        f = SELU_SCALE * np.where(pos, x, SELU_ALPHA * (e - 1))
        return f, SELU_SCALE * np.where(pos, 1.0, SELU_ALPHA * e), SELU_SCALE * np.where(pos, 0.0, SELU_ALPHA * e)
    if act == "softplus":
        s = _sigmoid(x)
        return np.logaddexp(0, x), s, s * (1 - s)
    if act == "swish":
        s = _sigmoid(x)
        d = s + x * s * (1 - s)
        return x * s, d, s * (1 - s) * (2 + x * (1 - 2 * s))
    raise ValueError(f"unknown activation {act!r}")


def fused_bias_act_ref(x, b=None, axis=-1, act="linear", alpha=None, gain=None, clamp=None):
    """Returns (y, dy/dx, d2y/dx2) elementwise, for y = clip(gain * act(x + b), -clamp, clamp).

    Where the clamp is active the output is constant, so both derivatives are zero there."""
    x = np.asarray(x, dtype=np.float64)
    if b is not None:
        shape = [1] * x.ndim
        shape[axis] = -1
        x = x + np.reshape(np.asarray(b, dtype=np.float64), shape)
    gain = DEFAULT_GAINS[act] if gain is None else gain
    f, d1, d2 = activation_ref(act, x, 0.2 if alpha is None else alpha)
    y, d1, d2 = gain * f, gain * d1, gain * d2
    if clamp is not None:
        inside = np.abs(y) < clamp
        y = np.clip(y, -clamp, clamp)
        d1, d2 = np.where(inside, d1, 0.0), np.where(inside, d2, 0.0)
    return y, d1, d2
