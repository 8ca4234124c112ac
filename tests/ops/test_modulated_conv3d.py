"""modulated_conv3d and add_noise: each path against the NumPy reference (dnnlib/ops/modulated_conv3d_ref.py), first
order against finite differences, the two paths against each other to second order; which path is chosen where."""

import contextlib

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import modulated_conv3d as M
from dnnlib.ops import modulated_conv3d_ref as R
from dnnlib.ops.upfirdn_3d import setup_filter

PATHS = {"per-sample weights": M._per_sample_modulated_conv3d,
         "scaled activations": M._scaled_activations_modulated_conv3d}
F4 = setup_filter([1, 3, 3, 1])


def _by_path(path, x, weight, styles, demodulate=True, up=None, gain=1.0):
    """modulated_conv3d through one path, the modulation in float32 as in the op, the conv in x's dtype."""
    w, s, d = M._modulation(weight, styles, demodulate, x.dtype, gain)
    return PATHS[path](x, w, s, d, up, F4, x.dtype)


def _modulation_f64(weight, styles, demodulate, gain):
    # The op's modulation in float64, so paths can be compared with the reference to float64 precision.
    w, s = tf.cast(weight, tf.float64), tf.cast(styles, tf.float64)
    d = None
    if demodulate:
        d = tf.math.rsqrt(tf.matmul(tf.square(s), tf.reduce_sum(tf.square(w), axis=[0, 1, 2])) + 1e-8) * gain
    elif gain != 1:
        w = w * gain
    return w, s, d


def _path_f64(path, x, weight, styles, demodulate=True, up=None, gain=1.0):
    w, s, d = _modulation_f64(weight, styles, demodulate, gain)
    return PATHS[path](x, w, s, d, up, F4, tf.float64)


# (up, batch, demodulate, kernel size)
CASES = [(None, 3, True, 3), (None, 1, True, 3), ((2, 2, 1), 3, True, 3), ((2, 2, 1), 1, True, 3),
         (None, 3, False, 1), ((2, 1, 2), 1, False, 3)]


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("up,batch,demodulate,k", CASES)
def test_path_matches_reference(path, up, batch, demodulate, k):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(batch, 4, 5, 3, 2))
    W = rng.normal(size=(k, k, k, 2, 4))
    s = rng.normal(size=(batch, 2))
    got = _path_f64(path, tf.constant(x), tf.constant(W), tf.constant(s), demodulate, up, gain=1.3).numpy()
    want = R.modulated_conv3d_ref(x, W, s, demodulate, up, F4, gain=1.3)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up,batch", [(None, 2), ((2, 2, 1), 1)])
def test_public_op_matches_reference_in_float32(up, batch):
    # The op as called by the layers: modulation in float32, demodulated weights of unit norm.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, 4, 5, 6, 3)).astype(np.float32)
    W = (rng.normal(size=(3, 3, 3, 3, 5)) / np.sqrt(81)).astype(np.float32)
    s = rng.normal(size=(batch, 3)).astype(np.float32)
    wdemod = R.modulated_weights_ref(W, s)
    np.testing.assert_allclose((wdemod**2).sum(axis=(1, 2, 3, 4)), 1.0, rtol=1e-5)  # per sample, per out ch
    got = M.modulated_conv3d(tf.constant(x), tf.constant(W), tf.constant(s), up=up, resample_filter=F4).numpy()
    np.testing.assert_allclose(got, R.modulated_conv3d_ref(x, W, s, up=up, resample_filter=F4), rtol=1e-4, atol=1e-4)


