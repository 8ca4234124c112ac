"""StyleGAN2's modulated 3D convolution and noise injection (NDHWC), as used by the synthesis layers.

`modulated_conv3d` has two paths:
  - scaled activations (`_scaled_activations_modulated_conv3d`): x * s, one batched conv, * d (StyleGAN2's
    form), always for a dynamic batch and everything traced inside `modulation_of_activations()`;
  - per-sample weights (`_per_sample_modulated_conv3d`): sample n is convolved with w * s_n * d_n.
Elsewhere the faster for the shapes and dtype is measured at first trace and cached (dnnlib/ops/autotune.py;
StyleGAN2's form kept unless the other is clearly faster); with autotuning off the fixed default is
`_per_sample_weights`: per-sample weights for outputs of at least _PER_SAMPLE_MIN_VOXELS voxels per sample;
inside `modulation_for_memory()` (training with recomputed layers) per-sample weights at every size.
Both compute the same function to every order of derivative. `add_noise` is x + noise * strength with a
cheaper gradient. The NumPy reference is modulated_conv3d_ref.py.
"""

import contextlib
import threading

import numpy as np
import tensorflow as tf

from dnnlib.ops import autotune
from dnnlib.ops.conv3d import conv3d
from dnnlib.ops.upfirdn_3d import upsample_conv_3d

# Name scopes of the modulation and the noise, so that a profile can attribute their op time.
MODULATION_SCOPE, NOISE_SCOPE = "modulation", "noise"

# Outputs of at least this many voxels per sample come from one conv per sample with its own modulated
# weights. Scaling the activations instead (x*s before the conv, y*d after) costs two full-volume passes
# forward and four backward per layer, two of them reductions over the volume; splitting the batch along
# axis 0 is free and concatenating the outputs is one pass. Small volumes keep one batched conv: many tiny
# convs would cost more than the passes they save.
_PER_SAMPLE_MIN_VOXELS = 8192
_trace_options = threading.local()  # per thread: tf.distribute traces each replica in its own thread

# All control flow here is Python on static values: autograph conversion would only cost trace time.
_no_autograph = tf.autograph.experimental.do_not_convert


@contextlib.contextmanager
def _trace_option(name):
    """Set the thread's trace option `name` for the duration of the block."""
    old = getattr(_trace_options, name, False)
    setattr(_trace_options, name, True)
    try:
        yield
    finally:
        setattr(_trace_options, name, old)


def modulation_of_activations():
    """Modulated convs traced inside this block scale the activations at every size (no per-sample weights).

    For gradients with respect to the styles alone (the path-length regulariser, the projector): through
    per-sample weights each layer's style gradient needs that layer's filter gradient, a conv, and a
    second-order pass differentiates that again; through scaled activations it is a reduction."""
    return _trace_option("scale_activations")


def modulation_for_memory():
    """Modulated convs traced inside this block (a static batch, outside modulation_of_activations) take per-sample
    weights, the lean path, instead of the one measured fastest. For training with recomputed layers
    (--recompute), whose point is memory: where the two paths time within noise the measurement keeps scaled
    activations, and the recomputation would then hold their extra full-volume copies (x * s) of every layer's
    input."""
    return _trace_option("for_memory")


def _per_sample_weights(x, up):
    """True where the fixed default is the per-sample-weights path (see the module doc); up: factors or None."""
    spatial, factor = x.shape[1:4], int(np.prod(up)) if up is not None else 1
    out_voxels = int(np.prod(spatial)) * factor if spatial.is_fully_defined() else 0
    scale_activations = getattr(_trace_options, "scale_activations", False)
    return modulation_path(x.shape[0], out_voxels, scale_activations) == "per_sample_weights"


def modulation_path(batch, out_voxels, scale_activations=False):
    """modulated_conv3d's path, on every device and dtype: 'per_sample_weights' or 'scaled_activations'.
    batch: the static batch or None; out_voxels: output voxels per sample; scale_activations: traced inside
    modulation_of_activations()."""
    if scale_activations or batch is None or out_voxels < _PER_SAMPLE_MIN_VOXELS:
        return "scaled_activations"
    return "per_sample_weights"


def _modulation(weight, styles, demodulate, compute_dtype, gain):
    """(weight, styles, demodulation coefficients [N, Cout] or None), float32, with the gain folded in."""
    weight = tf.cast(weight, tf.float32)
    styles = tf.cast(styles, tf.float32)
    if demodulate and compute_dtype != tf.float32:
        # Demodulation cancels any scale of w and s: normalise both first so x*s cannot overflow fp16.
        weight = weight * tf.math.rsqrt(tf.reduce_mean(tf.square(weight), axis=[0, 1, 2, 3], keepdims=True))
        styles = styles / tf.reduce_max(tf.abs(styles), axis=1, keepdims=True)
    dcoefs = None
    if demodulate:
        wsq = tf.reduce_sum(tf.square(weight), axis=[0, 1, 2])  # [Cin, Cout]
        dcoefs = tf.math.rsqrt(tf.matmul(tf.square(styles), wsq) + 1e-8)  # [N, Cout]
    if gain != 1:
        if dcoefs is not None:
            dcoefs = dcoefs * gain
        else:
            weight = weight * gain
    return weight, styles, dcoefs


def _conv(x, w, up, resample_filter):
    return conv3d(x, w, padding="SAME") if up is None else upsample_conv_3d(x, w, resample_filter, up=up)


