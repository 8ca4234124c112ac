"""Latent projection: find the W (or W+) and noise maps that make the generator reproduce given volumes.

The schedule is the original's: Adam, 1000 steps, lr 0.3 with a 5% linear ramp-up and a 25% cosine
ramp-down, Gaussian noise on W of 0.05 * (W spread) decaying quadratically to 0 over the first 75% of the
steps, noise maps renormalised to zero mean and unit variance after every step. Unlike the original, the 3D
noise regulariser (squared autocorrelation at one-voxel shifts along the three axes over a 2x pyramid,
weight 1e5) is actually added to the loss, so the noise maps cannot soak up the anatomy.
Loss per target = MSE at full resolution + MSE after 8x average pooling (+ optionally w * (1 - SSIM)).
Units: the MSEs are of volumes in the network's range [-1, 1]; the original measured them on volumes in [0, 255],
ORIGINAL_MSE_SCALE = 127.5^2 = 16256.25 times larger. Without the noise regulariser the two losses differ by that
constant only, which Adam ignores, so --noise_reg_weight=0 optimises exactly the original's loss; the regulariser's
weight (NOISE_REG_WEIGHT against MSEs in [-1, 1]) is NOISE_REG_WEIGHT * ORIGINAL_MSE_SCALE in the original's units.
With a degradation (generation.restoration: thick slices, a mask, a noise level) the generated volume is first
degraded to the targets' sampling and both MSE terms are measured there, over the mask's voxels, times
1/(2 sigma^2) with a noise level; SSIM needs whole volumes on the network grid and is refused with thickening or
a mask. An optional prior on W (as BRGM) adds w_prior_weight * mean over the optimised W rows of
||w - w_avg||^2 / w_std^2: the squared distance to the mapping's mean in units of its spread (w_std^2 =
E ||w - w_avg||^2, so a W drawn by the mapping scores 1 on average).
Several targets are optimised together as one batch; each has its own W and noise maps, and since the loss
is a sum over targets their optimisations do not interact.
"""

import math
import time

import numpy as np
import tensorflow as tf

from dnnlib import EasyDict
from dnnlib.errors import InputError
from dnnlib.ops.modulated_conv3d import modulation_of_activations
from generation.projection_options import (
    LOSSES,
    NOISE_REG_WEIGHT,  # noqa: F401  (the regulariser's default weight, named in this module's docstring)
    projector_defaults,
)
from metrics.ms_ssim import ssim_per_volume_tf
from training.train_state import Adam

# MSE of volumes in [0, 255] (the original's) / MSE of the same volumes in [-1, 1] (ours).
ORIGINAL_MSE_SCALE = 127.5**2


def default_options():
    """The Projector's settings at their defaults (the option table's, generation.projection_options)."""
    return projector_defaults()


# ---------------------------------------------------------------------------------------------------------------
# Schedules (pure functions of t = step / num_steps, so tests can check them against the formulas).


def learning_rate(t, initial=0.3, rampup=0.05, rampdown=0.25):
    ramp = min(1.0, (1.0 - t) / rampdown) if rampdown > 0 else 1.0
    ramp = 0.5 - 0.5 * math.cos(ramp * math.pi)
    if rampup > 0:
        ramp *= min(1.0, t / rampup)
    return initial * ramp


def latent_noise_scale(t, w_std, initial_factor=0.05, ramp_length=0.75):
    return w_std * initial_factor * max(0.0, 1.0 - t / ramp_length) ** 2


# ---------------------------------------------------------------------------------------------------------------
# Loss pieces (TF, per target: every function returns [N]).


def pooled_masked_mse(x, y, weights, ksize):
    """[N]: MSE of masked average pooling (per window: sum of w * x / sum of w) with window `ksize` (3 ints),
    weighted by each window's mask weight; weights None = all voxels. Excluded voxels never reach the pooled
    values, so a mask hides them at the coarse scale too."""
    w = tf.ones_like(x[..., :1]) if weights is None else tf.broadcast_to(
        tf.reshape(tf.convert_to_tensor(weights, x.dtype), [-1, *x.shape[1:4], 1]), tf.shape(x[..., :1]))
    pool = lambda v: tf.nn.avg_pool3d(v, ksize=ksize, strides=ksize, padding="SAME")  # noqa: E731
    wp = pool(w)
    xp, yp = tf.math.divide_no_nan(pool(w * x), wp), tf.math.divide_no_nan(pool(w * y), wp)
    return tf.math.divide_no_nan(tf.reduce_sum(wp * tf.square(xp - yp), axis=[1, 2, 3, 4]),
                                 tf.reduce_sum(wp * tf.ones_like(xp), axis=[1, 2, 3, 4]))


def w_prior(w, w_avg, w_std):
    """[N]: mean over the rows of w [N,rows,w_dim] of ||w_row - w_avg||^2 / w_std^2."""
    return tf.reduce_mean(tf.reduce_sum(tf.square(w - w_avg), axis=-1), axis=1) / float(w_std) ** 2


