"""Formulations the ops do not choose, kept so the benches can time them against the product paths.

The product ops (dnnlib/ops) pick among their own paths by measurement (dnnlib/ops/autotune.py); nothing here
is reachable from them. Op-level variants are functions with the product op's signature; step-level variants
are context managers that rebind a public op name where the networks, the loss and the ops look it up
(`substituted`), or enter a context the product code already honours.
"""

import contextlib

import numpy as np
import tensorflow as tf

from dnnlib.ops import conv3d as C
from dnnlib.ops import modulated_conv3d as M
from dnnlib.ops import upfirdn_3d as U

# ----------------------------------------------------------------------------------------------
# conv3d: other filter-gradient formulations and plain TensorFlow.


def filter_grad_tf(x, dy, pads, ksize):
    """TensorFlow's own Conv3DBackpropFilterV2."""
    cin, cout = x.shape[-1], dy.shape[-1]
    if pads == C.explicit_pads("SAME", ksize):
        xp, mode = x, "SAME"
    else:
        xp, mode = C.pad_or_crop(x, pads), "VALID"
    return tf.raw_ops.Conv3DBackpropFilterV2(
        input=xp, filter_sizes=tf.constant([*ksize, cin, cout], tf.int32), out_backprop=dy,
        strides=[1] * 5, padding=mode)


def filter_grad_slices(x, dy, pads, ksize):
    """im2col: every kernel tap is a shifted view of xpad; one big matmul against dy."""
    cin, cout = x.shape[-1], dy.shape[-1]
    xp = C.pad_or_crop(x, pads)
    out = tuple(dy.shape[1:4])
    cols = [xp[:, a:a + out[0], b:b + out[1], c:c + out[2], :]
            for a in range(ksize[0]) for b in range(ksize[1]) for c in range(ksize[2])]
    cols = tf.reshape(tf.stack(cols, axis=-2), [-1, len(cols) * cin])
    dw = tf.matmul(cols, tf.reshape(dy, [-1, cout]), transpose_a=True)
    return tf.reshape(dw, [*ksize, cin, cout])


def filter_grad_batch_channels(x, dy, pads, ksize):
    """A forward conv whose batch is x's channels and whose channels are the batch, with dy as a (huge) kernel:
    out[i, a, b, c, o] = sum_{n,...} xpad^T[i, ..., n] * dy[..., n, o]."""
    xp = C.pad_or_crop(x, pads)
    xt = tf.transpose(xp, [4, 1, 2, 3, 0])
    kt = tf.transpose(dy, [1, 2, 3, 0, 4])
    dw = tf.nn.conv3d(xt, kt, strides=[1] * 5, padding="VALID")
    return tf.transpose(dw, [1, 2, 3, 0, 4])


# name -> filter gradient (x, dy, pads, ksize) -> dw; "depth_taps" is the product's.
FILTER_GRADS = {
    "depth_taps": C._filter_grad_depth_taps,
    "tf": filter_grad_tf,
    "slices": filter_grad_slices,
    "batch_channels": filter_grad_batch_channels,
}


def _conv_custom(x, w, pads, filter_grad):
    # conv3d's CPU fast path with `filter_grad` in place of the depth taps, twice differentiable the same way.
    ksize = tuple(w.shape[:3])
    tpads = C._transposed_pads(pads, ksize)

    @tf.custom_gradient
    def op(x, w):
        def grad(dy):
            return _conv_custom(dy, C.flip_swap(w), tpads, filter_grad), _dw_custom(x, dy, pads, ksize, filter_grad)

        return C._forward(x, w, pads), grad

    return op(x, w)


def _dw_custom(x, dy, pads, ksize, filter_grad):
    tpads = C._transposed_pads(pads, ksize)

    @tf.custom_gradient
    def op(x, dy):
        def grad(ddw):
            return _conv_custom(dy, C.flip_swap(ddw), tpads, filter_grad), _conv_custom(x, ddw, pads, filter_grad)

        return filter_grad(x, dy, pads, ksize), grad

    return op(x, dy)


