"""3D StyleGAN2 networks: mapping, synthesis, generator and discriminator, as tf.Modules (NDHWC).

StyleGAN2 / StyleGAN2-ADA semantics carried to three spatial axes. Every variable is created in
__init__ so checkpoints, summaries and parameter counts work before the first call. Convolutions go
through dnnlib.ops (conv3d, upsample_conv_3d, conv_downsample_3d), resampling through the FIR
upfirdn_3d ops, bias + activation through fused_bias_act, the synthesis layers' modulated convs and noise
through dnnlib.ops.modulated_conv3d.
"""

import contextlib
import math
import threading

import numpy as np
import tensorflow as tf

from dnnlib.ops.conv3d import conv3d
from dnnlib.ops.fused_bias_act import fused_bias_act
from dnnlib.ops.modulated_conv3d import NOISE_SCOPE, add_noise, modulated_conv3d, modulation_for_memory
from dnnlib.ops.upfirdn_3d import (
    conv_downsample_3d,
    downsample_3d,
    setup_filter,
    upsample_3d,
    upsample_conv_3d,
)
from metrics.generator_interface import NOISE_MODES

# The layer activations. All are positively homogeneous, act(c * z) = c * act(z) for c > 0, so a layer's
# output gain is folded into its (tiny) weights, bias and noise strength instead of costing a pass over the
# output volume forward and backward: act(z + b) * g == act(g * z + g * b).
_ACT_GAIN = {"linear": 1.0, "lrelu": math.sqrt(2), "relu": math.sqrt(2)}
_COMPUTE_DTYPES = ("float32", "float16", "bfloat16")
# Keys that a saved synthesis_kwargs (training_options.json, generator.json) may hold and that select nothing:
# fused_modconv (a grouped modulated conv, not a path of this package). Loaders drop them and resuming ignores
# them.
LEGACY_SYNTHESIS_KWARGS = ("fused_modconv",)
_SQRT_HALF = math.sqrt(0.5)

# All control flow here is Python on static values: autograph conversion would only cost trace time,
# so callers' tf.functions run this code as plain Python.
_no_autograph = tf.autograph.experimental.do_not_convert
_recompute_options = threading.local()  # per thread, as the ops' trace options: replicas trace in their own threads


@contextlib.contextmanager
def recompute_layers(enabled=True):
    """Conv layers traced inside keep only their inputs for the backward pass.

    Each conv layer (modulated synthesis layer with its noise, bias and activation; ToRGB; D's conv layers) runs
    under a custom gradient that recomputes its activations when the gradient needs them (one more forward per
    layer), so a first-order pass holds the layers' inputs and one layer's activations at a time; the second-order
    passes (path length, R1) still hold each layer's recomputation until the second backward reaches it.
    Gradients of every order are the same. Per layer rather than per block: with whole blocks recomputed the 2 mm
    path-length pass holds as much as without. Random noise is drawn before the layer, so the
    recomputation sees the same noise.
    """
    old = getattr(_recompute_options, "enabled", False)
    _recompute_options.enabled = bool(enabled)
    try:
        # Memory first: the modulated convs take the lean path (per-sample weights), not the one timed fastest.
        with modulation_for_memory() if enabled else contextlib.nullcontext():
            yield
    finally:
        _recompute_options.enabled = old


def recomputing():
    """True inside recompute_layers() (on this thread)."""
    return getattr(_recompute_options, "enabled", False)


def _recomputed(fn):
    """fn(*tensors) -> list of tensors, keeping only its inputs; the gradient reruns fn under a tape.

    Not tf.recompute_grad: its gradient refuses to be differentiated again, which R1 and path length need.
    """

    @tf.custom_gradient
    def inner(*tensors):
        def grad(*dys, variables=None):
            # Tied to the incoming gradient: else graph optimisation may merge the recomputation with the forward
            # (same ops on the same inputs) and keep the forward's activations alive after all.
            with tf.control_dependencies([d for d in dys if d is not None]):
                xs = [tf.identity(t) for t in tensors]
            # The backward pass is traced outside recompute_layers(): the lean modulation path is asked for here.
            with tf.GradientTape() as tape, modulation_for_memory():
                tape.watch(xs)
                again = fn(*xs)
            dys = [tf.zeros_like(y) if d is None else d for d, y in zip(dys, again, strict=True)]
            grads = tape.gradient(again, xs + list(variables or []), output_gradients=dys,
                                  unconnected_gradients=tf.UnconnectedGradients.ZERO)
            return grads[:len(xs)], grads[len(xs):]

        return fn(*tensors), grad

    return inner


def _recompute_call(fn, args):
    """fn(*args) (args: tensors or None, lists of them), recomputed in the backward pass inside recompute_layers()."""
    if not recomputing():
        return fn(*args)
    flat = tf.nest.flatten(list(args))
    given = [i for i, a in enumerate(flat) if a is not None]
    out_structure = []

    # The recomputation in the backward pass runs outside the path-length pass's modulation_of_activations() and
    # inside modulation_for_memory(), so it convolves with per-sample modulated weights (the same values), whatever
    # the autotuner measured fastest: the scaled copies of the activations that form keeps would double the
    # second-order pass's memory.
    def inner(*tensors):
        full = list(flat)
        for i, t in zip(given, tensors, strict=True):
            full[i] = t
        out = fn(*tf.nest.pack_sequence_as(list(args), full))
        out_structure[:] = [out]
        return [t for t in tf.nest.flatten(out) if t is not None]  # custom gradients take tensors only

    results = iter(_recomputed(inner)(*[flat[i] for i in given]))
    leaves = [None if t is None else next(results) for t in tf.nest.flatten(out_structure[0])]
    return tf.nest.pack_sequence_as(out_structure[0], leaves)