def noise_regularizer(noise_maps):
    """Sum over maps and pyramid levels of the squared mean autocorrelation at a one-voxel (circular) shift,
    along each spatial axis. Levels halve the map by 2x average pooling while every axis is even and > 8.
    noise_maps: list of [N,D,H,W,1]; returns [N]."""
    total = 0.0
    for v in noise_maps:
        while True:
            for axis in (1, 2, 3):
                total += tf.square(tf.reduce_mean(v * tf.roll(v, shift=1, axis=axis), axis=[1, 2, 3, 4]))
            dims = v.shape[1:4]
            if min(dims) <= 8 or any(d % 2 for d in dims):
                break
            v = tf.nn.avg_pool3d(v, ksize=2, strides=2, padding="VALID")
    return total


# ---------------------------------------------------------------------------------------------------------------
# W statistics.


def w_statistics(G, num_samples=10000, c=None, seed=123, chunk=1000):
    """(w_avg [w_dim], w_std scalar) from mapping num_samples (>= 2) random z; w_std = sqrt(E ||w - w_avg||^2)."""
    rng = np.random.RandomState(seed)
    z_dim, c_dim = int(G.z_dim), int(G.c_dim)
    mapping = tf.function(lambda z, c_: G.mapping(z, c_, psi=1.0)[:, 0], autograph=False)
    ws = []
    for a in range(0, num_samples, chunk):
        n = min(chunk, num_samples - a)
        z = rng.randn(n, z_dim).astype(np.float32)
        cs = tf.constant(np.tile(np.asarray(c, np.float32).reshape(1, c_dim), [n, 1])) if c_dim else None
        ws.append(mapping(tf.constant(z), cs).numpy().astype(np.float64))
    ws = np.concatenate(ws)
    w_avg = ws.mean(axis=0)
    w_std = float(np.sqrt(np.sum((ws - w_avg) ** 2) / num_samples))
    return w_avg.astype(np.float32), w_std


# ---------------------------------------------------------------------------------------------------------------
# The optimisation.


