"""upfirdn_3d and the resampling helpers against the direct NumPy reference (dnnlib/ops/upfirdn_3d_ref.py), on each
host the ops choose their paths for: CPU (C++ FIR kernel, polyphase upsampling, fast conv gradients), CPU where the
kernel cannot be built (FIR as TensorFlow ops), and GPU (TensorFlow ops, conv3d_transpose, tf.nn.conv3d; faked)."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import conv3d as C
from dnnlib.ops import upfirdn_3d as U
from dnnlib.ops import upfirdn_3d_ref as R
from dnnlib.ops.conv3d import conv3d

F4 = [1, 3, 3, 1]
HOSTS = ["cpu", "cpu without kernel", "gpu"]


def _as_host(monkeypatch, host):
    """Make the ops choose their paths as on `host` (the device and the kernel build are faked)."""
    if host == "gpu":
        monkeypatch.setattr(C, "_have_gpu", lambda: True)
    elif host == "cpu without kernel":
        monkeypatch.setattr(U, "kernel_library", lambda: None)  # as after a failed build


def _rand(rng, *shape):
    return rng.standard_normal(shape)


def _np(t):
    return t.numpy() if hasattr(t, "numpy") else np.asarray(t)


def test_setup_filter_normalises_flips_and_scales():
    f = U.setup_filter([1, 2, 5], flip=True, gain=8)
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, np.array([5, 2, 1]) / 8 * 2, rtol=1e-6)  # 8 ** (1/3) = 2 per axis
    np.testing.assert_allclose(U.setup_filter(F4).sum(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError):
        U.setup_filter([1, -1])


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("case,up,down", [(i, *c) for i, c in enumerate(itertools.product([1, 2, (2, 1, 3)],
                                                                                           [1, 2, (1, 2, 3)]))])
def test_upfirdn_matches_reference(monkeypatch, host, case, up, down):
    _as_host(monkeypatch, host)
    rng = np.random.default_rng(100 + case)
    x = _rand(rng, 2, 5, 4, 3, 2)
    f = rng.uniform(0.5, 2, size=3)  # asymmetric taps catch a missing/extra flip
    padding = (2, -1, 1, 3, 0, 1)
    got = U.upfirdn_3d(tf.constant(x), f, up=up, down=down, padding=padding, gain=1.7)
    want = R.upfirdn_3d_ref(x, f, up=up, down=down, padding=padding, gain=1.7)
    assert got.shape == want.shape
    np.testing.assert_allclose(_np(got), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("flip", [False, True])
def test_flip_filter_and_int_padding(flip):
    rng = np.random.default_rng(1)
    x = _rand(rng, 1, 7, 6, 5, 3)
    f = [1.0, 2.0, 4.0, 0.5]
    got = U.upfirdn_3d(tf.constant(x), f, up=2, down=(1, 2, 1), padding=1, flip_filter=flip)
    want = R.upfirdn_3d_ref(x, f, up=2, down=(1, 2, 1), padding=1, flip_filter=flip)
    np.testing.assert_allclose(_np(got), want, rtol=1e-10, atol=1e-10)
    other = R.upfirdn_3d_ref(x, f, up=2, down=(1, 2, 1), padding=1, flip_filter=not flip)
    assert np.abs(want - other).max() > 1e-3  # the flag really matters for asymmetric taps


@pytest.mark.parametrize("host", HOSTS)
@pytest.mark.parametrize("factor", [2, (2, 2, 1), (1, 3, 2)])
def test_resampling_helpers_match_reference(monkeypatch, host, factor):
    _as_host(monkeypatch, host)
    rng = np.random.default_rng(2)
    x = _rand(rng, 2, 6, 6, 6, 2)
    f = U.setup_filter(F4)
    for pad in (0, (1, 0, 2)):
        np.testing.assert_allclose(_np(U.upsample_3d(tf.constant(x), f, factor, padding=pad, gain=2)),
                                   R.upsample_3d_ref(x, f, factor, padding=pad, gain=2), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(_np(U.downsample_3d(tf.constant(x), f, factor, padding=pad)),
                                   R.downsample_3d_ref(x, f, factor, padding=pad), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_np(U.filter_3d(tf.constant(x), f, padding=1)), R.filter_3d_ref(x, f, padding=1),
                               rtol=1e-5, atol=1e-6)


def _stylegan2_pads(k, up=1, down=1):
    """StyleGAN2's padding rule (upfirdn2d.upsample2d / downsample2d / filter2d) for k taps, written out here so
    that neither the op nor the reference is checked against itself."""
    if up > 1:
        p = k - up
        return (p + 1) // 2 + up - 1, p // 2
    if down > 1:
        p = k - down
        return (p + 1) // 2, p // 2
    return k // 2, (k - 1) // 2


def test_reference_pads_follow_stylegan2():
    for k in range(1, 9):
        assert R.resample_pads(k) == _stylegan2_pads(k)
        for factor in (2, 3, 4):
            assert R.resample_pads(k, up=factor) == _stylegan2_pads(k, up=factor), (k, factor)
            assert R.resample_pads(k, down=factor) == _stylegan2_pads(k, down=factor), (k, factor)


@pytest.mark.parametrize("up,down", [((2, 1, 3), (1, 1, 1)), ((1, 1, 1), (2, 3, 1)), ((1, 1, 1), (1, 1, 1))])
@pytest.mark.parametrize("taps", [F4, [1, 2, 1], [1, 4, 6, 4, 1]])
def test_op_pads_follow_stylegan2(up, down, taps):
    extra = (1, 0, 2, 3, 0, 1)
    _, pads = U._resample_setup(taps, up, down, extra, 1)
    resampling = max(up) > 1 or max(down) > 1
    for axis, (u, d) in enumerate(zip(up, down, strict=True)):
        k = len(taps) if (u > 1 or d > 1 or not resampling) else 1  # an axis not resampled is not filtered
        p0, p1 = _stylegan2_pads(k, u, d)
        assert pads[axis] == (p0 + extra[2 * axis], p1 + extra[2 * axis + 1]), (axis, u, d)


def test_output_sizes_and_untouched_axes():
    x = tf.random.normal([1, 8, 6, 5, 1])
    f = U.setup_filter(F4)
    assert U.upsample_3d(x, f, (2, 2, 1)).shape == (1, 16, 12, 5, 1)
    assert U.downsample_3d(x, f, (2, 2, 1)).shape == (1, 4, 3, 5, 1)
    assert U.filter_3d(x, f).shape == x.shape
    # An axis that is not resampled is not blurred either: a W-only ramp passes unchanged.
    ramp = tf.tile(tf.reshape(tf.range(5, dtype=tf.float32), [1, 1, 1, 5, 1]), [1, 8, 6, 1, 1])
    up = U.upsample_3d(ramp, f, (2, 2, 1))
    np.testing.assert_allclose(_np(up)[0, 4:12, 3:9, :, 0], np.broadcast_to(np.arange(5.0), (8, 6, 5)), atol=1e-5)


@pytest.mark.parametrize("factor", [2, (2, 2, 1)])
def test_constant_volume_stays_constant_in_interior(factor):
    f = U.setup_filter(F4)
    x = tf.fill([1, 8, 8, 8, 2], 0.75)
    up = _np(U.upsample_3d(x, f, factor))
    np.testing.assert_allclose(up[:, 2:-2, 2:-2, 2:-2], 0.75, rtol=1e-6)  # factor**3 gain, not factor**2
    down = _np(U.downsample_3d(x, f, factor))
    np.testing.assert_allclose(down[:, 1:-1, 1:-1, 1:-1], 0.75, rtol=1e-6)


@pytest.mark.parametrize("up", [2, (2, 2, 1), (1, 2, 3)])
@pytest.mark.parametrize("k", [3, 1])
@pytest.mark.parametrize("host", HOSTS)
def test_upsample_conv_matches_reference_and_composition(monkeypatch, host, up, k):
    _as_host(monkeypatch, host)
    rng = np.random.default_rng(3)
    x = _rand(rng, 2, 4, 5, 3, 3)
    w = _rand(rng, k, k, k, 3, 4)  # random, so any kernel axis left unflipped shows
    f = U.setup_filter(F4)
    got = _np(U.upsample_conv_3d(tf.constant(x), tf.constant(w), f, up=up))
    np.testing.assert_allclose(got, R.upsample_conv_3d_ref(x, w, f, up=up), rtol=1e-9, atol=1e-9)
    unfused = _np(conv3d(U.upsample_3d(tf.constant(x), f, up), tf.constant(w), "SAME"))
    assert got.shape == unfused.shape
    m = k // 2  # pad once (StyleGAN2): only the outermost layer may differ from the unfused composition
    inner = (slice(None), *(slice(m, s - m) for s in got.shape[1:4]))
    np.testing.assert_allclose(got[inner], unfused[inner], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("down", [2, (2, 2, 1)])
@pytest.mark.parametrize("k", [3, 1])
@pytest.mark.parametrize("host", HOSTS)
def test_conv_downsample_matches_reference_and_composition(monkeypatch, host, down, k):
    _as_host(monkeypatch, host)
    rng = np.random.default_rng(4)
    x = _rand(rng, 2, 10, 8, 6, 3)
    w = _rand(rng, k, k, k, 3, 2)
    f = U.setup_filter(F4)
    got = _np(U.conv_downsample_3d(tf.constant(x), tf.constant(w), f, down=down))
    np.testing.assert_allclose(got, R.conv_downsample_3d_ref(x, w, f, down=down), rtol=1e-9, atol=1e-9)
    unfused = _np(U.downsample_3d(conv3d(tf.constant(x), tf.constant(w), "SAME"), f, down))
    assert got.shape == unfused.shape
    m = 0 if k == 1 else 1
    inner = (slice(None), *(slice(m, s - m) for s in got.shape[1:4]))
    np.testing.assert_allclose(got[inner], unfused[inner], rtol=1e-9, atol=1e-9)


def test_gradient_numerically():
    x = tf.constant(np.random.default_rng(5).standard_normal((1, 2, 2, 1, 1)))
    def fn(x):
        return U.upfirdn_3d(x, [1.0, 2.0, 0.5], up=(2, 1, 2), down=(1, 1, 2), padding=(1, 0, 0, 1, 2, -1))

    theoretical, numerical = tf.test.compute_gradient(fn, [x])
    np.testing.assert_allclose(theoretical[0], numerical[0], rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("which", ["up", "down"])
@pytest.mark.parametrize("host", HOSTS)
def test_resampling_conv_gradients_are_adjoints_of_reference(monkeypatch, host, which):
    _as_host(monkeypatch, host)
    # Bilinear in (x, w): <d/dx sum(op(x, w) v), x2> = sum(ref(x2, w) v) and likewise for w.
    rng = np.random.default_rng(7)
    f = U.setup_filter(F4)
    factor = (2, 1, 2)
    op, ref = {"up": (U.upsample_conv_3d, R.upsample_conv_3d_ref),
               "down": (U.conv_downsample_3d, R.conv_downsample_3d_ref)}[which]
    x, x2 = _rand(rng, 2, 4, 3, 4, 2), _rand(rng, 2, 4, 3, 4, 2)
    w, w2 = _rand(rng, 3, 3, 3, 2, 3), _rand(rng, 3, 3, 3, 2, 3)
    v = _rand(rng, *ref(x, w, f, factor).shape)
    xt, wt = tf.constant(x), tf.constant(w)
    with tf.GradientTape() as tape:
        tape.watch([xt, wt])
        loss = tf.reduce_sum(op(xt, wt, f, factor) * v)
    gx, gw = tape.gradient(loss, [xt, wt])
    np.testing.assert_allclose(np.sum(_np(gx) * x2), np.sum(ref(x2, w, f, factor) * v), rtol=1e-10)
    np.testing.assert_allclose(np.sum(_np(gw) * w2), np.sum(ref(x, w2, f, factor) * v), rtol=1e-10)


@pytest.mark.parametrize("host", HOSTS)
def test_gradient_is_adjoint_of_reference(monkeypatch, host):
    _as_host(monkeypatch, host)
    # upfirdn is linear in x: <d/dx sum(op(x) * v), x2> must equal <ref(x2), v> for any x2.
    rng = np.random.default_rng(6)
    x, x2 = _rand(rng, 2, 5, 4, 6, 2), _rand(rng, 2, 5, 4, 6, 2)
    kw = dict(up=(2, 1, 2), down=(1, 2, 2), padding=(2, -1, 0, 1, 1, 2), gain=3.0)
    f = [0.5, 1.0, 2.0, 1.5]
    v = _rand(rng, *R.upfirdn_3d_ref(x, f, **kw).shape)
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(U.upfirdn_3d(xt, f, **kw) * v)
    grad = _np(tape.gradient(loss, xt))
    np.testing.assert_allclose(np.sum(grad * x2), np.sum(R.upfirdn_3d_ref(x2, f, **kw) * v), rtol=1e-10)


def test_float16_keeps_dtype_and_tf_function_with_dynamic_batch():
    f = U.setup_filter(F4)
    x32 = tf.random.normal([2, 4, 4, 4, 3], seed=1)
    w32 = tf.random.normal([3, 3, 3, 3, 2], seed=2)
    y16 = U.upsample_conv_3d(tf.cast(x32, tf.float16), tf.cast(w32, tf.float16), f)
    assert y16.dtype == tf.float16
    np.testing.assert_allclose(_np(tf.cast(y16, tf.float32)), _np(U.upsample_conv_3d(x32, w32, f)), atol=0.05)

    @tf.function(input_signature=[tf.TensorSpec([None, 4, 4, 4, 3])])
    def down_up(x):
        return U.downsample_3d(U.upsample_3d(x, f, (2, 1, 2)), f, (2, 1, 2))

    assert down_up(x32).shape == x32.shape


def test_bad_arguments_raise():
    x = tf.zeros([1, 4, 4, 4, 1])
    with pytest.raises(ValueError, match="padding"):
        U.upfirdn_3d(x, F4, padding=(1, 2))
    with pytest.raises(ValueError, match="leaves nothing"):
        U.upfirdn_3d(x, [1], padding=-2)
    with pytest.raises(ValueError, match="shorter"):
        U.upfirdn_3d(x, F4, padding=-1)
    with pytest.raises(ValueError, match="up"):
        U.upfirdn_3d(x, F4, up=0)
    with pytest.raises(ValueError, match="NDHWC"):
        U.upfirdn_3d(tf.zeros([4, 4, 4, 1]), F4)


TRANSPOSED_CONVS = {"polyphase": U._transposed_conv_polyphase, "conv3d_transpose": U._transposed_conv_tf}


@pytest.mark.parametrize("path", list(TRANSPOSED_CONVS))
@pytest.mark.parametrize("up,k", [(2, 3), ((2, 1, 3), 3), ((1, 2, 2), 4), (3, 1)])
def test_transposed_conv_paths_match_reference(monkeypatch, path, up, k):
    monkeypatch.setattr(U, "_transposed_conv", TRANSPOSED_CONVS[path])
    rng = np.random.default_rng(11)
    x = _rand(rng, 2, 3, 4, 5, 2)
    w = _rand(rng, k, k, k, 2, 3)
    f = U.setup_filter(F4)
    got = _np(U.upsample_conv_3d(tf.constant(x), tf.constant(w), f, up=up))
    np.testing.assert_allclose(got, R.upsample_conv_3d_ref(x, w, f, up=up), rtol=1e-9, atol=1e-9)


def test_transposed_conv_paths_agree_to_second_order(monkeypatch):
    # R1 and path length differentiate twice through the generator's upsampling convs.
    rng = np.random.default_rng(12)
    x = tf.constant(_rand(rng, 2, 3, 4, 3, 2))
    w = tf.constant(_rand(rng, 3, 3, 3, 2, 3))
    f = U.setup_filter(F4)
    results = []
    for path in TRANSPOSED_CONVS.values():
        monkeypatch.setattr(U, "_transposed_conv", path)
        with tf.GradientTape() as outer:
            outer.watch(w)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = U.upsample_conv_3d(x, w, f, up=(2, 2, 1))
                loss = tf.reduce_sum(tf.sin(y))
            gx = inner.gradient(loss, x)
            penalty = tf.reduce_sum(gx * gx)
        results.append((_np(gx), _np(outer.gradient(penalty, w))))
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("gpu,shape,polyphase", [
    (False, [2, 20, 24, 28, 16], True), (False, [1, 40, 48, 56, 96], False), (True, [2, 20, 24, 28, 16], False)])
def test_transposed_conv_is_polyphase_only_on_cpu_for_small_inputs(monkeypatch, gpu, shape, polyphase):
    monkeypatch.setattr(C, "_have_gpu", lambda: gpu)
    assert U._use_polyphase(tf.zeros(shape)) == polyphase


@pytest.mark.parametrize("down", [2, (2, 1, 2)])
def test_conv_downsample_second_order_matches_plain_strided_conv(down):
    # D's R1 differentiates twice through the polyphase strided conv; the plain form filters (TensorFlow ops)
    # and runs TensorFlow's strided conv3d with its own gradients. Odd sizes exercise the phase padding.
    rng = np.random.default_rng(13)
    x = tf.constant(_rand(rng, 2, 5, 6, 7, 2))
    w = tf.constant(_rand(rng, 3, 3, 3, 2, 3))
    f = U.setup_filter(F4)
    factors = U._factors(down, "down")
    taps3, down_pads = U._resample_setup(f, (1, 1, 1), factors, 0, 1)
    pads = tuple((p0 + 1, p1 + 1) for p0, p1 in down_pads)  # + the 3-tap conv's SAME padding

    def plain(x, w):
        y = U._upfirdn_separable(x, taps3, (1, 1, 1), (1, 1, 1), pads)
        return tf.nn.conv3d(y, w, strides=[1, *factors, 1], padding="VALID")

    results = []
    for fn in (lambda x, w: U.conv_downsample_3d(x, w, f, down=down), plain):
        with tf.GradientTape() as outer:
            outer.watch([x, w])
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = fn(x, w)
                loss = tf.reduce_sum(tf.sin(y))
            gx = inner.gradient(loss, x)
            penalty = tf.reduce_sum(gx * gx)
        results.append((_np(y), _np(gx), *[_np(g) for g in outer.gradient(penalty, [x, w])]))
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-9)