# ----------------------------------------------------------------------------------------------
# Small helpers.


def _shape3(v, what):
    t = tuple(int(a) for a in v)
    if len(t) != 3 or min(t) < 1:
        raise ValueError(f"{what} must be three positive integers, got {v!r}")
    return t


def _up_factors(up_factors, n_default=4):
    if up_factors is None:
        return [(2, 2, 2)] * n_default
    return [_shape3(f, f"up factor {i}") for i, f in enumerate(up_factors)]


def _check_dtype(name):
    if name not in _COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype must be one of {_COMPUTE_DTYPES}, got {name!r}")
    return tf.as_dtype(name)


def stage_resolutions(base_shape, up_factors):
    """Spatial shape of every stage: [base, base*up0, base*up0*up1, ...]."""
    res = [tuple(base_shape)]
    for f in up_factors:
        res.append(tuple(r * u for r, u in zip(res[-1], f, strict=True)))
    return res


def feature_depth(stage, fmap_base, fmap_min, fmap_max):
    """nf(stage) = clip(fmap_base / 2**stage, fmap_min, fmap_max); stage 0 is the base."""
    return int(np.clip(int(fmap_base / 2.0**stage), fmap_min, fmap_max))


def _res_name(res):
    return "b" + "x".join(str(r) for r in res)


def normalize_2nd_moment(x, axis=1, eps=1e-8):
    return x * tf.math.rsqrt(tf.reduce_mean(tf.square(x), axis=axis, keepdims=True) + eps)


def _normal(shape, stddev=1.0):
    # Global-seed random ops: tf.random.set_seed(s) before construction makes weights reproducible.
    return tf.random.normal(shape, stddev=stddev, dtype=tf.float32)


def _n_params(variables):
    return int(sum(int(np.prod(v.shape)) for v in variables))


# ----------------------------------------------------------------------------------------------
# Layers. Equalized learning rate: weights are stored N(0, 1/lr_mul) and scaled at run time by
# gain/sqrt(fan_in) * lr_mul, so Adam sees every layer at the same scale.


class FullyConnectedLayer(tf.Module):
    """Dense layer, always float32 (mapping, styles and the D epilogue stay in full precision)."""

    def __init__(self, in_features, out_features, bias=True, activation="linear", lr_multiplier=1.0,
                 bias_init=0.0, name=None):
        super().__init__(name=name)
        self.in_features, self.out_features, self.activation = int(in_features), int(out_features), activation
        self.weight = tf.Variable(_normal([self.in_features, self.out_features], 1.0 / lr_multiplier),
                                  name="weight")
        self.bias = tf.Variable(tf.fill([self.out_features], float(bias_init)), name="bias") if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(self.in_features)
        self.bias_gain = lr_multiplier
        self.out_shape = (self.out_features,)

    @_no_autograph
    def __call__(self, x):
        x = tf.matmul(tf.cast(x, tf.float32), self.weight * self.weight_gain)
        b = None if self.bias is None else self.bias * self.bias_gain
        return fused_bias_act(x, b, act=self.activation)


def _output_gain(activation, gain):
    """The activation's gain times the caller's, to be folded into weights (see _ACT_GAIN)."""
    if activation not in _ACT_GAIN:
        raise ValueError(f"activation must be one of {sorted(_ACT_GAIN)}, got {activation!r}")
    if not gain > 0:
        raise ValueError(f"layer gain must be > 0 to be folded into the weights, got {gain!r}")
    return _ACT_GAIN[activation] * gain


def _resample_kind(up, down):
    if up is not None and max(up) > 1 and down is not None and max(down) > 1:
        raise ValueError("a layer cannot both upsample and downsample")
    if up is not None and max(up) > 1:
        return "up"
    if down is not None and max(down) > 1:
        return "down"
    return None


class Conv3dLayer(tf.Module):
    """Plain (non-modulated) 3D conv with optional FIR up/down-sampling, bias and activation."""

    def __init__(self, in_channels, out_channels, kernel_size, out_shape, bias=True, activation="linear",
                 up=None, down=None, resample_filter=(1, 3, 3, 1), conv_clamp=None, compute_dtype="float32",
                 name=None):
        super().__init__(name=name)
        k = int(kernel_size)
        self.activation, self.conv_clamp = activation, conv_clamp
        self.up, self.down = up, down
        self.kind = _resample_kind(up, down)
        self.filter = setup_filter(list(resample_filter))
        self.dtype = _check_dtype(compute_dtype)
        self.weight = tf.Variable(_normal([k, k, k, int(in_channels), int(out_channels)]), name="weight")
        self.bias = tf.Variable(tf.zeros([int(out_channels)]), name="bias") if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * k**3)
        self.out_shape = (*out_shape, int(out_channels))

    @_no_autograph
    def __call__(self, x, gain=1.0):
        return _recompute_call(lambda x: self._forward(x, gain), (x,))

    def _forward(self, x, gain):
        out_gain = _output_gain(self.activation, gain)  # folded into w and b
        w = tf.cast(self.weight * (self.weight_gain * out_gain), self.dtype)
        x = tf.cast(x, self.dtype)
        if self.kind == "up":
            x = upsample_conv_3d(x, w, self.filter, up=self.up)
        elif self.kind == "down":
            x = conv_downsample_3d(x, w, self.filter, down=self.down)
        else:
            x = conv3d(x, w, padding="SAME")
        b = None if self.bias is None else tf.cast(self.bias * out_gain, self.dtype)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return fused_bias_act(x, b, act=self.activation, gain=1.0, clamp=clamp)


