"""The C++ FIR kernel (dnnlib/ops/upfirdn_3d_kernel.cc) and the TensorFlow-ops path, each against the NumPy
reference; the kernel's gradient as the exact adjoint and to higher order; which path is chosen where."""

import os

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import conv3d as C
from dnnlib.ops import custom_op_build
from dnnlib.ops import upfirdn_3d as U
from dnnlib.ops import upfirdn_3d_ref as R
from training import configs
from training import network_io as network_loader

# (up, down, padding): isotropic and per-axis factors, zero-padding, cropping (negative) and both.
CASES = [
    (1, 1, 1),
    (1, 1, (2, 3, 2, 3, 2, 3)),
    (2, 1, 0),
    (1, 2, (1, 1, 0, 1, 2, 0)),
    ((2, 1, 3), (1, 2, 1), (2, -1, 1, 3, 0, 1)),
    ((1, 3, 2), (2, 1, 3), (-1, 2, 3, -2, 1, 1)),
]


def _kernel_or_skip():
    if U.kernel_library() is None:
        pytest.skip("the C++ kernel cannot be built on this machine (no g++?)")


def _op_types(fn, *args):
    return {op.type for op in tf.function(fn).get_concrete_function(*args).graph.get_operations()}


FIR_PATHS = {"ops": U._upfirdn_separable, "kernel": U._upfirdn_kernel}


