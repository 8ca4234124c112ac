"""Upsample, pad, FIR-filter, downsample (upfirdn) for NDHWC volumes, with per-axis factors.

StyleGAN2-ADA's upfirdn2d extended to 3D: zero insertion by `up`, zero-pad (or crop) after
insertion, convolve with a separable FIR filter, keep every `down`-th sample. The 1-D filter is
applied along D, H and W in turn, by one of two paths: one C++ op (upfirdn_3d_kernel.cc, built at first use;
`_upfirdn_kernel`) or three depthwise-conv passes of TensorFlow ops (`_upfirdn_separable`). The C++ op is a
candidate only on CPU for float32/64 where it builds, outside XLA and SavedModel exports (`_use_kernel`); where
it is, the faster of the two for the shape is measured at first trace and cached (dnnlib/ops/autotune.py; fixed
default with autotuning off: the kernel). upsample_conv_3d's transposed conv is chosen the same way between
tf.nn.conv3d_transpose and a polyphase sum of stride-1 convs (fixed default: `transposed_conv_path`). Unlike the
original 3D code, upsampling multiplies by prod(up) (factor**3 for isotropic 2x), so a constant volume stays
constant away from the borders.
"""

import itertools
import os

import numpy as np
import tensorflow as tf

from dnnlib.ops import autotune, custom_op_build
from dnnlib.ops import conv3d as _conv3d_mod
from dnnlib.ops.conv3d import conv3d, slice_axis

SCOPE = "upfirdn"

# ----------------------------------------------------------------------------------------------
# Argument parsing.


def setup_filter(f=(1, 3, 3, 1), normalize=True, flip=False, gain=1):
    """1-D float32 taps, normalised to sum 1, scaled by gain**(1/3) (the filter is used on 3 axes)."""
    f = np.asarray([1] if f is None else f, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"FIR filter must be a non-empty 1-D list of taps, got shape {f.shape}")
    if normalize:
        total = f.sum()
        if total == 0:
            raise ValueError("FIR filter taps sum to zero: cannot normalise")
        f = f / total
    if flip:
        f = f[::-1]
    f = f * (float(gain) ** (1.0 / 3.0))
    return f.astype(np.float32)


def _triple(v, name):
    if isinstance(v, (int, np.integer)):
        v = (int(v),) * 3
    v = tuple(int(a) for a in v)
    if len(v) != 3:
        raise ValueError(f"{name} must be an int or 3 ints (D, H, W), got {v!r}")
    return v


def _factors(v, name):
    v = _triple(v, name)
    if any(a < 1 for a in v):
        raise ValueError(f"{name} factors must be >= 1, got {v!r}")
    return v


def _pads6(padding):
    """int | (pd, ph, pw) | (d0, d1, h0, h1, w0, w1) -> ((d0, d1), (h0, h1), (w0, w1))."""
    if isinstance(padding, (int, np.integer)):
        return ((int(padding), int(padding)),) * 3
    p = tuple(int(a) for a in padding)
    if len(p) == 3:
        return tuple((a, a) for a in p)
    if len(p) == 6:
        return ((p[0], p[1]), (p[2], p[3]), (p[4], p[5]))
    raise ValueError(f"padding must be an int, 3 ints or 6 ints, got {padding!r}")


def _taps(f):
    """Filter as a float64 NumPy 1-D array (static: it shapes the graph)."""
    if f is None:
        return np.ones([1])
    if isinstance(f, tf.Tensor | tf.Variable):
        f = f.numpy()
    f = np.asarray(f, dtype=np.float64)
    if f.ndim != 1 or f.size == 0:
        raise ValueError(f"FIR filter must be 1-D taps (use setup_filter), got shape {f.shape}")
    return f


# ----------------------------------------------------------------------------------------------
# Separable implementation: one 1-D upfirdn per axis, done on a free reshape of the tensor.


