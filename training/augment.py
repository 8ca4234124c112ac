"""3D adaptive discriminator augmentation (ADA, Karras et al. 2020) for volumes NDHWC in [-1, 1].

Every volume the discriminator sees, real or generated, in every D and G phase, passes through `AugmentPipe`:
each transform is applied per sample with probability p x its multiplier. p is a checkpointed variable that the
training loop moves by the overfitting heuristic r_t = E[sign(D(real))] (`AugmentPipe.adapt`).

Groups (selected by letters, as ADA's --augpipe: "b", "bg", "bgc", "bgcn", ...):
  b  blit:      flips along each axis (the dataset's mirror axis = left-right has its own multiplier), 90-degree
                rotations in the planes whose spacing is isotropic, integer translation (in voxels);
  g  geometric: isotropic and anisotropic scaling, arbitrary 3D rotation (random axis), fractional translation;
  c  intensity: bias field (a smooth multiplicative field like an MRI coil's), gamma, brightness, contrast,
                intensity inversion;
  n  corruption: additive Gaussian noise and 3D cutout.

Geometry: blit and geometric transforms are composed into one 4x4 matrix per sample in *millimetres* about the
volume centre (world = spacing * (voxel - centre)), then turned into a voxel->voxel matrix, so a rotation is a
rotation of the anatomy, not of voxel indices, on anisotropic grids. The volume is resampled once, trilinearly.
The sampling positions depend on the parameters only, never on the volume, so the pipeline is a linear map of
the volume (plus the intensity ops): first and second derivatives w.r.t. the volume are exact (R1 through it).

Padding rule: outside the field of view is background, -1 (intensity 0): datasets here are skull-stripped or
cropped scans on an empty background, where ADA's reflection padding would mirror anatomy into view, a visible
artefact the generator could learn to reproduce. Cutout fills with background for the same reason.

Anti-aliasing: ADA supersamples 2x with a wavelet filter around the resampling; in 3D that is 8x the voxels.
We only need it where the transform shrinks the volume (minification m > 1 input voxels per output voxel), so
each sample is resampled from a blend of the volume and its [1,2,1]-low-passed copy (one `filter_3d` pass,
upfirdn_3d), blend weight clip(m - 1, 0, 1): no blur for rotations, translations and enlargements, a low-pass
of gain 0 at Nyquist from 2x minification on. Samples whose geometric transforms all lost their coin are copied
untouched, so p = 0 is exactly the identity.

Random parameters come from the pipe's own checkpointed tf.random.Generator, drawn for the global batch in
cross-replica context and sliced per replica like the generator's inputs: replicas share p and the draws, and
a resumed run continues the same stream. With no pipe (aug = noaug) nothing is drawn and the step is unchanged.
"""

import math

import numpy as np
import tensorflow as tf

from dnnlib.ops.affine_resample_3d import affine_resample_3d
from dnnlib.ops.upfirdn_3d import filter_3d, setup_filter
from training.train_options import AUG_MODES
from training.train_options import AUGMENT_GROUPS as GROUPS

BACKGROUND = -1.0
TRANSFORMS = tuple(t for names in GROUPS.values() for t in names)
# Strengths as ADA's defaults where ADA has the transform; log2-normal stds for the multiplicative ones.
STRENGTHS = dict(xint_max=0.125, scale_std=0.2, rotate_max=1.0, aniso_std=0.2, xfrac_std=0.125,
                 biasfield_std=0.1, biasfield_order=3, gamma_std=0.25, brightness_std=0.2, contrast_std=0.5,
                 noise_std=0.1, cutout_size=0.5)
_GAMMA_FLOOR = 0.01  # below it (and above 1) gamma continues with slope 1: finite gradients for any input
_LOWPASS = setup_filter([1, 2, 1])  # anti-aliasing: gain 0 at Nyquist, 0.5 at half Nyquist


