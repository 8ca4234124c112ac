"""bench/formulations.py: the formulations the ops do not choose still compute the same functions (NumPy references,
TensorFlow autodiff, the product op), so the bench times like against like."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from bench import formulations as F
from dnnlib.ops import modulated_conv3d as M
from dnnlib.ops import upfirdn_3d as U
from dnnlib.ops import upfirdn_3d_ref as UR
from dnnlib.ops.conv3d_ref import conv3d_ref
from tests.utils import assert_conv3d_matches_reference

PADDINGS = ["SAME", "VALID", 2, (1, 0, 2, -1, 0, 1)]
# Every padding/kernel case for batch_channels (the previous default), two cases for the others.
CONV_CASES = [("batch_channels", k, p) for k in (3, 1, 2) for p in PADDINGS] + [
    (name, k, p) for name in ("tf", "slices") for k, p in ((3, "SAME"), (2, (1, 0, 2, -1, 0, 1)))]


@pytest.mark.parametrize("name,k,padding", CONV_CASES)
def test_filter_gradient_formulations_match_reference_and_autodiff(name, k, padding):
    assert_conv3d_matches_reference(F.conv3d_with_filter_grad(name), k, padding)


def test_plain_tf_conv_matches_reference():
    rng = np.random.default_rng(8)
    x, w = rng.standard_normal((1, 3, 4, 5, 2)), rng.standard_normal((3, 3, 3, 2, 3))
    np.testing.assert_allclose(F.conv3d_tf(tf.constant(x), tf.constant(w), (1, 0, 1)).numpy(),
                               conv3d_ref(x, w, (1, 0, 1)), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("case,up,down", [(i, *c) for i, c in enumerate(itertools.product([1, 2, (2, 1, 3)],
                                                                                           [1, 2, (1, 2, 3)]))])
def test_dense_fir_matches_reference(case, up, down):
    rng = np.random.default_rng(100 + case)
    x = rng.standard_normal((2, 5, 4, 3, 2))
    f = rng.uniform(0.5, 2, size=3)  # asymmetric taps catch a missing/extra flip
    padding = (2, -1, 1, 3, 0, 1)
    got = F.upfirdn_3d_dense(tf.constant(x), f, up=up, down=down, padding=padding, gain=1.7)
    want = UR.upfirdn_3d_ref(x, f, up=up, down=down, padding=padding, gain=1.7)
    assert got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-10)


def test_dense_fir_gradient_is_adjoint_of_reference():
    rng = np.random.default_rng(6)
    x, x2 = rng.standard_normal((2, 5, 4, 6, 2)), rng.standard_normal((2, 5, 4, 6, 2))
    kw = dict(up=(2, 1, 2), down=(1, 2, 2), padding=(2, -1, 0, 1, 1, 2), gain=3.0)
    f = [0.5, 1.0, 2.0, 1.5]
    v = rng.standard_normal(UR.upfirdn_3d_ref(x, f, **kw).shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(F.upfirdn_3d_dense(xt, f, **kw) * v)
    grad = tape.gradient(loss, xt).numpy()
    np.testing.assert_allclose(np.sum(grad * x2), np.sum(UR.upfirdn_3d_ref(x2, f, **kw) * v), rtol=1e-10)


@pytest.mark.parametrize("factor", [2, (2, 1, 2)])
def test_dense_resampling_helpers_equal_the_product_ops(factor):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.standard_normal((2, 6, 6, 6, 2)))
    f = U.setup_filter([1, 3, 3, 1])
    np.testing.assert_allclose(F.upsample_3d_dense(x, f, factor).numpy(), U.upsample_3d(x, f, factor).numpy(),
                               rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(F.downsample_3d_dense(x, f, factor).numpy(), U.downsample_3d(x, f, factor).numpy(),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("up", [None, (2, 2, 1)])
def test_grouped_modconv_equals_the_product_op(up):
    rng = np.random.default_rng(2)
    x = tf.constant(rng.normal(size=(3, 4, 5, 3, 2)).astype(np.float32))
    W = tf.constant(rng.normal(size=(3, 3, 3, 2, 4)).astype(np.float32))
    s = tf.constant(rng.normal(size=(3, 2)).astype(np.float32))
    f = U.setup_filter([1, 3, 3, 1])
    a = M.modulated_conv3d(x, W, s, up=up, resample_filter=f).numpy()
    b = F.modulated_conv3d_grouped(x, W, s, up=up, resample_filter=f).numpy()
    assert a.shape == b.shape
    if up is not None:
        # upsample_conv_3d pads once (StyleGAN2), the grouped form upsamples then convolves: the outermost
        # voxel layer may differ, the interior must not.
        a, b = a[:, 1:-1, 1:-1, 1:-1], b[:, 1:-1, 1:-1, 1:-1]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)
    if up is None:
        # The grouped conv (XLA) is differentiable and agrees with the product op.
        r = tf.constant(np.random.default_rng(3).normal(size=a.shape).astype(np.float32))
        grads = []
        for fn in (M.modulated_conv3d, F.modulated_conv3d_grouped):
            with tf.GradientTape() as tape:
                tape.watch([x, W, s])
                loss = tf.reduce_sum(fn(x, W, s) * r)
            grads.append([g.numpy() for g in tape.gradient(loss, [x, W, s])])
        for ga, gb in zip(*grads, strict=True):
            np.testing.assert_allclose(ga, gb, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("up", [None, (2, 2, 1)])
def test_per_sample_everywhere_equals_the_product_op(up):
    rng = np.random.default_rng(5)
    x = tf.constant(rng.normal(size=(2, 4, 5, 3, 2)).astype(np.float32))
    W = tf.constant(rng.normal(size=(3, 3, 3, 2, 4)).astype(np.float32))
    s = tf.constant(rng.normal(size=(2, 2)).astype(np.float32))
    f = U.setup_filter([1, 3, 3, 1])
    np.testing.assert_allclose(F.modulated_conv3d_per_sample(x, W, s, up=up, resample_filter=f).numpy(),
                               M.modulated_conv3d(x, W, s, up=up, resample_filter=f).numpy(), rtol=1e-4, atol=1e-4)


def test_plain_tensorflow_generator_has_no_custom_ops_and_the_same_output():
    from training import configs

    G = configs.build_networks(configs.get_config("demo-tiny"))[0]
    z = tf.constant(np.random.default_rng(1).normal(size=(2, G.z_dim)).astype(np.float32))

    def op_types():
        fn = tf.function(lambda z: G(z, noise_mode="const"))
        return {op.type for op in fn.get_concrete_function(z).graph.get_operations()}, fn(z).numpy()

    product_ops, product = op_types()
    kernel_library, limit = U.kernel_library, U.POLYPHASE_MAX_ELEMENTS
    with F.plain_tensorflow():
        plain_ops, plain = op_types()
    assert "Upfirdn3d" not in plain_ops and "Conv3DBackpropInputV2" in plain_ops
    if U.kernel_library() is not None:
        assert "Upfirdn3d" in product_ops
    assert U.kernel_library is kernel_library and U.POLYPHASE_MAX_ELEMENTS == limit  # restored on exit
    np.testing.assert_allclose(plain, product, rtol=1e-4, atol=1e-5)


def test_substituted_rebinds_imported_names_only_and_restores_them():
    from training import networks

    def fake(*args, **kwargs):
        raise AssertionError("not called")

    with F.substituted(upsample_conv_3d=fake, conv3d=fake):
        assert networks.upsample_conv_3d is fake and M.upsample_conv_3d is fake and U.conv3d is fake
        assert U.upsample_conv_3d is not fake  # its own definition stays (the substitute may call it)
    assert networks.upsample_conv_3d is U.upsample_conv_3d and M.conv3d is U.conv3d
