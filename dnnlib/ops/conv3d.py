"""Stride-1 3D convolution (NDHWC) with a choice of twice-differentiable gradients.

Every network conv goes through `conv3d`, which has three paths and takes the one measured fastest for its
shapes and dtype on this machine (dnnlib/ops/autotune.py: timed at first trace, cached per user; TensorFlow's own
path is kept unless another is clearly faster):
  - 'tf': tf.nn.conv3d and TensorFlow's own gradients (cuDNN on a GPU; `_forward`);
  - 'matmul_1x1', unpadded 1x1x1 convs only: a matmul over channels, whose autodiff gradients are matmuls too;
  - 'fast_grad' (`_conv_fast`): the gradients rewritten in other ops, for CPUs where TensorFlow's
    Conv3DBackpropInputV2 and Conv3DBackpropFilterV2 run much slower than the forward Conv3D:
      input gradient  = forward conv of dy with the kernel flipped in all three spatial axes and in/out
                        channels swapped (padding mirrored),
      filter gradient = one 2-D filter gradient per depth tap, depth folded into the batch
                        (`_filter_grad_depth_taps`).
    Both gradient functions are custom-gradient'ed in terms of each other, so second-order gradients
    (R1, path length) stay on that path.
With autotuning off (DNNLIB_AUTOTUNE=0) the fixed default is `conv_path`'s device rule.
"""

import functools

import tensorflow as tf

from dnnlib.ops import (
    autotune,
    xla_slice_grad,  # noqa: F401  (slices differentiable twice under XLA)
)


@functools.cache
def _have_gpu():
    return len(tf.config.list_physical_devices("GPU")) > 0


# ----------------------------------------------------------------------------------------------
# Padding helpers. Padding is normalised to ((d0, d1), (h0, h1), (w0, w1)); negative = crop.