class SynthesisLayer(tf.Module):
    """Modulated 3x3x3 conv (+ optional upsampling) + per-voxel noise + bias + lrelu."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, kernel_size=3, up=None, use_noise=True,
                 activation="lrelu", resample_filter=(1, 3, 3, 1), conv_clamp=None, compute_dtype="float32",
                 name=None):
        super().__init__(name=name)
        k = int(kernel_size)
        self.resolution, self.up, self.use_noise = tuple(resolution), up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.filter = setup_filter(list(resample_filter))
        self.dtype = _check_dtype(compute_dtype)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0, name="affine")
        self.weight = tf.Variable(_normal([k, k, k, int(in_channels), int(out_channels)]), name="weight")
        self.bias = tf.Variable(tf.zeros([int(out_channels)]), name="bias")
        self.weight_gain = 1.0 / math.sqrt(in_channels * k**3)
        if use_noise:
            self.noise_const = tf.Variable(_normal([1, *self.resolution, 1]), trainable=False, name="noise_const")
            self.noise_strength = tf.Variable(0.0, name="noise_strength")
        self.out_shape = (*self.resolution, int(out_channels))

    @_no_autograph
    def __call__(self, x, w, noise_mode="random", noise=None, gain=1.0):
        if self.use_noise and noise is None and noise_mode == "random" and recomputing():
            noise = self.random_noise(x)  # drawn once, outside: the recomputation must see the same noise
        return _recompute_call(lambda x, w, noise: self._forward(x, w, noise_mode, noise, gain), (x, w, noise))

    def random_noise(self, x):
        return tf.random.normal([tf.shape(x)[0], *self.resolution, 1])

    def _forward(self, x, w, noise_mode, noise, gain):
        out_gain = _output_gain(self.activation, gain)  # folded into demodulation, noise and bias
        styles = self.affine(w)
        x = modulated_conv3d(x, self.weight * self.weight_gain, styles, demodulate=True, up=self.up,
                             resample_filter=self.filter, compute_dtype=self.dtype, gain=out_gain)
        if self.use_noise:
            with tf.name_scope(NOISE_SCOPE):
                if noise is None and noise_mode == "random":
                    noise = self.random_noise(x)
                elif noise is None and noise_mode == "const":
                    noise = self.noise_const
                if noise is not None:
                    x = add_noise(x, tf.cast(noise, self.dtype), tf.cast(self.noise_strength * out_gain, self.dtype))
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return fused_bias_act(x, tf.cast(self.bias * out_gain, self.dtype), act=self.activation, gain=1.0,
                              clamp=clamp)


class ToRGBLayer(tf.Module):
    """1x1x1 modulated conv without demodulation, linear, bias; returns float32 images."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, conv_clamp=None, compute_dtype="float32",
                 name=None):
        super().__init__(name=name)
        self.conv_clamp = conv_clamp
        self.dtype = _check_dtype(compute_dtype)
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1.0, name="affine")
        self.weight = tf.Variable(_normal([1, 1, 1, int(in_channels), int(out_channels)]), name="weight")
        self.bias = tf.Variable(tf.zeros([int(out_channels)]), name="bias")
        self.weight_gain = 1.0 / math.sqrt(in_channels)
        self.out_shape = (*resolution, int(out_channels))

    @_no_autograph
    def __call__(self, x, w):
        return _recompute_call(self._forward, (x, w))

    def _forward(self, x, w):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv3d(x, self.weight, styles, demodulate=False, compute_dtype=self.dtype)
        x = fused_bias_act(x, tf.cast(self.bias, self.dtype), act="linear", clamp=self.conv_clamp)
        return tf.cast(x, tf.float32)


# ----------------------------------------------------------------------------------------------
# Mapping network.