def conv3d_with_filter_grad(name):
    """conv3d as on CPU (1x1x1 matmul, fast input gradient) with the filter gradient FILTER_GRADS[name]."""
    filter_grad = FILTER_GRADS[name]

    def conv3d(x, w, padding="SAME"):
        x = tf.convert_to_tensor(x)
        w = tf.cast(tf.convert_to_tensor(w), x.dtype)
        pads = C.explicit_pads(padding, tuple(w.shape[:3]))
        if tuple(w.shape[:3]) == (1, 1, 1) and pads == ((0, 0),) * 3:
            return C._conv_1x1(x, w)
        return _conv_custom(x, w, pads, filter_grad)

    return conv3d


def conv3d_tf(x, w, padding="SAME"):
    """tf.nn.conv3d with TensorFlow's own gradients (conv3d's GPU path, here on any device)."""
    x = tf.convert_to_tensor(x)
    w = tf.cast(tf.convert_to_tensor(w), x.dtype)
    return C._forward(x, w, C.explicit_pads(padding, tuple(w.shape[:3])))


# ----------------------------------------------------------------------------------------------
# upfirdn: the dense (outer-product) FIR.


def upfirdn_dense(x, taps3, up, down, pads):
    """Zero-insert and pad every axis, then one 3-D conv with the outer-product kernel, channels folded into the
    batch. Arguments as upfirdn_3d._upfirdn (per-axis correlation taps, already flipped and scaled)."""
    x = tf.convert_to_tensor(x)
    c = x.shape[-1]
    for axis in range(3):
        x = U._upfirdn_axis(x, axis + 1, np.ones([1]), up[axis], 1, *pads[axis])
    spatial = x.shape[1:4]
    kernel = np.einsum("i,j,k->ijk", *taps3)[..., None, None]
    xt = tf.reshape(tf.transpose(x, [0, 4, 1, 2, 3]), [-1, *spatial, 1])
    y = tf.nn.conv3d(xt, tf.constant(kernel, dtype=x.dtype), strides=[1, *down, 1], padding="VALID")
    y = tf.reshape(y, [-1, c, *y.shape[1:4]])
    return tf.transpose(y, [0, 2, 3, 4, 1])


def upfirdn_3d_dense(x, f, up=1, down=1, padding=0, flip_filter=False, gain=1):
    """upfirdn_3d by the dense FIR."""
    taps = U._taps(f)
    if not flip_filter:
        taps = taps[::-1]
    g = float(gain) ** (1.0 / 3.0)
    return upfirdn_dense(x, [taps * g] * 3, U._factors(up, "up"), U._factors(down, "down"), U._pads6(padding))


def upsample_3d_dense(x, f, up=2, padding=0, gain=1):
    up = U._factors(up, "up")
    taps3, pads = U._resample_setup(f, up, (1, 1, 1), padding, gain)
    return upfirdn_dense(x, taps3, up, (1, 1, 1), pads)


def downsample_3d_dense(x, f, down=2, padding=0, gain=1):
    down = U._factors(down, "down")
    taps3, pads = U._resample_setup(f, (1, 1, 1), down, padding, gain)
    return upfirdn_dense(x, taps3, (1, 1, 1), down, pads)


# ----------------------------------------------------------------------------------------------
# Modulated conv: the grouped (fused) conv, and per-sample weights at every size.


@tf.function(jit_compile=True)
def _grouped_conv3d_xla(x, w):
    # TF's CPU Conv3D kernel has no grouped convolution; XLA does (CPU and GPU), so compile this op alone.
    return tf.nn.conv3d(x, w, strides=[1, 1, 1, 1, 1], padding="SAME")