def test_gain_without_demodulation_scales_the_output():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 4, 5, 6, 3)).astype(np.float32)
    W = rng.normal(size=(1, 1, 1, 3, 2)).astype(np.float32)
    s = rng.normal(size=(2, 3)).astype(np.float32)
    a = M.modulated_conv3d(tf.constant(x), W, s, demodulate=False).numpy()
    b = M.modulated_conv3d(tf.constant(x), W, s, demodulate=False, gain=2.5).numpy()
    np.testing.assert_allclose(b, 2.5 * a, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("path", list(PATHS))
@pytest.mark.parametrize("up", [None, (2, 1, 1)])
def test_first_order_gradients_match_finite_differences(path, up):
    rng = np.random.default_rng(6)
    x = tf.constant(rng.normal(size=(2, 3, 2, 2, 2)))
    W = tf.constant(rng.normal(size=(3, 3, 3, 2, 2)))
    s = tf.constant(rng.normal(size=(2, 2)))
    r = tf.constant(rng.normal(size=_path_f64(path, x, W, s, up=up).shape))

    def loss(x, W, s):
        return tf.reduce_sum(tf.square(_path_f64(path, x, W, s, up=up, gain=1.3)) * r)

    theoretical, numerical = tf.test.compute_gradient(loss, [x, W, s])
    for t, n in zip(theoretical, numerical, strict=True):
        np.testing.assert_allclose(t, n, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("up", [None, (2, 2, 1)])
@pytest.mark.parametrize("batch", [3, 1])
def test_paths_agree_to_second_order(up, batch):
    # Both paths must be the same function to every order the regularisers use, through the op's own (float32)
    # modulation with a float64 conv.
    rng = np.random.default_rng(4)
    x = tf.constant(rng.normal(size=(batch, 4, 5, 3, 2)))
    W = tf.constant(rng.normal(size=(3, 3, 3, 2, 4)))
    s = tf.constant(rng.normal(size=(batch, 2)))
    out_sp = (8, 10, 3) if up else (4, 5, 3)
    r = tf.constant(rng.normal(size=(batch, *out_sp, 4)))

    def run(path):
        with tf.GradientTape() as outer:
            outer.watch([x, W, s])
            with tf.GradientTape() as inner:
                inner.watch([x, W, s])
                y = _by_path(path, x, W, s, up=up, gain=1.3)
                loss = tf.reduce_sum(tf.square(y) * r)
            first = inner.gradient(loss, [x, W, s])
            penalty = sum(tf.reduce_sum(tf.square(g)) for g in first)
        return [y, *first, *outer.gradient(penalty, [x, W, s])]

    per_sample, scaled = run("per-sample weights"), run("scaled activations")
    for a, b in zip(per_sample, scaled, strict=True):  # the modulation itself is float32 in both paths
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5 * np.abs(b.numpy()).max())


# (input shape, up, batch known when traced, inside modulation_of_activations, per-sample weights expected)
CHOICES = [
    ((2, 20, 24, 28, 4), None, True, False, True),  # 13440 output voxels per sample
    ((2, 10, 12, 14, 4), None, True, False, False),  # 1680
    ((2, 10, 12, 14, 4), (2, 2, 2), True, False, True),  # 13440 after upsampling
    ((2, 20, 24, 28, 4), None, False, False, False),  # dynamic batch: one batched conv
    ((2, 20, 24, 28, 4), None, True, True, False),  # gradients wrt the styles alone
]


@pytest.mark.parametrize("shape,up,static_batch,scaled_block,per_sample", CHOICES)
def test_path_choice(shape, up, static_batch, scaled_block, per_sample):
    spec = tf.TensorSpec(shape if static_batch else (None, *shape[1:]), tf.float32)
    chosen = []

    def trace(x):
        chosen.append(M._per_sample_weights(x, up))
        return x

    with M.modulation_of_activations() if scaled_block else contextlib.nullcontext():
        tf.function(trace).get_concrete_function(spec)
    assert chosen == [per_sample]


def test_modulation_of_activations_block_overrides_per_sample_weights(monkeypatch):
    # The path-length regulariser and the projector trace G inside this block: no per-sample convs there.
    monkeypatch.setattr(M, "_PER_SAMPLE_MIN_VOXELS", 0)
    x, W, s = tf.zeros([2, 3, 4, 5, 2]), tf.ones([3, 3, 3, 2, 4]), tf.ones([2, 2])

    def op_types():
        fn = tf.function(lambda: M.modulated_conv3d(x, W, s))
        return {op.type for op in fn.get_concrete_function().graph.get_operations()}

    assert "Unpack" in op_types()  # the per-sample weights
    with M.modulation_of_activations():
        assert "Unpack" not in op_types()
        with M.modulation_of_activations():
            pass
        assert "Unpack" not in op_types()  # nesting restores the outer block's setting
    assert "Unpack" in op_types()


@pytest.mark.parametrize("noise_batch", [2, 1])
def test_add_noise_matches_reference_and_autodiff_to_second_order(noise_batch):
    rng = np.random.default_rng(3)
    x = tf.constant(rng.normal(size=(2, 3, 4, 5, 6)))
    noise = tf.constant(rng.normal(size=(noise_batch, 3, 4, 5, 1)))
    strength = tf.constant(0.3, tf.float64)
    r = tf.constant(rng.normal(size=(2, 3, 4, 5, 6)))

    def grads(fn):
        with tf.GradientTape() as outer:
            outer.watch([x, noise, strength])
            with tf.GradientTape() as inner:
                inner.watch([x, noise, strength])
                y = fn(x, noise, strength)
                loss = tf.reduce_sum(tf.square(y) * r)
            first = inner.gradient(loss, [x, noise, strength])
            penalty = sum(tf.reduce_sum(tf.square(g)) for g in first)
        return [y, *first, *outer.gradient(penalty, [x, noise, strength])]

    got = grads(M.add_noise)
    expect = grads(lambda x, n, s: x + n * s)
    for g, e in zip(got, expect, strict=True):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-10, atol=1e-10)

    # Forward and first order against the reference formula (dy = 2 y r for this loss).
    y = R.add_noise_ref(x.numpy(), noise.numpy(), 0.3)
    np.testing.assert_allclose(got[0].numpy(), y, rtol=1e-12)
    for g, e in zip(got[1:4], R.add_noise_grads_ref(x.numpy(), noise.numpy(), 0.3, 2 * y * r.numpy()), strict=True):
        np.testing.assert_allclose(g.numpy(), e, rtol=1e-10, atol=1e-10)