def _same_pads(ksize):
    return tuple(((k - 1) // 2, k - 1 - (k - 1) // 2) for k in ksize)


def explicit_pads(padding, ksize):
    """'SAME' | 'VALID' | int | (pd, ph, pw) | (d0, d1, h0, h1, w0, w1) -> ((d0,d1),(h0,h1),(w0,w1))."""
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "SAME":
            return _same_pads(ksize)
        if mode == "VALID":
            return ((0, 0),) * 3
        raise ValueError(f"conv3d padding must be 'SAME', 'VALID' or int(s), got {padding!r}")
    if isinstance(padding, int):
        return ((padding, padding),) * 3
    padding = tuple(int(p) for p in padding)
    if len(padding) == 3:
        return tuple((p, p) for p in padding)
    if len(padding) == 6:
        return tuple((padding[2 * i], padding[2 * i + 1]) for i in range(3))
    raise ValueError(f"conv3d padding must have 3 or 6 entries, got {padding!r}")


def pad_or_crop(x, pads):
    """Zero-pad (positive) or crop (negative) the three spatial axes of an NDHWC tensor."""
    if any(p < 0 for pair in pads for p in pair):
        begin = [0] + [max(-lo, 0) for lo, _ in pads] + [0]
        size = [-1] + [x.shape[1 + i] - max(-lo, 0) - max(-hi, 0) for i, (lo, hi) in enumerate(pads)] + [-1]
        if any(s <= 0 for s in size[1:4]):
            raise ValueError(f"cropping {pads} leaves nothing of shape {x.shape}")
        x = tf.slice(x, begin, size)
    if any(p > 0 for pair in pads for p in pair):
        x = tf.pad(x, [[0, 0]] + [[max(lo, 0), max(hi, 0)] for lo, hi in pads] + [[0, 0]])
    return x


def slice_axis(x, axis, start, length):
    """x restricted to [start, start + length) along `axis`, as tf.slice (no op when that is all of x): on CPU
    TensorFlow's StridedSlice and especially its gradient run slower than Slice and its gradient (a Pad)."""
    if start == 0 and length == x.shape[axis]:
        return x
    begin = [0] * x.shape.rank
    size = [-1] * x.shape.rank
    begin[axis], size[axis] = start, length
    return tf.slice(x, begin, size)


def _transposed_pads(pads, ksize):
    # Input gradient of a conv with pads (lo, hi) is a conv of dy with pads (k-1-lo, k-1-hi).
    return tuple((k - 1 - lo, k - 1 - hi) for (lo, hi), k in zip(pads, ksize, strict=True))


def flip_swap(w):
    """Kernel of the adjoint conv: flipped in all three spatial axes, in/out channels swapped."""
    return tf.transpose(tf.reverse(w, axis=[0, 1, 2]), [0, 1, 2, 4, 3])


# ----------------------------------------------------------------------------------------------
# Plain forward ops (no custom gradient).


def _forward(x, w, pads):
    ksize = tuple(w.shape[:3])
    if pads == _same_pads(ksize):
        return tf.nn.conv3d(x, w, strides=[1] * 5, padding="SAME")
    return tf.nn.conv3d(pad_or_crop(x, pads), w, strides=[1] * 5, padding="VALID")


def _filter_grad_depth_taps(x, dy, pads, ksize):
    """The filter gradient as kd 2-D filter gradients, one per depth tap a, with depth folded into the batch:
    dw[a] = Conv2DBackpropFilter(x rows d + a - d0, dy rows d) over the rows d where both exist. TensorFlow's
    2-D filter gradient is much faster on CPU than its 3-D one."""
    cin, cout = x.shape[-1], dy.shape[-1]
    (d0, _), hw_pads = pads[0], pads[1:]
    depth_in, depth_out = x.shape[1], dy.shape[1]
    if hw_pads == _same_pads(ksize[1:]) and x.shape[2:4] == dy.shape[2:4]:
        mode = "SAME"
    else:
        x, mode = pad_or_crop(x, ((0, 0), *hw_pads)), "VALID"
    taps = []
    for a in range(ksize[0]):
        shift = a - d0  # x row = dy row + shift
        start, stop = max(0, -shift), min(depth_out, depth_in - shift)
        if stop <= start:  # this tap only ever meets padding
            taps.append(tf.zeros([*ksize[1:], cin, cout], dy.dtype))
            continue
        xa = slice_axis(x, 1, start + shift, stop - start)
        dya = slice_axis(dy, 1, start, stop - start)
        taps.append(tf.raw_ops.Conv2DBackpropFilter(
            input=tf.reshape(xa, [-1, *xa.shape[2:]]), filter_sizes=[*ksize[1:], cin, cout],
            out_backprop=tf.reshape(dya, [-1, *dya.shape[2:]]), strides=[1, 1, 1, 1], padding=mode))
    return tf.stack(taps)


# ----------------------------------------------------------------------------------------------
# Custom-gradient ops: conv and its filter gradient, each differentiated in terms of the other.


def _conv_fast(x, w, pads):
    ksize = tuple(w.shape[:3])
    tpads = _transposed_pads(pads, ksize)

    @tf.custom_gradient
    def op(x, w):
        y = _forward(x, w, pads)

        def grad(dy):
            dx = _conv_fast(dy, flip_swap(w), tpads)
            dw = _filter_grad_fast(x, dy, pads, ksize)
            return dx, dw

        return y, grad

    return op(x, w)


def _filter_grad_fast(x, dy, pads, ksize):
    tpads = _transposed_pads(pads, ksize)

    @tf.custom_gradient
    def op(x, dy):
        dw = _filter_grad_depth_taps(x, dy, pads, ksize)

        def grad(ddw):
            # <ddw, dw(x, dy)> is bilinear: d/dx is the input gradient of conv(., ddw) at dy,
            # d/ddy is conv(x, ddw).
            dx = _conv_fast(dy, flip_swap(ddw), tpads)
            ddy = _conv_fast(x, ddw, pads)
            return dx, ddy

        return dw, grad

    return op(x, dy)


def _conv_1x1(x, w):
    # A 1x1x1 conv is a matmul over channels; its autodiff gradients are matmuls too.
    cin, cout = w.shape[-2], w.shape[-1]
    y = tf.matmul(tf.reshape(x, [-1, cin]), tf.reshape(w, [cin, cout]))
    spatial = x.shape[1:4]
    if spatial.is_fully_defined():
        return tf.reshape(y, [-1, *spatial, cout])
    return tf.reshape(y, tf.concat([tf.shape(x)[:-1], [cout]], axis=0))


def conv3d(x, w, padding="SAME"):
    """Stride-1 conv of x [N,D,H,W,Cin] with w [kd,kh,kw,Cin,Cout].

    padding: 'SAME', 'VALID', an int, (pd, ph, pw) or (d0, d1, h0, h1, w0, w1) zero padding
    (negative crops). Twice differentiable; the path is measured and cached per shape (see the module doc).
    """
    x = tf.convert_to_tensor(x)
    w = tf.cast(tf.convert_to_tensor(w), x.dtype)
    if w.shape.rank != 5 or x.shape.rank != 5:
        raise ValueError(f"conv3d expects x rank 5 (NDHWC) and w rank 5, got {x.shape} and {w.shape}")
    if x.shape[-1] != w.shape[-2]:
        raise ValueError(f"conv3d channel mismatch: x {x.shape} vs w {w.shape}")
    ksize = tuple(w.shape[:3])
    pads = explicit_pads(padding, ksize)
    return run_path(choose_path(x, w, pads), x, w, pads)


def run_path(path, x, w, pads):
    """conv3d by the named path (the functions are looked up when called: tests substitute them)."""
    if path == "tf":
        return _forward(x, w, pads)
    if path == "matmul_1x1":
        return _conv_1x1(x, w)
    return _conv_fast(x, w, pads)


def candidates(ksize, pads):
    """conv3d's paths for this kernel and padding, TensorFlow's own first."""
    if tuple(ksize) == (1, 1, 1) and tuple(pads) == ((0, 0),) * 3:
        return ("tf", "fast_grad", "matmul_1x1")
    return ("tf", "fast_grad")


def choose_path(x, w, pads):
    """conv3d's path for these tensors (static shapes: measured and cached; otherwise the fixed default)."""
    ksize = tuple(w.shape[:3])
    fixed = conv_path(_have_gpu(), ksize, pads)
    names = candidates(ksize, pads)
    if not x.shape.is_fully_defined():  # nothing to time: the fixed default unless forced
        return autotune.choose("conv3d", "", fixed, names)
    key = f"x{x.shape.as_list()} w{w.shape.as_list()} pads{list(pads)} {x.dtype.name}"
    specs = [(x.shape, x.dtype), (w.shape, x.dtype)]
    timer = autotune.gradient_timer({n: lambda a, b, n=n: run_path(n, a, b, pads) for n in names}, specs)
    return autotune.choose("conv3d", key, fixed, names, timer)


def conv_path(gpu, ksize, pads):
    """conv3d's fixed default (autotuning off or not possible) on a machine with (gpu=True) or without a GPU,
    whatever the dtype: 'tf' (tf.nn.conv3d and TensorFlow's own gradients, cuDNN), 'matmul_1x1' (CPU, unpadded
    1x1x1) or 'fast_grad' (CPU, the custom gradients)."""
    if gpu:
        return "tf"
    if tuple(ksize) == (1, 1, 1) and tuple(pads) == ((0, 0),) * 3:
        return "matmul_1x1"
    return "fast_grad"