@pytest.mark.parametrize("path", list(FIR_PATHS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("up,down,padding", CASES)
def test_forward_matches_reference(monkeypatch, path, dtype, up, down, padding):
    if path == "kernel":
        _kernel_or_skip()
    monkeypatch.setattr(U, "_use_kernel", lambda x: path == "kernel")
    rng = np.random.default_rng(7)
    x = rng.standard_normal((3, 6, 5, 7, 4))
    f = rng.uniform(0.5, 2, size=4)  # asymmetric: a missing or extra flip would show
    got = U.upfirdn_3d(tf.constant(x.astype(dtype)), f, up=up, down=down, padding=padding, gain=1.7)
    want = R.upfirdn_3d_ref(x, f, up=up, down=down, padding=padding, gain=1.7)
    assert got.dtype == dtype and got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("up,down,padding", CASES)
def test_kernel_gradient_is_the_exact_adjoint(up, down, padding):
    # For a linear map A: <A x, r> == <x, A^T r>, with A x from the NumPy reference and A^T r the kernel's gradient.
    _kernel_or_skip()
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 6, 5, 7, 3))
    f = rng.uniform(0.5, 2, size=3)
    ax = R.upfirdn_3d_ref(x, f, up=up, down=down, padding=padding)
    r = rng.standard_normal(ax.shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        y = U.upfirdn_3d(xt, f, up=up, down=down, padding=padding)
    grad = tape.gradient(y, xt, output_gradients=tf.constant(r)).numpy()
    assert grad.shape == x.shape
    np.testing.assert_allclose(np.vdot(x, grad), np.vdot(ax, r), rtol=1e-12)
    # And the adjoint itself, column by column against the reference on unit vectors of a few voxels.
    for flat in rng.choice(x.size, size=5, replace=False):
        e = np.zeros(x.size)
        e[flat] = 1
        np.testing.assert_allclose(grad.ravel()[flat], np.vdot(R.upfirdn_3d_ref(e.reshape(x.shape), f, up=up,
                                                                                  down=down, padding=padding), r),
                                   rtol=1e-10, atol=1e-12)


def test_kernel_second_and_third_order_gradients_numerically():
    # R1 and path-length regularisation differentiate gradients: d/dx of the gradient of a nonlinear loss
    # through the kernel, against finite differences (float64).
    _kernel_or_skip()
    rng = np.random.default_rng(3)
    f = [1.0, 3.0, 3.0, 1.0]

    def resample(x):
        return U.downsample_3d(U.upsample_3d(x, f), f, padding=(1, 0, 1, 1, 0, 1))

    x = tf.constant(rng.standard_normal((1, 4, 5, 5, 2)))
    r = tf.constant(rng.standard_normal(resample(x).shape))

    def grad_of_loss(x):
        with tf.GradientTape() as inner:
            inner.watch(x)
            loss = tf.reduce_sum(tf.square(resample(x)) * r)
        return inner.gradient(loss, x)

    theoretical, numerical = tf.test.compute_gradient(grad_of_loss, [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-6, atol=1e-7)
    assert "Upfirdn3d" in _op_types(grad_of_loss, tf.TensorSpec(x.shape, tf.float64))


def test_kernel_and_ops_agree_in_a_resampling_conv_to_second_order(monkeypatch):
    _kernel_or_skip()
    rng = np.random.default_rng(5)
    x = tf.constant(rng.standard_normal((2, 5, 6, 7, 3)))
    w = tf.constant(rng.standard_normal((3, 3, 3, 3, 4)) / 9)  # ~1/sqrt(fan-in): values of order 1
    f = U.setup_filter([1, 3, 3, 1])
    results = []
    for path in FIR_PATHS:
        monkeypatch.setattr(U, "_use_kernel", lambda x, path=path: path == "kernel")
        with tf.GradientTape() as outer:
            outer.watch(w)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = U.conv_downsample_3d(U.upsample_conv_3d(x, w[..., :3], f), w, f)
                loss = tf.reduce_sum(tf.sin(y))
            penalty = tf.reduce_sum(tf.square(inner.gradient(loss, x)))
        results.append((y.numpy(), outer.gradient(penalty, w).numpy()))
    for a, b in zip(*results, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)


def _upsample(x):
    return U.upsample_3d(x, U.setup_filter([1, 3, 3, 1]))


# (faked GPU, dtype, jit_compile, kernel expected): the kernel on CPU for float32/64; TensorFlow ops on GPU, for
# other dtypes, and in code traced for XLA, which cannot compile the custom op.
PATH_CASES = [
    (False, tf.float32, False, True),
    (False, tf.float64, False, True),
    (False, tf.float16, False, False),
    (True, tf.float32, False, False),
    (False, tf.float32, True, False),
]


@pytest.mark.parametrize("gpu,dtype,xla,kernel", PATH_CASES)
def test_fir_path_is_chosen_by_device_dtype_and_xla(monkeypatch, gpu, dtype, xla, kernel):
    _kernel_or_skip()
    monkeypatch.setattr(C, "_have_gpu", lambda: gpu)
    chosen = []
    use_kernel = U._use_kernel
    monkeypatch.setattr(U, "_use_kernel", lambda x: chosen.append(use_kernel(x)) or chosen[-1])
    x = tf.cast(tf.random.normal([1, 6, 6, 6, 2], seed=1), dtype)
    if xla:
        np.testing.assert_allclose(tf.function(_upsample, jit_compile=True)(x).numpy(), _upsample(x).numpy(),
                                   rtol=1e-5, atol=1e-6)
        assert chosen[0] is False  # the jit-compiled trace, then the eager call
    else:
        ops = _op_types(_upsample, tf.TensorSpec([None, 6, 6, 6, 2], dtype))
        assert ("Upfirdn3d" in ops) == kernel and ("DepthwiseConv2dNative" in ops) != kernel
        assert chosen == [kernel]


def test_unbuildable_kernel_falls_back_to_ops(monkeypatch):
    monkeypatch.setattr(U, "kernel_library", lambda: None)  # as after a failed build
    spec = tf.TensorSpec([None, 4, 4, 4, 1], tf.float32)
    assert "Upfirdn3d" not in _op_types(lambda x: U.upsample_3d(x, [1, 1]), spec)
    assert U.upsample_3d(tf.ones([1, 4, 4, 4, 1]), [1, 1]).shape == (1, 8, 8, 8, 1)


def test_exported_generator_holds_only_tensorflow_ops(tmp_path):
    # The SavedModel must load where the kernel is not built (another machine, a GPU server, TF Serving).
    _kernel_or_skip()
    G = configs.build_networks("demo-tiny")[0]
    z = tf.zeros([1, G.z_dim])
    assert "Upfirdn3d" in _op_types(lambda z: G(z, None, noise_mode="const"), z)  # training traces use it
    export = tmp_path / "generator"
    network_loader.export_generator(G, network_loader.default_geometry(G.img_shape), str(export))
    with open(export / "saved_model.pb", "rb") as f:
        assert b"Upfirdn3d" not in f.read()
    served = tf.saved_model.load(str(export)).signatures["serving_default"]
    np.testing.assert_allclose(served(z=z, c=tf.zeros([1, 0]), psi=tf.constant(1.0))["volume"].numpy(),
                               G(z, None, noise_mode="const").numpy(), atol=1e-5)


def test_build_failure_warns_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DNNLIB_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "broken_kernel.cc"
    source.write_text("this is not C++;\n")
    assert custom_op_build.load(str(source)) is None
    assert custom_op_build.load(str(source)) is None  # remembered, not rebuilt
    ops_dir = tmp_path / "cache" / "ops"
    assert not ops_dir.exists() or os.listdir(ops_dir) == []  # no half-written library