class MappingNetwork(tf.Module):
    """z (+ label embedding) -> w, broadcast to num_ws; tracked w_avg for truncation."""

    def __init__(self, z_dim, c_dim, w_dim, num_ws, num_layers=8, layer_features=None, lr_multiplier=0.01,
                 w_avg_beta=0.995, embed_features=None, activation="lrelu", name=None):
        super().__init__(name=name)
        self.z_dim, self.c_dim, self.w_dim = int(z_dim), int(c_dim), int(w_dim)
        self.num_ws = None if num_ws is None else int(num_ws)
        self.num_layers, self.lr_multiplier, self.w_avg_beta = int(num_layers), float(lr_multiplier), w_avg_beta
        self.activation = activation
        if self.z_dim + self.c_dim == 0:
            raise ValueError("MappingNetwork needs z_dim > 0 or c_dim > 0")
        if self.num_layers < 1:
            raise ValueError("MappingNetwork needs num_layers >= 1")
        if embed_features is None:
            embed_features = self.w_dim
        self.embed_features = int(embed_features) if self.c_dim > 0 else 0
        self.layer_features = int(self.w_dim if layer_features is None else layer_features)
        if self.c_dim > 0:
            self.embed = FullyConnectedLayer(self.c_dim, self.embed_features, name="embed")
        feats = [self.z_dim + self.embed_features] + [self.layer_features] * (self.num_layers - 1) + [self.w_dim]
        self.layers = [
            FullyConnectedLayer(feats[i], feats[i + 1], activation=activation, lr_multiplier=self.lr_multiplier,
                                name=f"fc{i}")
            for i in range(self.num_layers)
        ]
        if w_avg_beta is not None:
            # MEAN: an update made inside strategy.run averages over replicas instead of failing.
            self.w_avg = tf.Variable(tf.zeros([self.w_dim]), trainable=False, name="w_avg",
                                     aggregation=tf.VariableAggregation.MEAN)

    @_no_autograph
    def __call__(self, z, c=None, psi=1.0, truncation_cutoff=None):
        parts = []
        if self.z_dim > 0:
            parts.append(normalize_2nd_moment(tf.cast(z, tf.float32)))
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this network is conditional (c_dim={self.c_dim}): pass labels c")
            parts.append(normalize_2nd_moment(self.embed(tf.cast(c, tf.float32))))
        x = parts[0] if len(parts) == 1 else tf.concat(parts, axis=1)
        for layer in self.layers:
            x = layer(x)
        if self.num_ws is None:
            return x
        x = tf.tile(x[:, None, :], [1, self.num_ws, 1])
        if isinstance(psi, (int, float)) and psi == 1:
            return x
        if self.w_avg_beta is None:
            raise ValueError("truncation needs a tracked w_avg (w_avg_beta is None)")
        psi = tf.cast(psi, tf.float32)
        truncated = self.w_avg + psi * (x - self.w_avg)
        if truncation_cutoff is None:
            return truncated
        mask = (tf.range(self.num_ws) < int(truncation_cutoff))[None, :, None]
        return tf.where(mask, truncated, x)

    def update_w_avg(self, ws):
        """w_avg <- lerp(mean_batch(w), w_avg, beta). ws is [N,w_dim] or [N,num_ws,w_dim] (layer 0 is used)."""
        ws = tf.cast(ws, tf.float32)
        if ws.shape.rank == 3:
            ws = ws[:, 0]
        mean = tf.reduce_mean(ws, axis=0)
        self.w_avg.assign(mean + self.w_avg_beta * (self.w_avg - mean))

    def get_config(self):
        return dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                    num_layers=self.num_layers, layer_features=self.layer_features,
                    lr_multiplier=self.lr_multiplier, w_avg_beta=self.w_avg_beta,
                    embed_features=self.embed_features if self.c_dim else None, activation=self.activation)

    def _summary_rows(self, prefix):
        rows = []
        if self.c_dim > 0:
            rows.append((f"{prefix}embed", self.embed, self.embed.out_shape))
        rows += [(f"{prefix}{m.name}", m, m.out_shape) for m in self.layers]
        if self.w_avg_beta is not None:
            rows.append((f"{prefix}w_avg", [self.w_avg], (self.w_dim,)))
        return rows


# ----------------------------------------------------------------------------------------------
# Synthesis network.