def _pad_axis(x, lo, hi):
    """Zero-pad (positive) or crop (negative) axis 1 of a rank-3 tensor."""
    length = x.shape[1]
    if lo < 0 or hi < 0:
        x = slice_axis(x, 1, max(-lo, 0), length - max(-lo, 0) - max(-hi, 0))
    if lo > 0 or hi > 0:
        x = tf.pad(x, [[0, 0], [max(lo, 0), max(hi, 0)], [0, 0]])
    return x


def _correlate_axis(x, taps, out_len, down=1, pads=(0, 0), horizontal=False):
    """y[j] = sum_t taps[t] * xp[j*down + t] along axis 1 of x [A, L, B], xp = x zero-padded (or cropped,
    negative) by pads, the same taps for every column.

    A depthwise conv2d on [A, L, 1, B] with the taps broadcast over the B "channels": on CPU faster than
    shifted slices or a 1-channel conv2d. The zero padding goes to the conv as explicit padding, which saves a Pad
    copy and its gradient per pass.
    horizontal: lay the rows out as [A, 1, L, B] with a 1 x taps kernel instead; TensorFlow's CPU depthwise
    kernels run that faster (fwd+bwd) when B is only the channel count (the W axis of NDHWC)."""
    taps = np.asarray(taps, dtype=np.float64)
    lo, hi = pads
    if lo < 0 or hi < 0:
        x = _pad_axis(x, min(lo, 0), min(hi, 0))
        lo, hi = max(lo, 0), max(hi, 0)
    if len(taps) == 1 and down == 1:
        return slice_axis(_pad_axis(x, lo, hi), 1, 0, out_len) * tf.constant(taps[0], dtype=x.dtype)
    inner = x.shape[2]
    ax = 2 if horizontal else 1  # the filtered axis in the 4-D layout; the other spatial axis has size 1
    kshape = [1, len(taps)] if horizontal else [len(taps), 1]
    kernel = tf.broadcast_to(tf.constant(taps.reshape(*kshape, 1, 1), dtype=x.dtype), [*kshape, inner, 1])
    # Depthwise conv wants equal row/column strides; the other axis has size 1, so that is harmless.
    padding = [[0, 0], [0, 0], [0, 0], [0, 0]]
    padding[ax] = [lo, hi]
    y = tf.nn.depthwise_conv2d(tf.expand_dims(x, 3 - ax), kernel, strides=[1, down, down, 1],
                               padding=padding if lo or hi else "VALID")
    return tf.squeeze(slice_axis(y, ax, 0, out_len), axis=3 - ax)