@M._no_autograph
def modulated_conv3d_grouped(x, weight, styles, demodulate=True, up=None, resample_filter=None,
                             compute_dtype=tf.float32, gain=1.0):
    """modulated_conv3d as one grouped conv with per-sample weights, the batch folded into the channel axis
    (StyleGAN2's fused_modconv); upsampling is upsample_3d then the conv."""
    with tf.name_scope(M.MODULATION_SCOPE):
        weight, styles, dcoefs = M._modulation(weight, styles, demodulate, compute_dtype, gain)
        k, cin, cout = weight.shape[0], weight.shape[3], weight.shape[4]
        w = weight[None] * styles[:, None, None, None, :, None]  # [N,k,k,k,Cin,Cout]
        if dcoefs is not None:
            w = w * dcoefs[:, None, None, None, None, :]
    w = tf.reshape(tf.transpose(w, [1, 2, 3, 4, 0, 5]), [k, k, k, cin, -1])  # [k,k,k,Cin,N*Cout]
    sp = x.shape[1:4]
    x = tf.reshape(tf.transpose(x, [1, 2, 3, 0, 4]), [1, *sp, -1])  # [1,D,H,W,N*Cin]
    if up is not None and max(up) > 1:
        x = U.upsample_3d(x, resample_filter, up=up)
    try:
        x = _grouped_conv3d_xla(x, tf.cast(w, compute_dtype))
    except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError) as e:
        raise RuntimeError("the grouped modulated conv needs a grouped 3D convolution, which this TensorFlow "
                           "build cannot run here (XLA failed)") from e
    sp = x.shape[1:4]
    x = tf.reshape(x, [*sp, -1, cout])
    return tf.transpose(x, [3, 0, 1, 2, 4])


@M._no_autograph
def modulated_conv3d_per_sample(x, weight, styles, demodulate=True, up=None, resample_filter=None,
                                compute_dtype=tf.float32, gain=1.0):
    """modulated_conv3d with per-sample weights at every output size (static batch)."""
    with tf.name_scope(M.MODULATION_SCOPE):
        weight, styles, dcoefs = M._modulation(weight, styles, demodulate, compute_dtype, gain)
    up = up if up is not None and max(up) > 1 else None
    return M._per_sample_modulated_conv3d(x, weight, styles, dcoefs, up, resample_filter, compute_dtype)


# ----------------------------------------------------------------------------------------------
# Step-level variants (context managers, entered while a step is traced).


def _consumers():
    from training import loss, networks

    return {"networks": networks, "loss": loss, "modulated_conv3d": M, "upfirdn_3d": U}


@contextlib.contextmanager
def substituted(**fns):
    """Rebind public op names (conv3d, modulated_conv3d, add_noise, modulation_of_activations, ...) in every
    module of the step that imported them (not where they are defined), for the duration of a with-block."""
    old = []
    for module in _consumers().values():
        for name, fn in fns.items():
            if hasattr(module, name) and getattr(getattr(module, name), "__module__", None) != module.__name__:
                old.append((module, name, getattr(module, name)))
                setattr(module, name, fn)
    try:
        yield
    finally:
        for module, name, fn in reversed(old):
            setattr(module, name, fn)


def filter_gradient(name):
    """conv3d with another filter-gradient formulation (FILTER_GRADS) everywhere in the step."""
    return substituted(conv3d=conv3d_with_filter_grad(name))


@contextlib.contextmanager
def forced_paths(**paths):
    """Ops' paths forced (dnnlib/ops/autotune.py's DNNLIB_OP_PATH, added to any already set) for a with-block:
    op=path, e.g. forced_paths(conv3d="tf")."""
    import os

    from dnnlib.ops import autotune

    old = os.environ.get(autotune.ENV_FORCE)
    merged = {**autotune.forced_paths(), **paths}
    os.environ[autotune.ENV_FORCE] = ",".join(f"{op}={path}" for op, path in merged.items())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(autotune.ENV_FORCE, None)
        else:
            os.environ[autotune.ENV_FORCE] = old


@contextlib.contextmanager
def fir_as_tf_ops():
    """The FIR as TensorFlow ops, as on a host where the C++ kernel cannot be built (kernel_library() None)."""
    old = U.kernel_library
    U.kernel_library = lambda: None
    try:
        yield
    finally:
        U.kernel_library = old