class Projector:
    """Projects a batch of targets [N,D,H,W,C] in [-1, 1]. Build once, then run().

    degradation: a generation.restoration.forward_models.Degradation (its mask read) shared by the batch; the
    targets are then on its degraded grid (degradation.output_shape(G.img_shape)). None = compare on the network
    grid."""

    def __init__(self, G, targets, c=None, opts=None, w_stats=None, degradation=None):
        from generation.restoration.forward_models import Degradation

        self.G = G
        self.opts = o = EasyDict({**default_options(), **(opts or {})})
        if o.loss not in LOSSES:
            raise InputError(f"loss {o.loss!r}: expected one of {', '.join(LOSSES)}")
        if not (math.isfinite(o.w_prior_weight) and o.w_prior_weight >= 0):
            raise InputError(f"w_prior_weight must be >= 0, got {o.w_prior_weight}")
        self.degradation = deg = degradation if degradation is not None else Degradation()
        if o.loss == "mse+ssim" and (deg.ops or deg.mask is not None):
            raise InputError(f"loss {o.loss!r} compares whole volumes on the network grid; it cannot be used with "
                             f"the degradation '{deg.spec()}' (thick slices or a mask): use loss 'mse'")
        self.mask = deg.weights()
        targets = np.asarray(targets, np.float32)
        want = (*deg.output_shape(G.img_shape), int(G.img_channels))
        if targets.ndim != 5 or targets.shape[1:] != want:
            grid = f"the degraded grid of '{deg.spec()}' is" if deg.ops else "the network makes"
            raise InputError(f"projection targets have shape {targets.shape[1:]}, {grid} {want}")
        if self.mask is not None and tuple(self.mask.shape[-3:]) != want[:3]:
            raise InputError(f"mask {deg.mask.path or '(array)'} has shape {self.mask.shape}, the degraded grid is "
                             f"{want[:3]}")
        self.n = n = targets.shape[0]
        self.num_ws, self.w_dim = int(G.num_ws), int(G.w_dim)
        self.w_avg, self.w_std = w_stats if w_stats is not None else w_statistics(G, o.w_avg_samples, c, o.seed)
        self.targets = tf.constant(targets)
        # The coarse term keeps its scale in network voxels: a thickened axis is pooled by fewer degraded slices.
        self.pool_ksize = [1, *self._pool_window(o.downsample_factor), 1]

        rng = np.random.RandomState(o.seed)
        w_rows = self.num_ws if o.w_plus else 1
        self.w_opt = tf.Variable(np.tile(self.w_avg.reshape(1, 1, -1), [n, w_rows, 1]), name="w_opt")
        self.noise = [tf.Variable(rng.randn(n, *[int(s) for s in shape[1:]]).astype(np.float32), name=f"noise{i}")
                      for i, shape in enumerate(G.synthesis.noise_shapes)]
        self.params = [self.w_opt, *self.noise]
        # The original's tf.train.AdamOptimizer settings (beta1 0.9, beta2 0.999, eps 1e-8); the learning rate
        # follows the schedule, set before every step.
        self.optimizer = Adam(self.params, lr=o.initial_learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8)
        self.rand = tf.random.Generator.from_seed(o.seed + 1)
        self._renormalize_noise()
        self._step = tf.function(self._step_impl, autograph=False)

    def _pool_window(self, factor):
        f = [1.0, 1.0, 1.0]
        for op in self.degradation.ops:
            f[op.axis] *= float(op.factor)
        return [max(1, int(round(factor / a))) if factor > 1 else 1 for a in f]

    def _ws(self, w):
        return w if self.opts.w_plus else tf.tile(w, [1, self.num_ws, 1])

    def _renormalize_noise(self):
        for v in self.noise:
            mean = tf.reduce_mean(v, axis=[1, 2, 3, 4], keepdims=True)
            std = tf.sqrt(tf.reduce_mean(tf.square(v - mean), axis=[1, 2, 3, 4], keepdims=True))
            v.assign((v - mean) / (std + 1e-8))

    def synthesize(self, w_noise=0.0):
        """The volumes [N,D,H,W,C] of the current W (+ w_noise) and noise maps."""
        # Gradients wrt ws and noise only: scaling the activations beats per-sample weights here.
        with modulation_of_activations():
            return self.G.synthesis(self._ws(self.w_opt + w_noise), noise=list(self.noise))

    def loss_terms(self, img):
        """Per-target terms [N] for volumes img: mse, mse_down (in [-1, 1]), noise_reg, [ssim, w_prior,] the data
        term (data: everything but the noise regulariser, weighted), the weighted regulariser (noise_reg_weighted)
        and their sum, loss."""
        o = self.opts
        from generation.restoration.data_term import gaussian_data_term, noise_weight

        deg = self.degradation
        degraded = deg(img)  # = deg.loss's comparison, degraded once for both terms
        terms = {
            "mse": gaussian_data_term(degraded, self.targets, deg.sigma, self.mask),
            "mse_down": noise_weight(deg.sigma) * pooled_masked_mse(degraded, self.targets, self.mask,
                                                                   self.pool_ksize),
            "noise_reg": noise_regularizer(self.noise) if self.noise else tf.zeros([self.n]),
        }
        data = terms["mse"] + terms["mse_down"]
        if o.loss == "mse+ssim":
            terms["ssim"] = ssim_per_volume_tf(img, self.targets, data_range=2.0)
            data += o.ssim_weight * (1.0 - terms["ssim"])
        if o.w_prior_weight > 0:
            terms["w_prior"] = w_prior(self.w_opt, self.w_avg, self.w_std)
            data += o.w_prior_weight * terms["w_prior"]
        terms["data"] = data
        terms["noise_reg_weighted"] = o.regularize_noise_weight * terms["noise_reg"]
        terms["loss"] = data + terms["noise_reg_weighted"]
        return terms

    def _step_impl(self, lr, w_noise_scale):
        w_noise = self.rand.normal(self.w_opt.shape) * w_noise_scale
        with tf.GradientTape() as tape:
            terms = self.loss_terms(self.synthesize(w_noise))
            total = tf.reduce_sum(terms["loss"])  # targets are independent: their gradients do not mix
        grads = tape.gradient(total, self.params)
        self.optimizer.lr.assign(lr)
        self.optimizer.apply(grads, self.params)
        self._renormalize_noise()
        return terms

    def run(self, progress=None, progress_every=100):
        """Optimise; returns EasyDict(ws [N,num_ws,w_dim], noise list of [N,D,H,W,1], volumes [N,D,H,W,C] in
        [-1,1], curve: list of per-step dicts {step, lr, seconds (since the start), loss, data, noise_reg_weighted,
        mse, mse_down, noise_reg[, ssim, w_prior]} with [N] arrays).
        """
        o = self.opts
        curve = []
        start = time.time()
        for step in range(o.num_steps):
            t = step / o.num_steps
            lr = learning_rate(t, o.initial_learning_rate, o.lr_rampup_length, o.lr_rampdown_length)
            scale = latent_noise_scale(t, self.w_std, o.initial_noise_factor, o.noise_ramp_length)
            terms = self._step(tf.constant(lr, tf.float32), tf.constant(scale, tf.float32))
            row = {"step": step + 1, "lr": lr, **{k: v.numpy() for k, v in terms.items()},
                   "seconds": time.time() - start}
            curve.append(row)
            if progress is not None and ((step + 1) % progress_every == 0 or step + 1 == o.num_steps):
                progress(row)
        ws = self._ws(self.w_opt).numpy()
        noise = [v.numpy() for v in self.noise]
        volumes = self.G.synthesis(tf.constant(ws), noise=[tf.constant(v) for v in noise]).numpy()
        return EasyDict(ws=ws, noise=noise, volumes=volumes, curve=curve)