def parse_augpipe(spec):
    """Multipliers {transform: 1.0 or 0.0} for a group string such as "bgc" (letters of GROUPS, any order)."""
    spec = str(spec).strip().lower()
    if not spec or any(ch not in GROUPS for ch in spec) or len(set(spec)) != len(spec):
        raise ValueError(f"augmentation pipeline {spec!r}: use distinct letters of {''.join(GROUPS)} "
                         f"(b blit, g geometric, c intensity, n corruption), e.g. bgc")
    return {t: (1.0 if any(t in GROUPS[ch] for ch in spec) else 0.0) for t in TRANSFORMS}


def isotropic_planes(spacing, rtol=1e-6):
    """Axis pairs (a, b) with equal spacing: the planes where a 90-degree rotation maps the grid onto itself."""
    s = [float(v) for v in spacing]
    return [(a, b) for a in range(3) for b in range(a + 1, 3) if abs(s[a] - s[b]) <= rtol * max(s[a], s[b])]


def ada_adjustment(rt, target, batch_size, interval, ada_kimg):
    """ADA's step of p: sign(r_t - target) x (images in the interval) / (ada_kimg x 1000), so p could go 0 -> 1
    in ada_kimg thousand images."""
    return float(np.sign(rt - target)) * batch_size * interval / (ada_kimg * 1000.0)


_PHASE_DRAWS = {"Gmain": ("fake",), "Gboth": ("fake",), "Greg": (), "Dmain": ("fake", "real"),
                "Dboth": ("fake", "real"), "Dreg": ("real", "fake")}


def augment_inputs(pipe, phase, batch):
    """The augmentation parameters one step of `phase` needs, for the global batch: {"aug_fake": [...],
    "aug_real": [...]} (lists of tensors, sliced per replica with the generator's inputs); {} without a pipe.

    Dboth reuses the reals' draw for R1, so the penalty is taken at the very volumes D scored (as ADA)."""
    if pipe is None:
        return {}
    return {f"aug_{kind}": pipe.draw_list(batch) for kind in _PHASE_DRAWS[phase]}


def make_augment_pipe(opts):
    """The pipeline the training options ask for (opts.aug, opts.augment_kwargs), or None for noaug / old options."""
    aug = opts.get("aug") or "noaug"
    if aug not in AUG_MODES:
        raise ValueError(f"unknown augmentation mode {aug!r}; choose one of {', '.join(AUG_MODES)}")
    if aug == "noaug":
        return None
    kw = opts.augment_kwargs
    return AugmentPipe(opts.img_shape, opts.spacing_mm, mirror_axis=kw.mirror_axis, channels=opts.img_channels,
                       augpipe=kw.augpipe, p=kw.p, seed=opts.seed, target=kw.target, ada_kimg=kw.ada_kimg,
                       ada_interval=kw.ada_interval, adaptive=aug == "ada", name="augment")


