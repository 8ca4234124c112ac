"""conv3d: each path (CPU fast gradients, CPU 1x1x1 matmul, GPU tf.nn.conv3d) forward and first-order gradients
against NumPy, second order against plain tf.nn.conv3d autodiff; the automatic choice of path."""

import numpy as np
import pytest
import tensorflow as tf

from dnnlib.ops import conv3d as C
from dnnlib.ops.conv3d_ref import conv3d_filter_grad_ref, conv3d_input_grad_ref, conv3d_ref
from tests.utils import assert_conv3d_matches_reference

PADDINGS = ["SAME", "VALID", 2, (1, 0, 2, -1, 0, 1)]



def _cpu_conv(x, w, padding):
    # conv3d's CPU choice: the 1x1x1 matmul for unpadded 1x1x1 kernels, else the fast custom gradients.
    pads = C.explicit_pads(padding, tuple(w.shape[:3]))
    if tuple(w.shape[:3]) == (1, 1, 1) and pads == ((0, 0),) * 3:
        return C._conv_1x1(x, w)
    return C._conv_fast(x, w, pads)


PATHS = {
    "conv3d": C.conv3d,  # the automatic choice (CPU here)
    "fast": lambda x, w, padding: C._conv_fast(x, w, C.explicit_pads(padding, tuple(w.shape[:3]))),
    "gpu": lambda x, w, padding: C._forward(x, w, C.explicit_pads(padding, tuple(w.shape[:3]))),
}
# Every padding/kernel case through the automatic choice and the fast path; the GPU path (tf.nn.conv3d, run on
# CPU here) for two cases. The 1x1x1 matmul is what "conv3d" picks for k = 1 without padding.
CASES = [(path, k, p) for path in ("conv3d", "fast") for k in (3, 1, 2) for p in PADDINGS] + [
    ("gpu", k, p) for k, p in ((3, "SAME"), (2, (1, 0, 2, -1, 0, 1)))]


@pytest.mark.parametrize("path,k,padding", CASES)
def test_path_matches_reference_and_autodiff(path, k, padding):
    assert_conv3d_matches_reference(PATHS[path], k, padding)


def test_third_order_through_nested_custom_gradients():
    # The gradient functions are themselves custom-gradient'ed in terms of each other: go one level deeper.
    rng = np.random.default_rng(7)
    x = tf.constant(rng.standard_normal((1, 4, 3, 5, 2)))
    w = tf.constant(rng.standard_normal((3, 3, 3, 2, 2)))

    def third(conv):
        with tf.GradientTape() as t3:
            t3.watch(w)
            with tf.GradientTape() as t2:
                t2.watch(x)
                with tf.GradientTape() as t1:
                    t1.watch(x)
                    loss = tf.reduce_sum(tf.sin(conv(x, w)))
                gx = t1.gradient(loss, x)
                pen = tf.reduce_sum(tf.sin(gx))
            gxx = t2.gradient(pen, x)
            z = tf.reduce_sum(tf.square(gxx))
        return t3.gradient(z, w)

    mine = third(lambda a, b: C._conv_fast(a, b, C.explicit_pads("SAME", (3, 3, 3))))
    plain = third(lambda a, b: tf.nn.conv3d(a, b, [1] * 5, "SAME"))
    np.testing.assert_allclose(mine.numpy(), plain.numpy(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("gpu,ksize,padding,expect", [
    (False, 3, "SAME", "fast"), (False, 1, "SAME", "1x1"), (False, 1, 1, "fast"),
    (True, 3, "SAME", "gpu"), (True, 1, "SAME", "gpu")])
def test_automatic_path_choice(monkeypatch, gpu, ksize, padding, expect):
    # A GPU keeps tf.nn.conv3d and cuDNN's gradients; on CPU unpadded 1x1x1 kernels are a matmul, the rest
    # get the fast custom gradients. The device is faked (no GPU here).
    calls = []
    for name, label in (("_forward", "gpu"), ("_conv_1x1", "1x1"), ("_conv_fast", "fast")):
        orig = getattr(C, name)
        monkeypatch.setattr(C, name, lambda *a, orig=orig, label=label: calls.append(label) or orig(*a))
    monkeypatch.setattr(C, "_have_gpu", lambda: gpu)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 3, 4, 5, 2))
    w = rng.standard_normal((ksize, ksize, ksize, 2, 3))
    y = C.conv3d(tf.constant(x), tf.constant(w), padding)
    assert calls[0] == expect
    np.testing.assert_allclose(y.numpy(), conv3d_ref(x, w, padding), rtol=1e-10, atol=1e-10)


def test_float32_graph_mode_with_dynamic_batch_and_variables():
    rng = np.random.default_rng(9)
    w = tf.Variable(rng.standard_normal((3, 3, 3, 4, 5)).astype(np.float32))
    x = rng.standard_normal((2, 6, 5, 4, 4)).astype(np.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 6, 5, 4, 4])])
    def step(x):
        with tf.GradientTape() as tape:
            y = C.conv3d(x, w, "SAME")
            y1 = C.conv3d(y, tf.ones([1, 1, 1, 5, 2]), "SAME")
            loss = tf.reduce_sum(tf.square(y1))
        return y1, tape.gradient(loss, w)

    y1, gw = step(tf.constant(x))
    assert y1.shape == (2, 6, 5, 4, 2)
    y_ref = conv3d_ref(conv3d_ref(x, w.numpy()), np.ones([1, 1, 1, 5, 2]))
    np.testing.assert_allclose(y1.numpy(), y_ref, rtol=1e-4, atol=1e-4)
    dy = conv3d_input_grad_ref((2, 6, 5, 4, 5), np.ones([1, 1, 1, 5, 2]), 2 * y_ref)
    np.testing.assert_allclose(gw.numpy(), conv3d_filter_grad_ref(x, dy, (3, 3, 3)), rtol=1e-3, atol=1e-2)


def test_float16_and_bad_arguments():
    x = tf.random.normal([1, 4, 4, 4, 2], seed=3)
    w = tf.random.normal([3, 3, 3, 2, 2], seed=4)
    y16 = C.conv3d(tf.cast(x, tf.float16), tf.cast(w, tf.float16))
    assert y16.dtype == tf.float16
    np.testing.assert_allclose(tf.cast(y16, tf.float32).numpy(), C.conv3d(x, w).numpy(), atol=0.05)
    with pytest.raises(ValueError, match="channel"):
        C.conv3d(x, tf.zeros([3, 3, 3, 3, 1]))
    with pytest.raises(ValueError, match="padding"):
        C.conv3d(x, w, "FULL")