@contextlib.contextmanager
def upsampling_by_conv3d_transpose():
    """upsample_conv_3d's transposed conv as tf.nn.conv3d_transpose at every size (forced; also the fixed default
    with autotuning off)."""
    old = U.POLYPHASE_MAX_ELEMENTS
    U.POLYPHASE_MAX_ELEMENTS = -1
    try:
        with forced_paths(transposed_conv="conv3d_transpose"):
            yield
    finally:
        U.POLYPHASE_MAX_ELEMENTS = old


@contextlib.contextmanager
def upsampling_by_polyphase():
    """upsample_conv_3d's transposed conv as polyphase stride-1 conv3d's at every size (on CPU; a GPU keeps
    conv3d_transpose with autotuning off)."""
    old = U.POLYPHASE_MAX_ELEMENTS
    U.POLYPHASE_MAX_ELEMENTS = float("inf")
    try:
        with forced_paths(transposed_conv="polyphase"):
            yield
    finally:
        U.POLYPHASE_MAX_ELEMENTS = old


@contextlib.contextmanager
def plain_tensorflow():
    """Plain TensorFlow throughout: tf.nn.conv3d with its own gradients, conv3d_transpose for upsampling, the FIR
    as TensorFlow ops, and StyleGAN2's modulation of the activations around one batched conv (TF's own filter
    gradient is slower per sample)."""
    with substituted(conv3d=conv3d_tf), upsampling_by_conv3d_transpose(), fir_as_tf_ops(), \
            M.modulation_of_activations(), forced_paths(conv3d="tf", fir="tf_ops"):
        yield


# ----------------------------------------------------------------------------------------------
# ADA's trilinear resampling (training/augment.py -> dnnlib/ops/affine_resample_3d.py).


@contextlib.contextmanager
def resampling_as_tf_ops():
    """The resampling as TensorFlow ops (one gather of the 8 corners, a scatter-add gradient), as on a host where
    the C++ kernel cannot be built; before the kernel, this was the product path on CPU."""
    from dnnlib.ops import affine_resample_3d as AR

    old = AR.kernel_library
    AR.kernel_library = lambda: None
    try:
        yield
    finally:
        AR.kernel_library = old


def resample_sparse_matmul(x, matrix, background=-1.0):
    """The resampling as SparseTensorDenseMatMul of an [N*P, N*padded] matrix (8 entries a row) by the padded volume:
    deterministic (unlike a weighted bincount), its gradient the adjoint product; building the index pairs costs
    more than the gather it replaces."""
    from dnnlib.ops.affine_resample_3d import trilinear_corners

    N, D, H, W, C = x.shape
    lins, weights = trilinear_corners((N, D, H, W), tf.cast(matrix, x.dtype))  # [8, N, P]
    xp = tf.pad(x, [[0, 0], [1, 1], [1, 1], [1, 1], [0, 0]], constant_values=background)
    rows = N * D * H * W
    idx = tf.stack([tf.repeat(tf.range(rows), 8), tf.reshape(tf.transpose(lins, [1, 2, 0]), [-1])], 1)
    out = tf.raw_ops.SparseTensorDenseMatMul(
        a_indices=idx, a_values=tf.reshape(tf.transpose(weights, [1, 2, 0]), [-1]),
        a_shape=tf.constant([rows, N * (D + 2) * (H + 2) * (W + 2)], tf.int64), b=tf.reshape(xp, [-1, C]))
    return tf.reshape(out, [N, D, H, W, C])


def resample_neighbour_rows(x, matrix, background=-1.0):
    """The 8 corners as one row: the padded volume's 8 shifted copies side by side, one gather of P rows of 8 (not
    8P scalars); the copies and the gradient's 8-wide scatter-add cost more than the indices saved."""
    from dnnlib.ops.affine_resample_3d import trilinear_corners

    N, D, H, W, C = x.shape
    lins, weights = trilinear_corners((N, D, H, W), tf.cast(matrix, x.dtype))
    Dp, Hp, Wp = D + 2, H + 2, W + 2
    xp = tf.pad(x, [[0, 0], [1, 2], [1, 2], [1, 2], [0, 0]], constant_values=background)
    rows8 = tf.concat([xp[:, a:a + Dp, b:b + Hp, c:c + Wp] for a in (0, 1) for b in (0, 1) for c in (0, 1)], -1)
    # Corner 0's index (into the one-voxel-padded grid) addresses the row; min() in trilinear_corners only clamps
    # corners of weight 0, which here read the extra padding instead.
    vals = tf.gather(tf.reshape(rows8, [-1, 8, C]), lins[0])  # [N, P, 8, C]
    out = tf.reduce_sum(vals * tf.transpose(weights, [1, 2, 0])[..., None], axis=2)
    return tf.reshape(out, [N, D, H, W, C])