class AugmentPipe(tf.Module):
    """The augmentation pipeline of one training run: p, its random stream and the r_t accumulator.

    img_shape (D, H, W), spacing (mm per axis), mirror_axis (the left-right axis of the data, 0-2), channels.
    augpipe: group letters (parse_augpipe); multipliers: per-transform overrides (e.g. invert=0).
    target, ada_kimg, ada_interval: the adaptation (adapt); strengths: overrides of STRENGTHS.
    """

    def __init__(self, img_shape, spacing, mirror_axis=0, channels=1, augpipe="bgc", p=0.0, seed=0, target=0.6,
                 ada_kimg=500.0, ada_interval=4, adaptive=False, multipliers=None, strengths=None, name=None):
        super().__init__(name=name)
        self.img_shape = tuple(int(s) for s in img_shape)
        self.spacing = np.asarray([float(s) for s in spacing], np.float64)
        if len(self.img_shape) != 3 or self.spacing.shape != (3,) or np.any(self.spacing <= 0):
            raise ValueError(f"augmentation needs a 3D shape and 3 positive spacings, got {img_shape}, {spacing}")
        self.mirror_axis = int(mirror_axis)
        if self.mirror_axis not in (0, 1, 2):
            raise ValueError(f"mirror axis {mirror_axis} is not 0, 1 or 2")
        self.channels = int(channels)
        self.multipliers = parse_augpipe(augpipe)
        unknown = set(multipliers or {}) - set(TRANSFORMS)
        if unknown:
            raise ValueError(f"unknown transforms {sorted(unknown)}; known: {', '.join(TRANSFORMS)}")
        self.multipliers.update({k: float(v) for k, v in (multipliers or {}).items()})
        unknown = set(strengths or {}) - set(STRENGTHS)
        if unknown:
            raise ValueError(f"unknown strengths {sorted(unknown)}; known: {', '.join(STRENGTHS)}")
        self.strengths = dict(STRENGTHS, **(strengths or {}))
        self.target, self.ada_kimg, self.ada_interval = float(target), float(ada_kimg), int(ada_interval)
        if self.ada_kimg <= 0 or self.ada_interval < 1:
            raise ValueError(f"ada_kimg {ada_kimg} must be > 0 and ada_interval {ada_interval} >= 1")
        self.adaptive = bool(adaptive)
        self.planes = isotropic_planes(self.spacing)
        self.uses = {g: any(self.multipliers[t] > 0 for t in names) for g, names in GROUPS.items()}
        self.p = tf.Variable(float(p), trainable=False, name="p")
        # Its own stream (not the generator inputs'), so the generator's draws are those of a run without it.
        self.rng = tf.random.Generator.from_seed(int(seed) + 0x5EED)
        # The r_t accumulator (resumable), float64 so long intervals sum without drift.
        self.signs_sum = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="signs_sum")
        self.signs_count = tf.Variable(0.0, dtype=tf.float64, trainable=False, name="signs_count")
        self.rt = tf.Variable(float("nan"), trainable=False, name="rt")  # the last r_t used by adapt()
        self._basis = _bias_basis(self.img_shape, self.spacing, int(self.strengths["biasfield_order"]))

    # --- adaptation ------------------------------------------------------------------------------

    def record_signs(self, mean_sign):
        """Accumulate one D step's E[sign(D(real))] (already reduced over every replica)."""
        self.signs_sum.assign_add(float(mean_sign))
        self.signs_count.assign_add(1.0)

    def adapt(self, batch_size):
        """Move p by ADA's rule from the accumulated r_t, clip at 0, reset the accumulator; returns r_t (or None)."""
        count = float(self.signs_count.numpy())
        if count == 0:
            return None
        rt = float(self.signs_sum.numpy()) / count
        adjust = ada_adjustment(rt, self.target, batch_size, self.ada_interval, self.ada_kimg)
        self.p.assign(max(float(self.p.numpy()) + adjust, 0.0))
        self.rt.assign(rt)
        self.signs_sum.assign(0.0)
        self.signs_count.assign(0.0)
        return rt

    def after_batch(self, batch_idx, batch_size):
        """Call after every batch (batch_idx = batches done so far): adapts p every ada_interval batches."""
        if self.adaptive and batch_idx % self.ada_interval == 0:
            return self.adapt(batch_size)
        return None

    def progress(self):
        """{TensorBoard tag: value} for the tick: p and the last r_t (ADA's names)."""
        return {"Progress/augment": float(self.p.numpy()), "Progress/rt": float(self.rt.numpy())}

    # --- parameters ------------------------------------------------------------------------------

    @tf.autograph.experimental.do_not_convert  # no tensor-dependent Python control flow: skip conversion
    def draw(self, batch):
        """Per-sample parameters for `batch` volumes: {name: tensor [batch, ...]} (call in cross-replica context)."""
        rng, st, mult = self.rng, self.strengths, self.multipliers
        p = self.p.read_value()
        out = {}

        def coin(name):
            return tf.cast(rng.uniform([batch]) < p * mult[name], tf.float32)

        if self.uses["b"] or self.uses["g"]:
            eye = tf.eye(4, batch_shape=[batch])
            G_inv = eye  # output world (mm, about the centre) -> input world
            blit = tf.zeros([batch])
            geom = tf.zeros([batch])
            if self.uses["b"]:
                for axis in range(3):
                    # As ADA: the coin chooses to randomise, a fair coin then flips, so a flip has probability
                    # p/2 < 1/2 and D still sees which orientation dominates: a flipped G is penalised (non-leaking).
                    c = coin("mirror" if axis == self.mirror_axis else "flip") * tf.floor(rng.uniform([batch]) * 2.0)
                    sign = 1.0 - 2.0 * c
                    G_inv = G_inv @ _scale(batch, [sign if a == axis else tf.ones([batch]) for a in range(3)])
                    blit = tf.maximum(blit, c)
                for a, b in self.planes:
                    c = coin("rotate90")
                    k = tf.floor(rng.uniform([batch]) * 4.0) * c
                    G_inv = G_inv @ _rotation_in_plane(-k * (math.pi / 2), a, b)
                    blit = tf.maximum(blit, tf.cast(k > 0, tf.float32))
                c = coin("xint")
                size = tf.constant(self.img_shape, tf.float32)
                t_vox = tf.round((rng.uniform([batch, 3]) * 2 - 1) * st["xint_max"] * size) * c[:, None]
                G_inv = G_inv @ _translate(-t_vox * tf.constant(self.spacing, tf.float32))
                blit = tf.maximum(blit, tf.cast(tf.reduce_any(t_vox != 0, axis=1), tf.float32))
            if self.uses["g"]:
                c = coin("scale")
                s = tf.pow(2.0, rng.normal([batch]) * st["scale_std"] * c)
                G_inv = G_inv @ _scale(batch, [1.0 / s] * 3)
                geom = tf.maximum(geom, c)
                c = coin("rotate")
                axis = tf.math.l2_normalize(rng.normal([batch, 3]), axis=1)
                angle = (rng.uniform([batch]) * 2 - 1) * math.pi * st["rotate_max"] * c
                G_inv = G_inv @ _rotation(axis, -angle)
                geom = tf.maximum(geom, c)
                c = coin("aniso")
                log_s = rng.normal([batch, 3]) * st["aniso_std"] * c[:, None]
                log_s -= tf.reduce_mean(log_s, axis=1, keepdims=True)  # volume-preserving
                s = tf.pow(2.0, log_s)
                G_inv = G_inv @ _scale(batch, [1.0 / s[:, a] for a in range(3)])
                geom = tf.maximum(geom, c)
                c = coin("xfrac")
                fov = tf.constant(self.spacing * np.asarray(self.img_shape), tf.float32)
                t_mm = rng.normal([batch, 3]) * st["xfrac_std"] * fov * c[:, None]
                G_inv = G_inv @ _translate(-t_mm)
                geom = tf.maximum(geom, c)
            M = self._voxel_matrix(G_inv)
            # Blit alone is a signed permutation plus an integer shift: round away float error (exact copies).
            blit_only = (geom == 0)[:, None, None]
            out["matrix"] = tf.where(blit_only, tf.round(M), M)
            out["geom_on"] = tf.maximum(blit, geom)
            lin = out["matrix"][:, :3, :3]
            minification = tf.reduce_max(tf.norm(lin, axis=1), axis=1)  # input voxels per output voxel step
            out["lowpass"] = tf.clip_by_value(minification - 1.0, 0.0, 1.0) * geom
        if self.uses["c"]:
            K = self._basis.shape[0]
            c = coin("biasfield")
            out["bias_coeffs"] = rng.normal([batch, K]) * st["biasfield_std"] * c[:, None]
            out["bias_on"] = c
            c = coin("gamma")
            out["gamma"] = tf.pow(2.0, rng.normal([batch]) * st["gamma_std"] * c)
            out["gamma_on"] = c
            c = coin("brightness")
            out["brightness"] = rng.normal([batch]) * st["brightness_std"] * c
            out["brightness_on"] = c
            c = coin("contrast")
            out["contrast"] = tf.pow(2.0, rng.normal([batch]) * st["contrast_std"] * c)
            out["contrast_on"] = c
            out["invert_on"] = coin("invert") * tf.floor(rng.uniform([batch]) * 2.0)  # p/2, as the flips
        if self.uses["n"]:
            c = coin("noise")
            out["noise_std"] = tf.abs(rng.normal([batch])) * st["noise_std"] * c
            out["noise"] = rng.normal([batch, *self.img_shape, self.channels])
            out["noise_on"] = c
            c = coin("cutout")
            out["cutout_center"] = rng.uniform([batch, 3])
            out["cutout_on"] = c
        return out

    def param_keys(self):
        """The names draw() returns, in the order of draw_list()."""
        keys = []
        if self.uses["b"] or self.uses["g"]:
            keys += ["matrix", "geom_on", "lowpass"]
        if self.uses["c"]:
            keys += ["bias_coeffs", "bias_on", "gamma", "gamma_on", "brightness", "brightness_on", "contrast",
                     "contrast_on", "invert_on"]
        if self.uses["n"]:
            keys += ["noise_std", "noise", "noise_on", "cutout_center", "cutout_on"]
        return sorted(keys)

    def draw_list(self, batch):
        """draw() as a list in a fixed order (tf.distribute and the loss slice lists of tensors per replica)."""
        params = self.draw(batch)
        return [params[k] for k in self.param_keys()]

    def _voxel_matrix(self, G_inv):
        # voxel -> world: w = S (v - c); the voxel->voxel matrix is W^-1 G_inv W.
        centre = (np.asarray(self.img_shape, np.float64) - 1) / 2
        W = np.eye(4)
        W[:3, :3] = np.diag(self.spacing)
        W[:3, 3] = -self.spacing * centre
        W_inv = np.linalg.inv(W)
        return tf.constant(W_inv, tf.float32)[None] @ G_inv @ tf.constant(W, tf.float32)[None]

    # --- application -----------------------------------------------------------------------------

    @tf.autograph.experimental.do_not_convert
    def __call__(self, x, params):
        """Augment x [N, D, H, W, C] (network range) with params from draw() (a dict, or draw_list()'s list)."""
        if isinstance(params, (list, tuple)):
            params = dict(zip(self.param_keys(), params, strict=True))
        dtype = x.dtype
        P = {k: tf.cast(v, dtype) for k, v in params.items()}

        def where(on, y, x):
            return tf.where(tf.reshape(on > 0, [-1, 1, 1, 1, 1]), y, x)

        if "matrix" in P:
            def resampled():
                src = x
                if self.uses["g"]:
                    lp = filter_3d(x - BACKGROUND, _LOWPASS) + BACKGROUND
                    src = x + tf.reshape(P["lowpass"], [-1, 1, 1, 1, 1]) * (lp - x)
                return where(P["geom_on"], resample(src, P["matrix"]), x)

            # Skip the resampling when no sample needs it (small p): the same values, less work.
            x = tf.cond(tf.reduce_any(P["geom_on"] > 0), resampled, lambda: tf.identity(x))
        if "bias_on" in P:
            field = tf.exp(tf.einsum("nk,kdhw->ndhw", P["bias_coeffs"], tf.constant(self._basis, dtype)))[..., None]
            x = where(P["bias_on"], (x - BACKGROUND) * field + BACKGROUND, x)
            u = (x + 1) / 2
            uc = tf.clip_by_value(u, _GAMMA_FLOOR, 1.0)
            g = tf.reshape(P["gamma"], [-1, 1, 1, 1, 1])
            x = where(P["gamma_on"], (tf.pow(uc, g) + (u - uc)) * 2 - 1, x)
            # Brightness, contrast and inversion as one affine map: an off transform draws 0 / 1 / sign +1, which
            # leave x bit-identical (x + 0, x * 1), so no per-transform select is needed.
            scale = P["contrast"] * (1.0 - 2.0 * P["invert_on"])
            x = (x + tf.reshape(P["brightness"], [-1, 1, 1, 1, 1])) * tf.reshape(scale, [-1, 1, 1, 1, 1])
        if "noise_on" in P:
            x = where(P["noise_on"], x + tf.reshape(P["noise_std"], [-1, 1, 1, 1, 1]) * P["noise"], x)
            x = where(P["cutout_on"], self._cutout(x, P["cutout_center"]), x)
        return x

    def _cutout(self, x, centre):
        # A box of cutout_size x the field of view per axis (the same fraction in mm and in voxels).
        half = self.strengths["cutout_size"] / 2
        inside = None
        for a, n in enumerate(self.img_shape):
            pos = tf.constant((np.arange(n) + 0.5) / n, x.dtype)
            m = tf.abs(pos[None, :] - centre[:, a : a + 1]) < half  # [N, n]
            shape = [-1, 1, 1, 1, 1]
            shape[a + 1] = n
            m = tf.reshape(m, shape)
            inside = m if inside is None else tf.logical_and(inside, m)
        return tf.where(inside, tf.constant(BACKGROUND, x.dtype), x)