def _upsample_axis_polyphase(x, taps, up, pad0, out_len, horizontal=False):
    """1-D upfirdn with down = 1 without materialising the zeros: output j reads x through the sub-filter
    taps[t0::up] of its phase (j - pad0) mod up; the phases are computed at the input rate and interleaved."""
    n = x.shape[1]
    q0 = (-pad0) // up  # floor: first q so that j = pad0 + up*q + rho <= 0
    j0 = pad0 + up * q0
    nq = -(-(out_len - j0) // up)  # ceil
    phases = []
    for rho in range(up):
        t0 = (-rho) % up
        c = (rho + t0) // up
        sub = taps[t0::up]
        if len(sub) == 0:
            phases.append(tf.zeros([tf.shape(x)[0], nq, x.shape[2]], dtype=x.dtype))
            continue
        lo = -(q0 + c)
        hi = (q0 + nq - 1 + c + len(sub) - 1) - (n - 1)
        phases.append(_correlate_axis(x, sub, nq, pads=(lo, hi), horizontal=horizontal))
    y = tf.reshape(tf.stack(phases, axis=2), [-1, nq * up, x.shape[2]])
    return slice_axis(y, 1, -j0, out_len)


def _out_length(n, num_taps, up, down, pad0, pad1):
    """Samples along one axis after zero insertion by up, padding (pad0, pad1), the filter and down."""
    return (n * up + pad0 + pad1 - num_taps) // down + 1


def _upfirdn_axis(x, axis, taps, up, down, pad0, pad1):
    """1-D upfirdn of x along spatial `axis` (1, 2 or 3) with correlation taps (already flipped)."""
    shape = x.shape
    length = shape[axis]
    inner = int(np.prod(shape[axis + 1:]))
    outer = [-1] + list(shape[1:axis])  # batch may be dynamic
    out_len = _out_length(length, len(taps), up, down, pad0, pad1)
    if up == 1 and down == 1 and len(taps) == 1 and pad0 == 0 and pad1 == 0:
        return x if taps[0] == 1 else x * tf.constant(taps[0], dtype=x.dtype)
    x = tf.reshape(x, [-1, length, inner])
    horizontal = axis == 3  # the W axis: its rows hold only the channels (see _correlate_axis)
    if up > 1 and down == 1:
        x = _upsample_axis_polyphase(x, taps, up, pad0, out_len, horizontal=horizontal)
    else:
        if up > 1:  # up and down on the same axis (rare): explicit zero insertion
            x = tf.pad(tf.expand_dims(x, 2), [[0, 0], [0, 0], [0, up - 1], [0, 0]])
            x = tf.reshape(x, [-1, length * up, inner])
        x = _correlate_axis(x, taps, out_len, down, (pad0, pad1), horizontal=horizontal)
    return tf.reshape(x, outer + [out_len] + list(shape[axis + 1:]))


def _upfirdn_separable(x, taps3, up, down, pads):
    for axis in range(3):
        x = _upfirdn_axis(x, axis + 1, taps3[axis], up[axis], down[axis], *pads[axis])
    return x


def _upfirdn(x, taps3, up, down, pads):
    """taps3: per-axis correlation taps (already flipped and scaled), float64 NumPy."""
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 5:
        raise ValueError(f"upfirdn_3d expects an NDHWC tensor, got shape {x.shape}")
    if not x.shape[1:].is_fully_defined():
        raise ValueError(f"upfirdn_3d needs static D, H, W, C, got shape {x.shape}")
    for n, t, u, (p0, p1) in zip(x.shape[1:4], taps3, up, pads, strict=True):
        if n * u + min(p0, 0) + min(p1, 0) <= 0:
            raise ValueError(f"upfirdn_3d cropping ({p0}, {p1}) leaves nothing of axis length {n * u}")
        if n * u + p0 + p1 < len(t):
            raise ValueError(f"upfirdn_3d: axis of length {n * u} padded by ({p0}, {p1}) is shorter than "
                             f"the {len(t)}-tap filter")
    # One name scope for these ops and their gradients, so that a profile can attribute their time.
    with tf.name_scope(SCOPE):
        return _run_fir(_fir_path(x, taps3, up, down, pads), x, taps3, up, down, pads)


_FIR_PATHS = ("tf_ops", "kernel")


def _run_fir(path, *args):
    # The functions are looked up when called: tests substitute them.
    return _upfirdn_kernel(*args) if path == "kernel" else _upfirdn_separable(*args)


def _fir_path(x, taps3, up, down, pads):
    """'kernel' or 'tf_ops': measured and cached where the kernel may run (`_use_kernel`), else 'tf_ops'."""
    if not _use_kernel(x):
        return autotune.choose("fir", "", "tf_ops")
    if not x.shape.is_fully_defined():  # nothing to time: the fixed default unless forced
        return autotune.choose("fir", "", "kernel", _FIR_PATHS)
    key = (f"x{x.shape.as_list()} taps{[np.round(t, 6).tolist() for t in taps3]} up{list(up)} down{list(down)} "
           f"pads{list(pads)} {x.dtype.name}")
    timer = autotune.gradient_timer({n: lambda a, n=n: _run_fir(n, a, taps3, up, down, pads) for n in _FIR_PATHS},
                                    [(x.shape, x.dtype)])
    return autotune.choose("fir", key, "kernel", _FIR_PATHS, timer)


# ----------------------------------------------------------------------------------------------
# CPU kernel: the separable upfirdn as one C++ op (upfirdn_3d_kernel.cc), built at first use.

_KERNEL_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "upfirdn_3d_kernel.cc")
_kernel = custom_op_build.LazyLibrary(_KERNEL_SOURCE, required_op="upfirdn3d",
                                      gradients={"Upfirdn3d": lambda op, dy: _kernel_grad(op, dy)})