class SynthesisBlock(tf.Module):
    """One resolution: const + conv (base) or conv0 (upsampling) + conv1; ToRGB on the last / 'skip'."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, up, img_channels, is_last, architecture,
                 resample_filter, use_noise, conv_clamp, compute_dtype, name=None):
        super().__init__(name=name)
        self.in_channels, self.resolution, self.up = in_channels, tuple(resolution), up
        self.is_last, self.architecture = is_last, architecture
        self.filter = setup_filter(list(resample_filter))
        self.dtype = _check_dtype(compute_dtype)
        common = dict(w_dim=w_dim, resolution=resolution, use_noise=use_noise, resample_filter=resample_filter,
                      conv_clamp=conv_clamp, compute_dtype=compute_dtype)
        self.layers = []  # ordered (short name, layer) pairs, for summaries and layer_names
        if in_channels == 0:
            self.const = tf.Variable(_normal([1, *self.resolution, out_channels]), name="const")
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, up=up, name="conv0", **common)
            self.layers.append(("conv0", self.conv0))
        self.conv1 = SynthesisLayer(out_channels, out_channels, name="conv1", **common)
        self.layers.append(("conv" if in_channels == 0 else "conv1", self.conv1))
        self.num_conv = len(self.layers)
        self.num_torgb = 1 if (is_last or architecture == "skip") else 0
        if self.num_torgb:
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    compute_dtype=compute_dtype, name="torgb")
        if architecture == "resnet" and in_channels != 0:
            self.skip = Conv3dLayer(in_channels, out_channels, 1, resolution, bias=False, up=up,
                                    resample_filter=resample_filter, compute_dtype=compute_dtype, name="skip")

    def noise_layers(self):
        return [layer for _, layer in self.layers]

    @_no_autograph
    def __call__(self, x, img, ws, noise_mode, noise):
        """ws: list of [N,w_dim] (num_conv + num_torgb of them); noise: list per conv layer or None."""
        noise = noise or [None] * self.num_conv
        if self.in_channels == 0:
            x = tf.tile(tf.cast(self.const, self.dtype), [tf.shape(ws[0])[0], 1, 1, 1, 1])
            x = self.conv1(x, ws[0], noise_mode, noise[0])
        elif self.architecture == "resnet":
            y = self.skip(x, gain=_SQRT_HALF)
            x = self.conv0(x, ws[0], noise_mode, noise[0])
            x = self.conv1(x, ws[1], noise_mode, noise[1], gain=_SQRT_HALF)
            x = y + x
        else:
            x = self.conv0(x, ws[0], noise_mode, noise[0])
            x = self.conv1(x, ws[1], noise_mode, noise[1])
        if img is not None:
            img = upsample_3d(img, self.filter, up=self.up)
        if self.num_torgb:
            y = self.torgb(x, ws[self.num_conv])
            img = y if img is None else img + y
        return x, img


class SynthesisNetwork(tf.Module):
    """ws [N,num_ws,w_dim] -> volume [N,D,H,W,C] float32."""

    def __init__(self, w_dim, img_channels=1, base_shape=(5, 6, 7), up_factors=None, fmap_base=96, fmap_min=96,
                 fmap_max=96, architecture="orig", resample_filter=(1, 3, 3, 1), use_noise=True, conv_clamp=None,
                 compute_dtype="float32", name=None):
        super().__init__(name=name)
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"synthesis architecture must be orig, skip or resnet, got {architecture!r}")
        self.w_dim, self.img_channels = int(w_dim), int(img_channels)
        self.base_shape = _shape3(base_shape, "base_shape")
        self.up_factors = _up_factors(up_factors)
        self.fmap_base, self.fmap_min, self.fmap_max = int(fmap_base), int(fmap_min), int(fmap_max)
        self.architecture, self.resample_filter = architecture, [float(t) for t in resample_filter]
        self.use_noise, self.conv_clamp = bool(use_noise), conv_clamp
        self.compute_dtype = compute_dtype
        _check_dtype(compute_dtype)
        self.resolutions = stage_resolutions(self.base_shape, self.up_factors)
        self.img_shape = self.resolutions[-1]
        self.num_ws = 2 + 2 * len(self.up_factors)

        def nf(stage):
            return feature_depth(stage, self.fmap_base, self.fmap_min, self.fmap_max)

        self.blocks = []
        for stage, res in enumerate(self.resolutions):
            self.blocks.append(SynthesisBlock(
                in_channels=0 if stage == 0 else nf(stage - 1), out_channels=nf(stage), w_dim=self.w_dim,
                resolution=res, up=None if stage == 0 else self.up_factors[stage - 1],
                img_channels=self.img_channels, is_last=stage == len(self.resolutions) - 1,
                architecture=architecture, resample_filter=self.resample_filter, use_noise=self.use_noise,
                conv_clamp=conv_clamp, compute_dtype=compute_dtype, name=_res_name(res)))
        noised = [layer for b in self.blocks for layer in b.noise_layers()] if self.use_noise else []
        self.noise_shapes = [[1, *layer.resolution, 1] for layer in noised]
        self.const_noise = [layer.noise_const for layer in noised]

    @_no_autograph
    def __call__(self, ws, noise_mode="random", noise=None):
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        ws = tf.cast(ws, tf.float32)
        if ws.shape.rank != 3 or ws.shape[1] != self.num_ws or ws.shape[2] != self.w_dim:
            raise ValueError(f"ws must be [N, {self.num_ws}, {self.w_dim}], got {ws.shape}")
        if noise is not None:
            noise = list(noise)
            if len(noise) != len(self.noise_shapes):
                raise ValueError(f"noise must be a list of {len(self.noise_shapes)} maps, got {len(noise)}")
        x = img = None
        w_idx = n_idx = 0
        for block in self.blocks:
            block_ws = [ws[:, w_idx + i] for i in range(block.num_conv + block.num_torgb)]
            block_noise = None
            if noise is not None and self.use_noise:
                block_noise = noise[n_idx:n_idx + block.num_conv]
            x, img = block(x, img, block_ws, noise_mode, block_noise)
            w_idx += block.num_conv
            n_idx += block.num_conv
        return img

    def get_config(self):
        return dict(w_dim=self.w_dim, img_channels=self.img_channels, base_shape=list(self.base_shape),
                    up_factors=[list(f) for f in self.up_factors], fmap_base=self.fmap_base,
                    fmap_min=self.fmap_min, fmap_max=self.fmap_max, architecture=self.architecture,
                    resample_filter=list(self.resample_filter), use_noise=self.use_noise,
                    conv_clamp=self.conv_clamp, compute_dtype=self.compute_dtype)

    def _summary_rows(self, prefix):
        rows = []
        for b in self.blocks:
            if b.in_channels == 0:
                rows.append((f"{prefix}{b.name}.const", [b.const], tuple(b.const.shape[1:])))
            if hasattr(b, "skip"):
                rows.append((f"{prefix}{b.name}.skip", b.skip, b.skip.out_shape))
            rows += [(f"{prefix}{b.name}.{n}", layer, layer.out_shape) for n, layer in b.layers]
            if b.num_torgb:
                rows.append((f"{prefix}{b.name}.torgb", b.torgb, b.torgb.out_shape))
        return rows


class Generator(tf.Module):
    """z [N,z_dim] (+ c [N,c_dim]) -> volume [N,D,H,W,C] float32 in roughly [-1, 1]."""

    def __init__(self, z_dim, c_dim, w_dim, img_channels=1, mapping_kwargs=None, synthesis_kwargs=None, name=None):
        super().__init__(name=name)
        self.z_dim, self.c_dim, self.w_dim, self.img_channels = int(z_dim), int(c_dim), int(w_dim), int(img_channels)
        mapping_kwargs = {k: v for k, v in dict(mapping_kwargs or {}).items()
                          if k not in ("z_dim", "c_dim", "w_dim", "num_ws")}
        synthesis_kwargs = {k: v for k, v in dict(synthesis_kwargs or {}).items()
                            if k not in ("w_dim", "img_channels", *LEGACY_SYNTHESIS_KWARGS)}
        self.synthesis = SynthesisNetwork(w_dim=self.w_dim, img_channels=self.img_channels, name="synthesis",
                                          **synthesis_kwargs)
        self.num_ws = self.synthesis.num_ws
        self.img_shape = self.synthesis.img_shape
        self.mapping = MappingNetwork(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, num_ws=self.num_ws,
                                      name="mapping", **mapping_kwargs)

    @_no_autograph
    def __call__(self, z, c=None, psi=1.0, truncation_cutoff=None, noise_mode="random"):
        ws = self.mapping(z, c, psi=psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

    def get_config(self):
        m = self.mapping.get_config()
        s = self.synthesis.get_config()
        for k in ("z_dim", "c_dim", "w_dim", "num_ws"):
            m.pop(k)
        for k in ("w_dim", "img_channels"):
            s.pop(k)
        return dict(z_dim=self.z_dim, c_dim=self.c_dim, w_dim=self.w_dim, img_channels=self.img_channels,
                    mapping_kwargs=m, synthesis_kwargs=s)

    def _summary_rows(self, prefix=""):
        return self.mapping._summary_rows("mapping.") + self.synthesis._summary_rows("synthesis.")


# ----------------------------------------------------------------------------------------------
# Discriminator.


class DiscriminatorBlock(tf.Module):
    """FromRGB (top / 'skip'), Conv0 3x3x3, Conv1_down 3x3x3; 'resnet' adds a 1x1x1 downsampling skip."""

    def __init__(self, in_channels, tmp_channels, out_channels, resolution, down, img_channels, architecture,
                 resample_filter, conv_clamp, compute_dtype, name=None):
        super().__init__(name=name)
        self.in_channels, self.architecture, self.down = in_channels, architecture, down
        self.resolution = tuple(resolution)
        self.filter = setup_filter(list(resample_filter))
        low = tuple(r // d for r, d in zip(resolution, down, strict=True))
        common = dict(resample_filter=resample_filter, conv_clamp=conv_clamp, compute_dtype=compute_dtype)
        self.layers = []
        if in_channels == 0 or architecture == "skip":
            self.fromrgb = Conv3dLayer(img_channels, tmp_channels, 1, resolution, activation="lrelu",
                                       name="fromrgb", **common)
            self.layers.append(("fromrgb", self.fromrgb))
        if architecture == "resnet":
            self.skip = Conv3dLayer(tmp_channels, out_channels, 1, low, bias=False, down=down, name="skip",
                                    **common)
            self.layers.append(("skip", self.skip))
        self.conv0 = Conv3dLayer(tmp_channels, tmp_channels, 3, resolution, activation="lrelu", name="conv0",
                                 **common)
        self.conv1 = Conv3dLayer(tmp_channels, out_channels, 3, low, activation="lrelu", down=down,
                                 name="conv1_down", **common)
        self.layers += [("conv0", self.conv0), ("conv1_down", self.conv1)]

    @_no_autograph
    def __call__(self, x, img):
        if self.in_channels == 0 or self.architecture == "skip":
            y = self.fromrgb(img)
            x = y if x is None else x + y
            img = downsample_3d(img, self.filter, down=self.down) if self.architecture == "skip" else None
        if self.architecture == "resnet":
            y = self.skip(x, gain=_SQRT_HALF)
            x = self.conv0(x)
            x = self.conv1(x, gain=_SQRT_HALF)
            x = y + x
        else:
            x = self.conv1(self.conv0(x))
        return x, img


@_no_autograph
def minibatch_stddev(x, group_size=4, num_features=1):
    """Append num_features channels of the per-group feature std (float32). x [N,D,H,W,C].

    The group size is the largest g <= min(group_size, N) that divides N, so any batch works; sample i
    belongs to group i mod (N/g), as in StyleGAN2.
    """
    x = tf.cast(x, tf.float32)
    n = tf.shape(x)[0]
    d, h, w, c = x.shape[1:]
    f = int(num_features)
    if c % f:
        raise ValueError(f"mbstd_num_features={f} must divide the channel count {c}")
    if x.shape[0] is not None:  # static batch: a Python group size keeps the graph XLA-friendly
        g = next(k for k in range(min(int(group_size), x.shape[0]), 0, -1) if x.shape[0] % k == 0)
    else:
        cands = tf.range(int(group_size), 0, -1)
        g = tf.boolean_mask(cands, tf.logical_and(cands <= n, tf.math.floormod(n, cands) == 0))[0]
    y = tf.reshape(x, [g, -1, d, h, w, f, c // f])
    y = y - tf.reduce_mean(y, axis=0)
    y = tf.sqrt(tf.reduce_mean(tf.square(y), axis=0) + 1e-8)  # [M,D,H,W,F,c]
    y = tf.reduce_mean(y, axis=[1, 2, 3, 5])  # [M,F]
    y = tf.tile(y, [g, 1])  # sample g*M+m gets group m's statistic
    y = tf.broadcast_to(y[:, None, None, None, :], [n, d, h, w, f])
    return tf.concat([x, y], axis=-1)


class DiscriminatorEpilogue(tf.Module):
    """At the base size, in float32: [FromRGB for 'skip'], mbstd, Conv 3x3x3, Dense, Output (or projection)."""

    def __init__(self, in_channels, cmap_dim, resolution, img_channels, architecture, mbstd_group_size,
                 mbstd_num_features, conv_clamp, name=None):
        super().__init__(name=name)
        self.architecture, self.cmap_dim = architecture, cmap_dim
        self.mbstd_group_size, self.mbstd_num_features = mbstd_group_size, mbstd_num_features
        self.resolution = tuple(resolution)
        self.layers = []
        if architecture == "skip":
            self.fromrgb = Conv3dLayer(img_channels, in_channels, 1, resolution, activation="lrelu",
                                       conv_clamp=conv_clamp, name="fromrgb")
            self.layers.append(("fromrgb", self.fromrgb))
        self.conv = Conv3dLayer(in_channels + mbstd_num_features, in_channels, 3, resolution, activation="lrelu",
                                conv_clamp=conv_clamp, name="conv")
        self.fc = FullyConnectedLayer(in_channels * int(np.prod(resolution)), in_channels, activation="lrelu",
                                      name="fc")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim, name="out")
        self.layers += [("conv", self.conv), ("fc", self.fc), ("out", self.out)]

    @_no_autograph
    def __call__(self, x, img, cmap=None):
        x = tf.cast(x, tf.float32)
        if self.architecture == "skip":
            x = x + self.fromrgb(tf.cast(img, tf.float32))
        if self.mbstd_num_features > 0:
            x = minibatch_stddev(x, self.mbstd_group_size, self.mbstd_num_features)
        x = self.conv(x)
        x = self.fc(tf.reshape(x, [tf.shape(x)[0], -1]))
        x = self.out(x)
        if self.cmap_dim > 0:
            x = tf.reduce_sum(x * cmap, axis=1, keepdims=True) * (1.0 / math.sqrt(self.cmap_dim))
        return x


class Discriminator(tf.Module):
    """volume [N,D,H,W,C] (+ c) -> logits [N,1] float32."""

    def __init__(self, c_dim=0, img_shape=None, img_channels=1, base_shape=(5, 6, 7), up_factors=None, fmap_base=96,
                 fmap_min=96, fmap_max=96, architecture="resnet", mbstd_group_size=4, mbstd_num_features=1,
                 resample_filter=(1, 3, 3, 1), conv_clamp=None, compute_dtype="float32", cmap_dim=None,
                 mapping_kwargs=None, name=None):
        super().__init__(name=name)
        if architecture not in ("orig", "skip", "resnet"):
            raise ValueError(f"discriminator architecture must be orig, skip or resnet, got {architecture!r}")
        self.c_dim, self.img_channels = int(c_dim), int(img_channels)
        self.base_shape = _shape3(base_shape, "base_shape")
        if up_factors is None and img_shape is not None:
            up_factors = _isotropic_factors(img_shape, self.base_shape)
        self.up_factors = _up_factors(up_factors)
        self.resolutions = stage_resolutions(self.base_shape, self.up_factors)
        if img_shape is not None and tuple(img_shape) != self.resolutions[-1]:
            raise ValueError(f"image shape {tuple(img_shape)} does not match base {self.base_shape} with up factors "
                            f"{self.up_factors}, which give {self.resolutions[-1]}")
        self.img_shape = self.resolutions[-1]
        self.fmap_base, self.fmap_min, self.fmap_max = int(fmap_base), int(fmap_min), int(fmap_max)
        self.architecture, self.resample_filter = architecture, [float(t) for t in resample_filter]
        self.mbstd_group_size, self.mbstd_num_features = int(mbstd_group_size), int(mbstd_num_features)
        self.conv_clamp, self.compute_dtype = conv_clamp, compute_dtype
        self.dtype = _check_dtype(compute_dtype)

        def nf(stage):
            return feature_depth(stage, self.fmap_base, self.fmap_min, self.fmap_max)

        self.cmap_dim = 0 if self.c_dim == 0 else int(nf(0) if cmap_dim is None else cmap_dim)
        self.mapping_kwargs = dict(mapping_kwargs or {})
        self.blocks = []
        top = len(self.resolutions) - 1
        for stage in range(top, 0, -1):
            self.blocks.append(DiscriminatorBlock(
                in_channels=0 if stage == top else nf(stage), tmp_channels=nf(stage), out_channels=nf(stage - 1),
                resolution=self.resolutions[stage], down=self.up_factors[stage - 1], img_channels=self.img_channels,
                architecture=architecture, resample_filter=self.resample_filter, conv_clamp=conv_clamp,
                compute_dtype=compute_dtype, name=_res_name(self.resolutions[stage])))
        if self.c_dim > 0:
            self.mapping = MappingNetwork(z_dim=0, c_dim=self.c_dim, w_dim=self.cmap_dim, num_ws=None,
                                          w_avg_beta=None, name="mapping", **self.mapping_kwargs)
        self.epilogue = DiscriminatorEpilogue(
            nf(0), self.cmap_dim, self.base_shape, self.img_channels, architecture, self.mbstd_group_size,
            self.mbstd_num_features, conv_clamp, name=_res_name(self.base_shape))
        if top == 0 and architecture != "skip":
            # No stage above the base: the FromRGB lives in front of the epilogue.
            self.fromrgb = Conv3dLayer(self.img_channels, nf(0), 1, self.base_shape, activation="lrelu",
                                       conv_clamp=conv_clamp, name="fromrgb")

    @_no_autograph
    def __call__(self, img, c=None):
        img = tf.convert_to_tensor(img)
        if img.shape.rank != 5 or tuple(img.shape[1:]) != (*self.img_shape, self.img_channels):
            raise ValueError(f"D expects volumes [N, {', '.join(map(str, self.img_shape))}, {self.img_channels}], "
                             f"got {img.shape}")
        img = tf.cast(img, self.dtype)
        x = None
        for block in self.blocks:
            x, img = block(x, img)
        if x is None and hasattr(self, "fromrgb"):
            x = self.fromrgb(img)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional (c_dim={self.c_dim}): pass labels c")
            cmap = self.mapping(None, c)
        return tf.cast(self.epilogue(x, img, cmap), tf.float32)

    def get_config(self):
        return dict(c_dim=self.c_dim, img_shape=list(self.img_shape), img_channels=self.img_channels,
                    base_shape=list(self.base_shape), up_factors=[list(f) for f in self.up_factors],
                    fmap_base=self.fmap_base, fmap_min=self.fmap_min, fmap_max=self.fmap_max,
                    architecture=self.architecture, mbstd_group_size=self.mbstd_group_size,
                    mbstd_num_features=self.mbstd_num_features, resample_filter=list(self.resample_filter),
                    conv_clamp=self.conv_clamp, compute_dtype=self.compute_dtype,
                    cmap_dim=self.cmap_dim if self.c_dim else None, mapping_kwargs=dict(self.mapping_kwargs))

    def _summary_rows(self, prefix=""):
        rows = []
        for b in self.blocks:
            rows += [(f"{b.name}.{n}", layer, layer.out_shape) for n, layer in b.layers]
        if hasattr(self, "fromrgb"):
            rows.append(("fromrgb", self.fromrgb, self.fromrgb.out_shape))
        if self.c_dim > 0:
            rows += self.mapping._summary_rows("mapping.")
        e = self.epilogue
        rows += [(f"{e.name}.{n}", layer, layer.out_shape) for n, layer in e.layers]
        return rows


def _isotropic_factors(img_shape, base_shape):
    ratios = {int(i) // int(b) for i, b in zip(img_shape, base_shape, strict=True)}
    if len(ratios) == 1:
        r = ratios.pop()
        k = int(round(math.log2(r))) if r > 0 else -1
        if k >= 0 and 2**k == r and all(int(i) == int(b) * r for i, b in zip(img_shape, base_shape, strict=True)):
            return [(2, 2, 2)] * k
    raise ValueError(f"image shape {tuple(img_shape)} is not base {tuple(base_shape)} times a power of two on "
                    f"every axis; give up_factors explicitly")


# ----------------------------------------------------------------------------------------------
# Introspection.


def count_params(module):
    """Number of trainable parameters."""
    return _n_params(module.trainable_variables)


def summary(module, inputs=None):
    """Per-layer output shape and parameter counts (trainable / non-trainable), plus totals, as text.

    Shapes are static (known from the architecture), so nothing is run; `inputs`, if given, only sets the
    batch size shown.
    """
    batch = "N"
    if inputs is not None:
        first = inputs[0] if isinstance(inputs, (list, tuple)) else inputs
        batch = str(first.shape[0])
    rows = module._summary_rows()
    lines = [f"{type(module).__name__}", f"{'layer':<36} {'output shape':<26} {'trainable':>12} {'non-train':>10}"]
    lines.append("-" * len(lines[-1]))
    for name, obj, shape in rows:
        variables = obj if isinstance(obj, list) else list(obj.variables)
        tr = _n_params([v for v in variables if v.trainable])
        nt = _n_params([v for v in variables if not v.trainable])
        lines.append(f"{name:<36} {str([batch, *shape]):<26} {tr:>12,} {nt:>10,}")
    lines.append("-" * len(lines[1]))
    total_tr = count_params(module)
    total_nt = _n_params([v for v in module.variables if not v.trainable])
    lines.append(f"{'Total':<36} {'':<26} {total_tr:>12,} {total_nt:>10,}")
    return "\n".join(lines)


def layer_names(G):
    """Per style index: (ws index, layer names fed by it, resolution of the first such layer).

    Style-mixing presets pick index ranges by resolution (coarse = low, fine = high).
    """
    synthesis = G.synthesis if isinstance(G, Generator) else G
    users = [[] for _ in range(synthesis.num_ws)]
    w_idx = 0
    for b in synthesis.blocks:
        for i, (n, _) in enumerate(b.layers):
            users[w_idx + i].append((f"{b.name}.{n}", b.resolution))
        if b.num_torgb:
            users[w_idx + b.num_conv].append((f"{b.name}.torgb", b.resolution))
        w_idx += b.num_conv
    out = []
    for idx, u in enumerate(users):
        # A shared index feeds a ToRGB and the next block's conv0: report the higher-resolution user.
        res = max((r for _, r in u), key=lambda r: int(np.prod(r)))
        out.append((idx, "+".join(n for n, _ in u), tuple(res)))
    return out