RESAMPLINGS = {"sparse_matmul": resample_sparse_matmul, "neighbour_rows": resample_neighbour_rows}


@contextlib.contextmanager
def resampling_by(name):
    """The ADA pipeline with another resampling formulation (RESAMPLINGS), while a step is traced."""
    from training import augment

    old = augment.resample
    augment.resample = RESAMPLINGS[name]
    try:
        yield
    finally:
        augment.resample = old


def augment_variant(name):
    """A zero-argument context-manager factory for bench/bench_augment.py's --variants: product (none),
    tf_ops (resampling_as_tf_ops) or a RESAMPLINGS name."""
    if name == "product":
        return None
    if name == "tf_ops":
        return resampling_as_tf_ops
    if name in RESAMPLINGS:
        return lambda: resampling_by(name)
    raise ValueError(f"unknown augmentation variant {name!r}; choose product, tf_ops or one of "
                     f"{', '.join(RESAMPLINGS)}")


# ----------------------------------------------------------------------------------------------
# Recomputation whose gradient is recomputed too (issue 21): the second-order passes (path length, R1) would hold
# one layer's recomputation at a time instead of every layer's. It lost: the 2 mm path-length phase held as much
# as with training.networks' plain per-layer recomputation and took longer (figures in bench/RESULTS.md).


def _zeros_for(t):
    if t.shape.is_fully_defined():
        return lambda: tf.zeros(t.shape, t.dtype)
    return lambda: tf.zeros_like(t)


def _tied(tensors, to):
    with tf.control_dependencies([d for d in to if d is not None]):
        return [tf.identity(t) for t in tensors]


def _vjp(fn, xs, dys, variables):
    with tf.GradientTape() as tape:
        tape.watch(xs)
        again = fn(*xs)
    return tape.gradient(again, xs + variables, output_gradients=dys,
                         unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _recomputed_vjp(fn, n, block_variables):
    """(xs..., dys...) -> gradients w.r.t. xs and the block's variables, keeping only its inputs."""

    @tf.custom_gradient
    def vjp(*args):
        grads = _vjp(fn, _tied(args[:n], args[n:]), list(args[n:]), block_variables)
        zeros = [_zeros_for(g) for g in grads]

        def grad(*ddgrads, variables=None):
            again = _tied(args, ddgrads)
            with tf.GradientTape() as tape:
                tape.watch(again)
                grads = _vjp(fn, again[:n], again[n:], block_variables)
            ddgrads = [z() if d is None else d for d, z in zip(ddgrads, zeros, strict=True)]
            out = tape.gradient(grads, again + list(variables or []), output_gradients=ddgrads,
                                unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return out[:len(again)], out[len(again):]

        return grads, grad

    def call(*args):
        grads = vjp(*args)
        return grads[:n], grads[n:]

    return call


def recomputed_twice(fn):
    """training.networks._recomputed with a recomputed gradient."""

    @tf.custom_gradient
    def inner(*tensors):
        out = fn(*tensors)
        zeros = [_zeros_for(y) for y in out]

        def grad(*dys, variables=None):
            dys = [z() if d is None else d for d, z in zip(dys, zeros, strict=True)]
            return _recomputed_vjp(fn, len(tensors), list(variables or []))(*tensors, *dys)

        return out, grad

    return inner


@contextlib.contextmanager
def recompute_with_recomputed_gradients():
    """recompute_layers() whose layer gradients are recomputed again in second-order passes."""
    from training import networks

    old = networks._recomputed
    networks._recomputed = recomputed_twice
    try:
        with networks.recompute_layers():
            yield
    finally:
        networks._recomputed = old