def kernel_library():
    """The loaded op library (built on first call), or None if it cannot be built here."""
    return _kernel()


def _use_kernel(x):
    """The C++ kernel on CPU for float32/64 where it builds; TensorFlow ops on GPU, for other dtypes and in
    graphs traced for XLA or for a SavedModel."""
    return custom_op_build.kernel_path(x.dtype, gpu=_conv3d_mod._have_gpu(), kernel_builds=lambda: kernel_library()
                                       is not None) == "kernel"


def _upfirdn_kernel(x, taps3, up, down, pads):
    out = [_out_length(n, len(t), u, d, p0, p1) for n, t, u, d, (p0, p1) in zip(x.shape[1:4], taps3, up, down, pads,
                                                                                 strict=True)]
    taps = [tf.constant(t, dtype=x.dtype) for t in taps3]
    return kernel_library().upfirdn3d(x, *taps, up=list(up), down=list(down), pad_lo=[p0 for p0, _ in pads],
                                      out_size=out)


def _kernel_grad(op, dy):
    """The adjoint: the same op with up and down swapped, the taps reversed and pad_lo' = len(taps) - 1 - pad_lo,
    producing the input's size; it is this op again, so every order of derivative has a gradient."""
    taps = [tf.reverse(t, [0]) for t in op.inputs[1:4]]
    pad_lo = [int(t.shape[0]) - 1 - p for t, p in zip(op.inputs[1:4], op.get_attr("pad_lo"), strict=True)]
    with tf.name_scope(SCOPE):
        dx = kernel_library().upfirdn3d(dy, *taps, up=op.get_attr("down"), down=op.get_attr("up"), pad_lo=pad_lo,
                                        out_size=list(op.inputs[0].shape[1:4]))
    return [dx, None, None, None]


# ----------------------------------------------------------------------------------------------
# Public API.