# ----------------------------------------------------------------------------------------------
# Matrices (batched [N, 4, 4], homogeneous, world millimetres) and resampling.


def _scale(batch, s):
    s = [tf.broadcast_to(tf.cast(v, tf.float32), [batch]) for v in s]
    one, zero = tf.ones([batch]), tf.zeros([batch])
    rows = [[s[0], zero, zero, zero], [zero, s[1], zero, zero], [zero, zero, s[2], zero], [zero, zero, zero, one]]
    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def _translate(t):
    batch = tf.shape(t)[0]
    m = tf.eye(4, batch_shape=[batch])
    return tf.concat([m[:, :, :3], tf.concat([t, tf.ones([batch, 1])], axis=1)[:, :, None]], axis=2)


def _rotation(axis, angle):
    """Rotation by `angle` (radians, right-handed) about unit `axis` [N, 3] (Rodrigues)."""
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    c, s = tf.cos(angle), tf.sin(angle)
    C = 1 - c
    zero, one = tf.zeros_like(c), tf.ones_like(c)
    rows = [[c + x * x * C, x * y * C - z * s, x * z * C + y * s, zero],
            [y * x * C + z * s, c + y * y * C, y * z * C - x * s, zero],
            [z * x * C - y * s, z * y * C + x * s, c + z * z * C, zero],
            [zero, zero, zero, one]]
    return tf.stack([tf.stack(r, axis=-1) for r in rows], axis=-2)