def _per_sample_modulated_conv3d(x, weight, styles, dcoefs, up, resample_filter, compute_dtype):
    """Sample n convolved with weight * s_n * d_n (float32, then cast): no pass over the volumes."""
    n = x.shape[0]
    with tf.name_scope(MODULATION_SCOPE):
        w = weight[None] * styles[:, None, None, None, :, None]  # [N,k,k,k,Cin,Cout]
        if dcoefs is not None:
            w = w * dcoefs[:, None, None, None, None, :]
        ws = tf.unstack(tf.cast(w, compute_dtype), num=n)
        xs = tf.split(x, n, axis=0) if n > 1 else [x]
    ys = [_conv(xi, wi, up, resample_filter) for xi, wi in zip(xs, ws, strict=True)]
    if n == 1:
        return ys[0]
    with tf.name_scope(MODULATION_SCOPE):
        return tf.concat(ys, axis=0)


def _scaled_activations_modulated_conv3d(x, weight, styles, dcoefs, up, resample_filter, compute_dtype):
    """x * s, one batched conv with the shared weight, then * d."""
    with tf.name_scope(MODULATION_SCOPE):
        x = x * tf.cast(styles, compute_dtype)[:, None, None, None, :]
    x = _conv(x, tf.cast(weight, compute_dtype), up, resample_filter)
    if dcoefs is not None:
        with tf.name_scope(MODULATION_SCOPE):
            x = x * tf.cast(dcoefs, compute_dtype)[:, None, None, None, :]
    return x


@_no_autograph
def modulated_conv3d(x, weight, styles, demodulate=True, up=None, resample_filter=None, compute_dtype=tf.float32,
                     gain=1.0):
    """StyleGAN2 modulated 3D convolution, times `gain`.

    x [N,D,H,W,Cin] (compute dtype), weight [k,k,k,Cin,Cout] float32 (gain applied), styles [N,Cin] float32.
    up: None or upsampling factors (D, H, W), with resample_filter its FIR taps (upsample_conv_3d).
    Returns [N,D',H',W',Cout] in compute dtype. Demodulation: d = rsqrt(sum_{k,k,k,Cin} (w*s)^2 + 1e-8),
    computed in float32 as styles^2 @ sum_k w^2. `gain` scales the demodulation coefficients (or the
    weight), not the output: the same result without a pass over the output volume.
    """
    with tf.name_scope(MODULATION_SCOPE):
        weight, styles, dcoefs = _modulation(weight, styles, demodulate, compute_dtype, gain)
    up = up if up is not None and max(up) > 1 else None
    args = (x, weight, styles, dcoefs, up, resample_filter, compute_dtype)
    return _run_path(_path(*args), *args)


_MODULATION_PATHS = ("scaled_activations", "per_sample_weights")


def _run_path(path, *args):
    # The functions are looked up when called: tests substitute them.
    if path == "per_sample_weights":
        return _per_sample_modulated_conv3d(*args)
    return _scaled_activations_modulated_conv3d(*args)


def _path(x, weight, styles, dcoefs, up, resample_filter, compute_dtype):
    """The path's name: measured and cached where both may run, else the fixed default."""
    fixed = "per_sample_weights" if _per_sample_weights(x, up) else "scaled_activations"
    scale_activations = getattr(_trace_options, "scale_activations", False)
    if scale_activations or not x.shape.is_fully_defined():
        return autotune.choose("modulated_conv3d", "", fixed, (fixed,))
    if getattr(_trace_options, "for_memory", False):
        return autotune.choose("modulated_conv3d", "", "per_sample_weights", ("per_sample_weights",))
    names = _MODULATION_PATHS
    f = None if resample_filter is None else np.asarray(resample_filter, np.float64).round(6).tolist()
    key = (f"x{x.shape.as_list()} w{weight.shape.as_list()} up{None if up is None else list(up)} f{f} "
           f"demod{dcoefs is not None} {tf.as_dtype(compute_dtype).name}")
    specs = [(x.shape, x.dtype), (weight.shape, tf.float32), (styles.shape, tf.float32)]
    if dcoefs is not None:
        specs.append((dcoefs.shape, tf.float32))

    def timed(name):
        return lambda a, w, s, d=None: _run_path(name, a, w, s, d, up, resample_filter, compute_dtype)

    timer = autotune.gradient_timer({n: timed(n) for n in names}, specs)
    return autotune.choose("modulated_conv3d", key, fixed, names, timer)


def add_noise(x, noise, strength):
    """x + noise * strength; x [N,D,H,W,C], noise [N or 1,D,H,W,1], strength a scalar.

    Autodiff takes the strength's gradient as a sum over the channel axis of dy (TensorFlow's CPU
    reduction over a short innermost axis is slow) and a multiply; here it is one matmul of the flattened
    noise with dy. Twice differentiable: the gradient is built from differentiable ops (path length reg).
    """

    @tf.custom_gradient
    def op(x, noise, strength):
        y = x + noise * strength

        def grad(dy):
            with tf.name_scope(NOISE_SCOPE):  # custom-gradient ops get no scope of their own (for the profile)
                c = dy.shape[-1]
                nz = tf.broadcast_to(noise, tf.concat([tf.shape(dy)[:-1], [1]], axis=0))  # no-op unless shared
                # Accumulated in float32 at least (a long fp16 sum would lose the gradient; no-op casts otherwise).
                acc = tf.float32 if dy.dtype.size < 4 else dy.dtype
                dstrength = tf.matmul(tf.cast(tf.reshape(nz, [1, -1]), acc), tf.cast(tf.reshape(dy, [-1, c]), acc))
                dstrength = tf.cast(tf.reduce_sum(dstrength), strength.dtype)
                # The noise maps' gradient (the projector optimises them); pruned from the graph when unused.
                dnoise = tf.reduce_sum(dy, axis=-1, keepdims=True) * strength
                if noise.shape[0] == 1 and dy.shape[0] != 1:
                    dnoise = tf.reduce_sum(dnoise, axis=0, keepdims=True)
                return dy, dnoise, dstrength

        return y, grad

    return op(x, noise, strength)