def upfirdn_3d(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """Upsample (zero insertion), pad/crop, FIR filter, downsample an NDHWC tensor.

    x: [N, D, H, W, C]. f: 1-D taps (None = identity), applied along each axis with gain**(1/3).
    up/down: int or (ud, uh, uw). padding: int, (pd, ph, pw) or (d0, d1, h0, h1, w0, w1), applied
    after zero insertion; negative crops. Output size per axis: (in*up + p0 + p1 - len(f)) // down + 1.
    """
    taps = _taps(f)
    if not flip_filter:
        taps = taps[::-1]  # convolution = correlation with the reversed taps
    g = float(gain) ** (1.0 / 3.0)
    return _upfirdn(x, [taps * g] * 3, _factors(up, "up"), _factors(down, "down"), _pads6(padding))


def _resample_setup(f, up, down, padding, gain):
    """Per-axis taps and padding for up/down/plain filtering, StyleGAN2's size conventions.

    Axes resampled by 1 in an up/downsampling op are left alone (no blur along an axis that is not
    resampled, e.g. the 24-slice axis of a 256x256x24 volume); filter_3d (up = down = 1 everywhere)
    filters every axis. Upsampled axes get gain `up` so the mean is preserved.
    """
    taps = _taps(f)[::-1]
    g = float(gain) ** (1.0 / 3.0)
    resampling = max(up) > 1 or max(down) > 1
    taps3, pads = [], []
    for (p0, p1), u, d in zip(_pads6(padding), up, down, strict=True):
        t = taps if (u > 1 or d > 1 or not resampling) else np.ones([1])
        fw = len(t)
        if u > 1:
            p0, p1 = p0 + (fw + u - 1) // 2, p1 + (fw - u) // 2
        elif d > 1:
            p0, p1 = p0 + (fw - d + 1) // 2, p1 + (fw - d) // 2
        else:
            p0, p1 = p0 + fw // 2, p1 + (fw - 1) // 2
        taps3.append(t * g * u)
        pads.append((p0, p1))
    return taps3, tuple(pads)


def upsample_3d(x, f, up=2, padding=0, gain=1):
    """Zero-insert by `up` and filter; output size in*up (+ padding). Gain gain*prod(up): mean-preserving."""
    up = _factors(up, "up")
    taps3, pads = _resample_setup(f, up, (1, 1, 1), padding, gain)
    return _upfirdn(x, taps3, up, (1, 1, 1), pads)


def downsample_3d(x, f, down=2, padding=0, gain=1):
    """Filter and keep every `down`-th sample; output size in/down (+ padding)."""
    down = _factors(down, "down")
    taps3, pads = _resample_setup(f, (1, 1, 1), down, padding, gain)
    return _upfirdn(x, taps3, (1, 1, 1), down, pads)


def filter_3d(x, f, padding=0, gain=1):
    """FIR filter every axis keeping the size (+ padding)."""
    taps3, pads = _resample_setup(f, (1, 1, 1), (1, 1, 1), padding, gain)
    return _upfirdn(x, taps3, (1, 1, 1), (1, 1, 1), pads)


def upsample_conv_3d(x, w, f, up=2, padding=0):
    """conv3d(upsample_3d(x, f, up, padding), w, 'SAME') done as a transposed conv fused with the filter.

    w: [kd, kh, kw, Cin, Cout]. The conv runs on the low-resolution input (prod(up) times fewer
    multiply-adds). Like StyleGAN2, padding is applied once, before everything: the result equals the
    unfused composition except in the outermost voxel layer of upsampled axes, where the filter's tail
    is kept rather than cut to zero before the conv (see upfirdn_3d_ref.upsample_conv_3d_ref).
    """
    x = tf.convert_to_tensor(x)
    w = tf.cast(tf.convert_to_tensor(w), x.dtype)
    up = _factors(up, "up")
    ksize = tuple(w.shape[:3])
    if ksize == (1, 1, 1):
        # A 1x1x1 conv commutes with upsampling: mix channels at low resolution.
        return upsample_3d(conv3d(x, w, "VALID"), f, up, padding)
    taps3, up_pads = _resample_setup(f, up, (1, 1, 1), padding, 1)
    conv_pads = _conv3d_mod.explicit_pads("SAME", ksize)
    # conv(upfirdn(Z)) == upfirdn(T): T = conv of the zero-inserted x with the flipped kernel (full),
    # then the filter runs with its padding shifted by the conv's (k - 1) growth.
    t = _transposed_conv(x, w, up)
    pads = []
    for (p0, p1), (c0, c1), k, u, n, tl in zip(up_pads, conv_pads, ksize, up, x.shape[1:4], t.shape[1:4], strict=True):
        q0 = p0 + c0 - (k - 1)
        q1 = p1 + c1 - (k - u) - (tl - (u * (n - 1) + k))  # t may carry trailing zeros
        pads.append((q0, q1))
    return _upfirdn(t, taps3, (1, 1, 1), (1, 1, 1), tuple(pads))


# On CPU TensorFlow's conv3d_transpose (Conv3DBackpropInputV2 forward, Conv3DBackpropFilterV2 backward) is erratic
# and often much slower on small inputs, while on large ones the polyphase backward (prod(up) small-kernel filter
# gradients) is the slower one.
POLYPHASE_MAX_ELEMENTS = 1_000_000  # voxels x input channels of one sample; above it, conv3d_transpose


def _use_polyphase(x):
    """The fixed default: polyphase on CPU up to POLYPHASE_MAX_ELEMENTS per sample; conv3d_transpose on GPU and
    above it."""
    return transposed_conv_path(_conv3d_mod._have_gpu(), int(np.prod(x.shape[1:]))) == "polyphase"


def transposed_conv_path(gpu, elements):
    """upsample_conv_3d's fixed default transposed conv (autotuning off or not possible) for an input of `elements`
    voxels x channels per sample: 'polyphase' (stride-1 convs) or 'conv3d_transpose'."""
    return "polyphase" if not gpu and elements <= POLYPHASE_MAX_ELEMENTS else "conv3d_transpose"


def _transposed_conv(x, w, up):
    """T[j] = sum_i x[i] * flip(w)[j - up*i] per axis: the full conv of the zero-inserted x with w flipped
    in ALL three spatial axes (the original flipped two). Output length up*(n-1) + k per axis."""
    return _run_transposed(_transposed_path(x, w, up), x, w, up)


_TRANSPOSED_PATHS = ("conv3d_transpose", "polyphase")


def _run_transposed(path, x, w, up):
    # The functions are looked up when called: tests substitute them.
    return _transposed_conv_polyphase(x, w, up) if path == "polyphase" else _transposed_conv_tf(x, w, up)


def _transposed_path(x, w, up):
    """'polyphase' or 'conv3d_transpose', measured and cached for static shapes (else the fixed default)."""
    fixed = "polyphase" if _use_polyphase(x) else "conv3d_transpose"
    if not x.shape.is_fully_defined():  # nothing to time: the fixed default unless forced
        return autotune.choose("transposed_conv", "", fixed, _TRANSPOSED_PATHS)
    key = f"x{x.shape.as_list()} w{w.shape.as_list()} up{list(up)} {x.dtype.name}"
    timer = autotune.gradient_timer({n: lambda a, b, n=n: _run_transposed(n, a, b, up) for n in _TRANSPOSED_PATHS},
                                    [(x.shape, x.dtype), (w.shape, x.dtype)])
    return autotune.choose("transposed_conv", key, fixed, _TRANSPOSED_PATHS, timer)


def _transposed_conv_tf(x, w, up):
    """T by tf.nn.conv3d_transpose with the kernel flipped and its channels swapped."""
    ksize = tuple(w.shape[:3])
    out_spatial = [u * (n - 1) + k for u, n, k in zip(up, x.shape[1:4], ksize, strict=True)]
    kernel = tf.transpose(tf.reverse(w, axis=[0, 1, 2]), [0, 1, 2, 4, 3])  # [k, k, k, Cout, Cin]
    out_shape = tf.stack([tf.shape(x)[0], *out_spatial, w.shape[-1]])
    t = tf.nn.conv3d_transpose(x, kernel, out_shape, strides=[1, *up, 1], padding="VALID")
    return tf.ensure_shape(t, [x.shape[0], *out_spatial, w.shape[-1]])


def _transposed_conv_polyphase(x, w, up):
    """The same T as a sum of phases: T[u*q + r] = sum_s x[q - s] * flip(w)[r + u*s] per axis, i.e. phase r
    is a stride-1 conv of x (padded) with the sub-kernel flip(w)[r::u]; the phases are interleaved."""
    ksize, n3 = tuple(w.shape[:3]), tuple(x.shape[1:4])
    wf = tf.reverse(w, axis=[0, 1, 2])
    t_len = [u * (n - 1) + k for u, n, k in zip(up, n3, ksize, strict=True)]
    q_len = [-(-t // u) for t, u in zip(t_len, up, strict=True)]  # phase length (ceil), cropped after

    def phase(r):
        sub = wf[r[0]::up[0], r[1]::up[1], r[2]::up[2]]
        taps = tuple(sub.shape[:3])
        if 0 in taps:  # kernel shorter than the factor: this phase only ever sees zeros
            return tf.zeros([tf.shape(x)[0], *q_len, w.shape[-1]], x.dtype)
        pads = [[0, 0]] + [[s - 1, q - n] for s, q, n in zip(taps, q_len, n3, strict=True)] + [[0, 0]]
        return conv3d(tf.pad(x, pads), tf.reverse(sub, axis=[0, 1, 2]), "VALID")

    # Interleave: y[u*q + r] = phase_r[q] on every axis, as one stack + transpose + reshape (a transposed
    # space-to-depth), then crop the ceil-rounded phases to the full length.
    parts = tf.stack([phase(r) for r in itertools.product(*(range(u) for u in up))])
    cout = w.shape[-1]
    y = tf.reshape(parts, [*up, -1, *q_len, cout])
    y = tf.transpose(y, [3, 4, 0, 5, 1, 6, 2, 7])
    y = tf.reshape(y, [-1, *(q * u for q, u in zip(q_len, up, strict=True)), cout])
    for axis in range(3):
        y = slice_axis(y, axis + 1, 0, t_len[axis])
    return y


def conv_downsample_3d(x, w, f, down=2, padding=0):
    """downsample_3d(conv3d(x, w, 'SAME'), f, down, padding) done as filter then strided conv.

    Like StyleGAN2, padding is applied once, before the filter: equal to the unfused composition
    away from the borders (see upfirdn_3d_ref.conv_downsample_3d_ref for the exact definition).
    """
    x = tf.convert_to_tensor(x)
    w = tf.cast(tf.convert_to_tensor(w), x.dtype)
    down = _factors(down, "down")
    ksize = tuple(w.shape[:3])
    if ksize == (1, 1, 1):
        # A 1x1x1 conv commutes with downsampling: mix channels at low resolution.
        return conv3d(downsample_3d(x, f, down, padding), w, "VALID")
    taps3, down_pads = _resample_setup(f, (1, 1, 1), down, padding, 1)
    conv_pads = _conv3d_mod.explicit_pads("SAME", ksize)
    pads = tuple((p0 + c0, p1 + c1) for (p0, p1), (c0, c1) in zip(down_pads, conv_pads, strict=True))
    lengths = [n + p0 + p1 - len(t) + 1 for n, (p0, p1), t in zip(x.shape[1:4], pads, taps3, strict=True)]
    out = [(n - k) // d + 1 for n, k, d in zip(lengths, ksize, down, strict=True)]
    # Pad each filtered axis to a multiple of its factor so the phases come out of one reshape; the extra
    # samples lie past the last one any phase reads.
    pads = tuple((p0, p1 + (-n) % d) for (p0, p1), n, d in zip(pads, lengths, down, strict=True))
    y = _upfirdn(x, taps3, (1, 1, 1), (1, 1, 1), pads)
    # Strided conv, polyphase: phase r of each axis meets only the taps w[r::down], so the result is a
    # sum of prod(down) small stride-1 conv3d's (fast custom gradients; TF's strided Conv3D backward is slow).
    terms = []
    for r, phase in zip(itertools.product(*(range(d) for d in down)), _phases(y, down), strict=True):
        sub = w[r[0]::down[0], r[1]::down[1], r[2]::down[2]]
        if 0 in sub.shape[:3]:
            continue
        # Phase r needs out + taps - 1 samples per axis; crop the rest (conv3d's negative padding).
        crop = [(0, out[a] + sub.shape[a] - 1 - phase.shape[a + 1]) for a in range(3)]
        terms.append(conv3d(phase, sub, tuple(v for pair in crop for v in pair)))
    return terms[0] if len(terms) == 1 else tf.add_n(terms)


def _phases(y, down):
    """The prod(down) polyphase components y[:, r0::d0, r1::d1, r2::d2] (r in C order) of y, whose spatial
    lengths are multiples of down, from one reshape + transpose (space-to-batch); on CPU, strided slices
    and their gradients cost more."""
    q = [n // d for n, d in zip(y.shape[1:4], down, strict=True)]
    c = y.shape[-1]
    t = tf.reshape(y, [-1, q[0], down[0], q[1], down[1], q[2], down[2], c])
    t = tf.transpose(t, [2, 4, 6, 0, 1, 3, 5, 7])
    t = tf.reshape(t, [int(np.prod(down)), -1, *q, c])
    return tf.unstack(t, axis=0)