def _rotation_in_plane(angle, a, b):
    """Rotation by `angle` in the plane of axes (a, b): a towards b."""
    axis = np.zeros(3, np.float32)
    axis[3 - a - b] = 1.0 if (a, b) in ((0, 1), (1, 2)) else -1.0  # (0,2) is the negative y rotation sense
    batch = tf.shape(angle)[0]
    return _rotation(tf.broadcast_to(tf.constant(axis), [batch, 3]), angle)


def resample(x, matrix, background=BACKGROUND):
    """Trilinear resampling: out[n, o] = x[n, matrix[n] @ o] (voxel coordinates), background outside.

    x [N, D, H, W, C]; matrix [N, 4, 4] maps output voxel indices to input voxel indices. Linear in x: the
    gradient (of any order) w.r.t. x is a fixed sparse matrix's transpose (dnnlib/ops/affine_resample_3d.py).
    """
    return affine_resample_3d(x, matrix, background)


def _bias_basis(img_shape, spacing, order):
    """Monomials x^i y^j z^k, 0 < i + j + k <= order, of world coordinates (mm) scaled by the largest half-extent
    (so the field is smooth in millimetres, not in voxels): [K, D, H, W] float32."""
    axes = []
    for n, s in zip(img_shape, spacing, strict=True):
        axes.append((np.arange(n) - (n - 1) / 2) * s)
    half = max(float(np.max(np.abs(a))) for a in axes) or 1.0
    X, Y, Z = np.meshgrid(*[a / half for a in axes], indexing="ij")
    powers = [(i, j, k) for i in range(order + 1) for j in range(order + 1 - i) for k in range(order + 1 - i - j)]
    terms = [X**i * Y**j * Z**k for i, j, k in powers if i + j + k > 0]
    return np.stack(terms).astype(np.float32) if terms else np.zeros([0, *img_shape], np.float32)
