"""The 3D ADA pipeline (training/augment.py) against independent references: NumPy/SciPy formulas for every
transform, millimetre geometry on anisotropic grids, gradients (first and second order, float64 finite
differences), the adaptation rule, bit-exact resume, replicas, and the wiring into the loss, step and options."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from tests.utils import REPO, make_tiny_dataset
from training.augment import (
    GROUPS,
    STRENGTHS,
    TRANSFORMS,
    AugmentPipe,
    ada_adjustment,
    augment_inputs,
    isotropic_planes,
    parse_augpipe,
    resample,
)
from training.loss import StyleGAN2Loss
from training.train_state import Adam, TrainState
from training.train_step import TrainSteps

SHAPE = (12, 14, 16)
ANISO = (1.0, 1.5, 2.0)


def only(name, **kw):
    """A pipe that applies exactly one transform to every sample (p = 1, that multiplier 1, the others 0)."""
    group = next(g for g, names in GROUPS.items() if name in names)
    return AugmentPipe(kw.pop("shape", SHAPE), kw.pop("spacing", ANISO), augpipe=group, p=1.0,
                       multipliers={t: float(t == name) for t in TRANSFORMS}, **kw)


def smooth(n=3, shape=SHAPE, seed=0):
    rng = np.random.RandomState(seed)
    vols = [ndimage.gaussian_filter(rng.normal(size=shape), 2.0) for _ in range(n)]
    vols = np.stack([v / np.abs(v).max() * 0.8 for v in vols])[..., None]
    return vols.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Identity, groups, errors.


@pytest.mark.parametrize("augpipe", ["b", "bg", "bgc", "bgcn", "gcn"])
def test_p_zero_is_exactly_the_identity(augpipe):
    x = tf.constant(np.random.RandomState(1).uniform(-1, 1, (4, *SHAPE, 1)).astype(np.float32))
    pipe = AugmentPipe(SHAPE, ANISO, augpipe=augpipe, p=0.0)
    y = pipe(x, pipe.draw_list(4))
    assert np.array_equal(y.numpy(), x.numpy())


@pytest.mark.parametrize("spec, on, off", [("b", "mirror", "scale"), ("bg", "rotate", "gamma"),
                                           ("cn", "cutout", "xint"), ("bgcn", "invert", None)])
def test_augpipe_letters_select_groups(spec, on, off):
    m = parse_augpipe(spec)
    assert m[on] == 1.0 and (off is None or m[off] == 0.0)


@pytest.mark.parametrize("spec", ["", "bx", "bb", "geom"])
def test_bad_augpipe_is_refused(spec):
    with pytest.raises(ValueError, match="augmentation pipeline"):
        parse_augpipe(spec)


@pytest.mark.parametrize("kwargs, match", [(dict(spacing=(1, 1)), "3 positive spacings"),
                                           (dict(mirror_axis=3), "mirror axis"),
                                           (dict(multipliers={"warp": 1}), "unknown transforms"),
                                           (dict(strengths={"hue_std": 1}), "unknown strengths")])
def test_bad_pipe_arguments_are_refused(kwargs, match):
    args = dict(img_shape=SHAPE, spacing=ANISO)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        AugmentPipe(**args)


@pytest.mark.parametrize("spacing, planes", [((1, 1, 1), [(0, 1), (0, 2), (1, 2)]), ((2, 1, 1), [(1, 2)]),
                                             ((1, 1.5, 2), [])])
def test_rotate90_only_in_isotropic_planes(spacing, planes):
    assert isotropic_planes(spacing) == planes


# ----------------------------------------------------------------------------------------------
# Geometry.


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_resample_matches_scipy_affine_transform(seed):
    rng = np.random.RandomState(seed)
    x = smooth(1, seed=seed)
    M = np.eye(4, dtype=np.float32)
    M[:3, :3] += rng.normal(0, 0.2, (3, 3))
    M[:3, 3] = rng.normal(0, 1.5, 3)
    ours = resample(tf.constant(x), tf.constant(M[None]))[0, ..., 0].numpy()
    # grid-constant: the background is padded around the grid before interpolating, as our padding rule.
    ref = ndimage.affine_transform(x[0, ..., 0], M, order=1, mode="grid-constant", cval=-1.0)
    np.testing.assert_allclose(ours, ref, atol=2e-6)


@pytest.mark.parametrize("name, axes", [("mirror", (1,)), ("flip", (0, 2))])
def test_flips_follow_the_mirror_axis(name, axes):
    x = smooth(8)
    pipe = only(name, mirror_axis=1)
    params = pipe.draw(8)
    y = pipe(tf.constant(x), params).numpy()
    matrix = params["matrix"].numpy()
    for n in range(8):
        flipped = tuple(a for a in range(3) if matrix[n, a, a] < 0)
        assert set(flipped) <= set(axes)
        np.testing.assert_array_equal(y[n], np.flip(x[n], axis=flipped) if flipped else x[n])
    assert any(matrix[:, a, a].min() < 0 for a in axes)  # p = 1: at least one flip happened


def test_rotate90_is_an_exact_grid_rotation():
    shape, spacing = (6, 10, 10), (3.0, 1.0, 1.0)  # only the (1, 2) plane is isotropic (and square)
    x = smooth(8, shape=shape)
    pipe = only("rotate90", shape=shape, spacing=spacing)
    y = pipe(tf.constant(x), pipe.draw(8)).numpy()
    ks = []
    for n in range(8):
        match = [k for k in range(4) if np.array_equal(y[n], np.rot90(x[n], k, axes=(1, 2)))]
        assert len(match) == 1
        ks.append(match[0])
    assert len(set(ks)) > 1


def test_integer_translation_shifts_with_background():
    x = smooth(6)
    pipe = only("xint")
    params = pipe.draw(6)
    y = pipe(tf.constant(x), params).numpy()
    shifts = -params["matrix"].numpy()[:, :3, 3]  # output voxel o reads input o - shift
    assert np.all(shifts == np.round(shifts)) and np.abs(shifts).max() > 0
    assert np.all(np.abs(shifts) <= np.ceil(STRENGTHS["xint_max"] * np.array(SHAPE)))
    for n in range(6):
        ref = ndimage.shift(x[n, ..., 0], shifts[n], order=0, mode="constant", cval=-1.0)
        np.testing.assert_array_equal(y[n, ..., 0], ref)


def _blob(shape, spacing, centre_vox, sigma_mm=2.5):
    grids = np.meshgrid(*[(np.arange(n) - c) * s for n, c, s in zip(shape, centre_vox, spacing, strict=True)],
                        indexing="ij")
    return np.exp(-sum(g**2 for g in grids) / (2 * sigma_mm**2)) * 2 - 1


def _centroid_mm(vol, spacing):
    w = vol + 1  # background -1 -> weight 0
    centre = (np.array(vol.shape) - 1) / 2
    idx = np.stack(np.meshgrid(*[np.arange(n) for n in vol.shape], indexing="ij"), -1)
    c = (w[..., None] * idx).reshape(-1, 3).sum(0) / w.sum()
    return (c - centre) * np.asarray(spacing)


@pytest.mark.parametrize("name, factor", [("rotate", None), ("scale", "scale")])
def test_geometry_is_in_millimetres_on_an_anisotropic_grid(name, factor):
    """A blob off-centre: a rotation keeps its distance from the centre in mm (in voxels it would not), a scaling
    multiplies it by the scale, and the voxel matrix is a rotation / scaling once expressed in mm."""
    shape, spacing = (24, 20, 12), (1.0, 1.5, 3.0)
    centre = (np.array(shape) - 1) / 2
    # 4.7 mm off-centre: inside the field of view (half-extents 12, 15, 18 mm) after any rotation.
    x = _blob(shape, spacing, centre + np.array([2.0, -2.0, 1.0]))[None, ..., None].astype(np.float32)
    x = np.repeat(x, 6, axis=0)
    pipe = only(name, shape=shape, spacing=spacing)
    params = pipe.draw(6)
    y = pipe(tf.constant(x), params).numpy()
    S = np.diag(spacing)
    d_in = np.linalg.norm(_centroid_mm(x[0, ..., 0], spacing))
    for n in range(6):
        lin = params["matrix"].numpy()[n, :3, :3]  # output voxel -> input voxel
        mm = S @ lin @ np.linalg.inv(S)  # output mm -> input mm
        if factor is None:
            np.testing.assert_allclose(mm @ mm.T, np.eye(3), atol=1e-5)
            assert np.linalg.det(mm) == pytest.approx(1.0, abs=1e-5)
            expected = d_in
        else:
            s = 1.0 / mm[0, 0]
            np.testing.assert_allclose(mm, np.eye(3) / s, atol=1e-6)
            expected = d_in * s
        assert np.linalg.norm(_centroid_mm(y[n, ..., 0], spacing)) == pytest.approx(expected, abs=0.35)


def test_minification_is_low_passed_and_only_then():
    x = smooth(16)
    pipe = only("scale", strengths=dict(scale_std=0.6))
    params = pipe.draw(16)
    lin = params["matrix"].numpy()[:, :3, :3]
    m = np.linalg.norm(lin, axis=1).max(axis=1)
    np.testing.assert_allclose(params["lowpass"].numpy(), np.clip(m - 1, 0, 1), atol=1e-6)
    assert (m > 1.05).any() and (m < 0.95).any()
    y = pipe(tf.constant(x), params).numpy()
    plain = resample(tf.constant(x), params["matrix"]).numpy()
    for n in range(16):
        if m[n] <= 1:
            np.testing.assert_array_equal(y[n], plain[n])
        else:
            assert not np.array_equal(y[n], plain[n])


# ----------------------------------------------------------------------------------------------
# Intensity and corruption: each against its NumPy formula with the drawn parameters.


def _bias_field_ref(coeffs, shape, spacing, order=3):
    axes = [(np.arange(n) - (n - 1) / 2) * s for n, s in zip(shape, spacing, strict=True)]
    half = max(np.abs(a).max() for a in axes)
    X, Y, Z = np.meshgrid(*[a / half for a in axes], indexing="ij")
    powers = [(i, j, k) for i in range(order + 1) for j in range(order + 1 - i) for k in range(order + 1 - i - j)
              if i + j + k > 0]
    return np.exp(sum(c * X**i * Y**j * Z**k for c, (i, j, k) in zip(coeffs, powers, strict=True)))


def _cutout_ref(x, centre):
    pos = [(np.arange(n) + 0.5) / n for n in SHAPE]
    inside = np.ones(SHAPE, bool)
    for a in range(3):
        m = np.abs(pos[a] - centre[a]) < STRENGTHS["cutout_size"] / 2
        inside &= m.reshape([-1 if b == a else 1 for b in range(3)])
    return np.where(inside[..., None], -1.0, x)


def _gamma_ref(x, g):
    u = (x + 1) / 2
    uc = np.clip(u, 0.01, 1.0)
    return (uc**g + (u - uc)) * 2 - 1


INTENSITY_REFS = {
    "brightness": lambda x, P, n: x + P["brightness"][n],
    "contrast": lambda x, P, n: x * P["contrast"][n],
    "invert": lambda x, P, n: -x if P["invert_on"][n] else x,
    "gamma": lambda x, P, n: _gamma_ref(x, P["gamma"][n]),
    "biasfield": lambda x, P, n: (x + 1) * _bias_field_ref(P["bias_coeffs"][n], SHAPE, ANISO)[..., None] - 1,
    "noise": lambda x, P, n: x + P["noise_std"][n] * P["noise"][n],
    "cutout": lambda x, P, n: _cutout_ref(x, P["cutout_center"][n]),
}


@pytest.mark.parametrize("name", sorted(INTENSITY_REFS))
def test_intensity_and_corruption_match_their_formulas(name):
    x = np.random.RandomState(3).uniform(-0.95, 0.95, (4, *SHAPE, 1)).astype(np.float32)
    pipe = only(name)
    params = pipe.draw(4)
    y = pipe(tf.constant(x), params).numpy()
    P = {k: v.numpy().astype(np.float64) for k, v in params.items()}
    for n in range(4):
        np.testing.assert_allclose(y[n], INTENSITY_REFS[name](x[n].astype(np.float64), P, n), atol=2e-5, rtol=1e-5)
    assert not np.allclose(y, x)


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_brightness_contrast_inversion_compose_in_order_and_leave_untouched_samples_exact(p):
    """The three share one affine map in the pipeline: brightness, then contrast, then inversion, as three
    separate steps (NumPy), and a sample that lost every coin is returned bit for bit."""
    x = np.random.RandomState(4).uniform(-0.95, 0.95, (16, *SHAPE, 1)).astype(np.float32)
    pipe = AugmentPipe(SHAPE, ANISO, augpipe="c", p=p, multipliers=dict(biasfield=0.0, gamma=0.0), seed=2)
    params = pipe.draw(16)
    y = pipe(tf.constant(x), params).numpy()
    P = {k: v.numpy().astype(np.float64) for k, v in params.items()}
    for n in range(16):
        want = x[n].astype(np.float64)
        want = want + P["brightness"][n] if P["brightness_on"][n] else want
        want = want * P["contrast"][n] if P["contrast_on"][n] else want
        want = -want if P["invert_on"][n] else want
        if not (P["brightness_on"][n] or P["contrast_on"][n] or P["invert_on"][n]):
            np.testing.assert_array_equal(y[n], x[n])
        np.testing.assert_allclose(y[n], want, atol=2e-6, rtol=1e-6)
    if p == 1.0:  # every sample drew brightness and contrast; some inverted, some not
        assert 0 < P["invert_on"].sum() < 16


@pytest.mark.parametrize("p, lo, hi", [(0.0, 0, 0), (0.3, 0.2, 0.4), (1.0, 1, 1)])
def test_each_transform_applies_with_probability_p(p, lo, hi):
    pipe = AugmentPipe(SHAPE, ANISO, augpipe="c", p=p)
    rate = float(tf.reduce_mean(pipe.draw(2000)["brightness_on"]))
    assert lo <= rate <= hi


@pytest.mark.parametrize("p", [0.5, 1.0])
def test_flips_and_inversion_have_probability_half_p(p):
    """ADA's non-leaking form: randomise with probability p, then a fair coin; a deterministic flip at p = 0.5
    would make both orientations equally likely to D, so a G that flips everything would go unpunished."""
    pipe = AugmentPipe(SHAPE, ANISO, augpipe="bc", p=p, multipliers=dict(rotate90=0.0, xint=0.0), seed=7)
    params = pipe.draw(4000)
    flipped = params["matrix"].numpy()[:, :3, :3].diagonal(axis1=1, axis2=2) < 0
    for rate in [*flipped.mean(axis=0), float(tf.reduce_mean(params["invert_on"]))]:
        assert abs(rate - p / 2) < 0.03


# ----------------------------------------------------------------------------------------------
# Gradients.


def _pipe64(augpipe="bgcn", shape=(5, 6, 7)):
    pipe = AugmentPipe(shape, (1.0, 1.5, 2.0), augpipe=augpipe, p=1.0, seed=4,
                       strengths=dict(noise_std=0.05, cutout_size=0.3))
    return pipe, pipe.draw(2)


def test_first_order_gradient_matches_finite_differences():
    """<d<u, aug(x)>/dx, v> against central differences along random directions v (float64)."""
    pipe, params = _pipe64()
    rng = np.random.RandomState(5)
    x = tf.constant(rng.uniform(-0.6, 0.6, (2, 5, 6, 7, 1)))
    u = tf.constant(rng.normal(size=x.shape))
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = tf.reduce_sum(pipe(x, params) * u)
    grad = tape.gradient(y, x).numpy()
    assert np.abs(grad).sum() > 0
    for _ in range(3):
        v = rng.normal(size=x.shape)
        eps = 1e-6
        fd = (float(tf.reduce_sum(pipe(x + eps * v, params) * u)) -
              float(tf.reduce_sum(pipe(x - eps * v, params) * u))) / (2 * eps)
        assert float(np.sum(grad * v)) == pytest.approx(fd, rel=1e-6, abs=1e-8)


class TanhD(tf.Module):
    """A nonlinear stand-in discriminator, D(x) = sum(w * tanh(x)) per sample: R1 depends on w and on x."""

    c_dim = 0

    def __init__(self, shape, dtype=tf.float32, seed=6):
        super().__init__()
        self.w = tf.Variable(tf.cast(tf.random.stateless_normal([*shape, 1], seed=[seed, 1]), dtype))

    def __call__(self, img, c=None):
        return tf.reduce_sum(self.w * tf.tanh(img), axis=[1, 2, 3, 4])[:, None]


def test_second_order_r1_through_the_pipeline_matches_finite_differences():
    """d/dw of R1 = |d D(aug(x)) / dx|^2 (the loss's own grad_penalty), float64, against finite differences."""
    shape = (5, 6, 7)
    pipe, params = _pipe64(shape=shape)
    D = TanhD(shape, tf.float64)
    loss = StyleGAN2Loss(None, D, augment_pipe=pipe)
    x = tf.constant(np.random.RandomState(7).uniform(-0.6, 0.6, (2, *shape, 1)))

    def r1_of(w):
        D.w.assign(w)
        return tf.reduce_sum(loss.grad_penalty(x, None, params)[0])

    w0 = D.w.numpy()
    with tf.GradientTape() as tape:
        r1 = tf.reduce_sum(loss.grad_penalty(x, None, params)[0])
    grad = tape.gradient(r1, D.w).numpy()
    rng = np.random.RandomState(8)
    for _ in range(3):  # directional derivatives along random directions
        v = rng.normal(size=w0.shape)
        eps = 1e-5
        fd = (float(r1_of(w0 + eps * v)) - float(r1_of(w0 - eps * v))) / (2 * eps)
        assert float(np.sum(grad * v)) == pytest.approx(fd, rel=1e-5, abs=1e-9)
    D.w.assign(w0)
    # And the penalty is taken through the pipeline: without it the value differs.
    plain = float(tf.reduce_sum(StyleGAN2Loss(None, D).grad_penalty(x, None)[0]))
    assert abs(plain - float(r1)) > 1e-6


# ----------------------------------------------------------------------------------------------
# Adaptation.


@pytest.mark.parametrize("rt, target, direction", [(0.9, 0.6, 1), (0.3, 0.6, -1), (0.5, 0.5, 0)])
def test_adaptation_moves_p_toward_target_at_ada_speed(rt, target, direction):
    B, interval, ada_kimg = 8, 4, 2.0
    pipe = AugmentPipe(SHAPE, ANISO, p=0.1, target=target, ada_kimg=ada_kimg, ada_interval=interval, adaptive=True)
    for batch_idx in range(1, 4 * interval + 1):
        pipe.record_signs(rt)
        pipe.after_batch(batch_idx, B)
    step = B * interval / (ada_kimg * 1000)
    assert float(pipe.p.numpy()) == pytest.approx(0.1 + direction * 4 * step, abs=1e-7)
    assert float(pipe.rt.numpy()) == pytest.approx(rt)
    assert ada_adjustment(rt, target, B, interval, ada_kimg) == pytest.approx(direction * step)


def test_p_is_clipped_at_zero_and_fixed_mode_does_not_adapt():
    pipe = AugmentPipe(SHAPE, ANISO, p=0.001, ada_kimg=1.0, adaptive=True)
    fixed = AugmentPipe(SHAPE, ANISO, p=0.3, adaptive=False)
    for i in range(1, 9):
        for pp in (pipe, fixed):
            pp.record_signs(-1.0)
            pp.after_batch(i, 4)
    assert float(pipe.p.numpy()) == 0.0 and float(fixed.p.numpy()) == pytest.approx(0.3)


def test_pipe_state_resumes_bit_exactly(tmp_path):
    def fresh():
        pipe = AugmentPipe(SHAPE, ANISO, augpipe="bgcn", p=0.4, seed=3, adaptive=True, ada_kimg=1.0)
        return pipe, TrainState(0, augment=pipe, name="state")

    pipe, state = fresh()
    x = tf.constant(smooth(2))
    for i in range(1, 6):
        pipe(x, pipe.draw(2))
        pipe.record_signs(0.9)
        pipe.after_batch(i, 2)
    prefix = tf.train.Checkpoint(state=state).write(str(tmp_path / "ckpt"))
    after = [pipe(x, pipe.draw(2)).numpy() for _ in range(2)]
    p_after, sums = float(pipe.p.numpy()), float(pipe.signs_sum.numpy())

    pipe2, state2 = fresh()
    tf.train.Checkpoint(state=state2).read(prefix).assert_existing_objects_matched()
    assert float(pipe2.signs_sum.numpy()) == sums and float(pipe2.p.numpy()) == p_after
    for want in after:
        np.testing.assert_array_equal(pipe2(x, pipe2.draw(2)).numpy(), want)


# ----------------------------------------------------------------------------------------------
# Wiring: loss, step, options.


class TinyG(tf.Module):
    """Linear stand-in generator (fast to trace): z -> ws -> volume of shape SMALL."""

    z_dim, c_dim, w_dim, num_ws, img_channels = 4, 0, 3, 2, 1

    def __init__(self, shape):
        super().__init__()
        self.img_shape = shape
        G = self

        class Mapping(tf.Module):
            w_avg_beta = None

            def __init__(self):
                super().__init__()
                self.M = tf.Variable(tf.random.stateless_normal([G.z_dim, G.w_dim], seed=[3, 4]))

            def __call__(self, z, c=None):
                return tf.tile((z @ self.M)[:, None], [1, G.num_ws, 1])

        class Synthesis(tf.Module):
            noise_shapes = []

            def __init__(self):
                super().__init__()
                self.A = tf.Variable(tf.random.stateless_normal([G.num_ws * G.w_dim, int(np.prod(shape))], seed=[5, 6])
                                     * 0.1)

            def __call__(self, ws, noise_mode="random", noise=None):
                return tf.tanh(tf.reshape(tf.reshape(ws, [ws.shape[0], -1]) @ self.A, [-1, *shape, 1]))

        self.mapping, self.synthesis = Mapping(), Synthesis()


def _steps(pipe, shape=(6, 7, 8), B=4):
    tf.random.set_seed(0)
    G, D = TinyG(shape), TanhD(shape)
    loss = StyleGAN2Loss(G, D, r1_gamma=1.0, pl_weight=0.0, style_mixing_prob=0.0, D_reg_interval=2,
                         augment_pipe=pipe)
    state = TrainState(0, augment=pipe)
    steps = TrainSteps(tf.distribute.get_strategy(), G, D, Adam(G.trainable_variables), Adam(D.trainable_variables),
                       loss, state, B)
    reals = tf.constant(np.random.RandomState(9).uniform(-1, 1, (B, *shape, 1)).astype(np.float32))
    return steps, state, reals, tf.zeros([B, 0])


def _run(setup, n=2):
    steps, _, reals, c = setup
    out = {}
    for _ in range(n):
        for phase, _ in steps.phases:
            for k, v in steps(phase, reals, c).items():
                out.setdefault(f"{phase}/{k}", []).append(v)
    return out


def test_noaug_and_p_zero_train_identically():
    """A pipe at p = 0 must not change one bit of training (identity, and its own RNG stream), so the noaug step,
    which has no pipe at all, is the step without augmentation."""
    base = _run(_steps(None), n=1)
    with_pipe = _run(_steps(AugmentPipe((6, 7, 8), ANISO, augpipe="bgcn", p=0.0)), n=1)
    assert set(with_pipe) - set(base) == {"Dmain/Loss/signs/real"}
    for k, v in base.items():
        assert with_pipe[k] == v, k
    assert augment_inputs(None, "Dmain", 4) == {}


def test_training_through_the_pipeline_resumes_exactly(tmp_path):
    def make():
        return _steps(AugmentPipe((6, 7, 8), ANISO, augpipe="bgcn", p=0.7, seed=1))

    setup = make()
    steps, state = setup[:2]
    rng_before = state.augment.rng.state.numpy().copy()
    first = _run(setup, n=1)
    assert all(abs(s) <= 1 for s in first["Dmain/Loss/signs/real"])
    assert not np.array_equal(state.augment.rng.state.numpy(), rng_before)  # parameters were drawn
    ckpt = tf.train.Checkpoint(G=steps.G, D=steps.D, G_opt=steps.G_opt, D_opt=steps.D_opt, state=state)
    prefix = ckpt.write(str(tmp_path / "ckpt"))
    cont = _run(setup, n=1)

    setup2 = make()
    steps2, state2 = setup2[:2]
    ckpt2 = tf.train.Checkpoint(G=steps2.G, D=steps2.D, G_opt=steps2.G_opt, D_opt=steps2.D_opt, state=state2)
    ckpt2.read(prefix).assert_existing_objects_matched()
    assert _run(setup2, n=1) == cont


TWO_REPLICAS = r"""
import json
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from training.augment import AugmentPipe, augment_inputs
from training.loss import slice_replica

B, shape = 4, (6, 7, 8)
x = tf.constant(np.random.RandomState(0).uniform(-1, 1, (B, *shape, 1)).astype(np.float32))

def run(strategy):
    pipe = AugmentPipe(shape, (1.0, 1.5, 2.0), augpipe="bgcn", p=0.5, seed=2)
    n = strategy.num_replicas_in_sync

    @tf.function
    def step(xs):
        inp = augment_inputs(pipe, "Dmain", B)
        def replica(xs, inp):
            ctx = tf.distribute.get_replica_context()
            part = slice_replica(inp, ctx.replica_id_in_sync_group, n)
            y = pipe(xs, part["aug_real"])
            signs = tf.reduce_sum(tf.sign(tf.reduce_mean(y, axis=[1, 2, 3, 4])))
            return y, ctx.all_reduce(tf.distribute.ReduceOp.SUM, signs), pipe.p.read_value()
        return strategy.run(replica, args=(xs, inp))

    if n > 1:
        xs = strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.gather(x, list(range(ctx.replica_id_in_sync_group, B, n))))
    else:
        xs = x
    y, signs, p = step(xs)
    ys = strategy.experimental_local_results(y)
    full = np.zeros((B, *shape, 1), np.float32)
    for r, part in enumerate(ys):
        full[r::n] = part.numpy()
    return dict(y=full.tolist(), signs=[float(s) for s in strategy.experimental_local_results(signs)],
                p=[float(v) for v in strategy.experimental_local_results(p)])

one = run(tf.distribute.get_strategy())
two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print("RESULT " + json.dumps({"one": one, "two": two}))
"""


def test_two_replicas_use_the_same_p_draws_and_statistic():
    # A subprocess: logical devices must be configured before TensorFlow starts.
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", TWO_REPLICAS], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads([s for s in proc.stdout.splitlines() if s.startswith("RESULT ")][-1][len("RESULT "):])
    one, two = res["one"], res["two"]
    np.testing.assert_array_equal(np.array(two["y"]), np.array(one["y"]))
    assert two["p"] == [0.5, 0.5] and len(set(two["signs"])) == 1 and two["signs"][0] == one["signs"][0]


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(tmp_path_factory.mktemp("aug") / "data", num=2)


@pytest.mark.parametrize("kwargs, aug, p, ada_kimg", [
    (dict(), "noaug", 0.0, 500.0),                                   # demo-tiny keeps noaug
    (dict(aug="ada"), "ada", 0.0, 500.0),
    (dict(aug="fixed", p=0.25, augpipe="bgcn"), "fixed", 0.25, 500.0),
    (dict(aug="ada", p=0.1, ada_kimg=50), "ada", 0.1, 50.0),
])
def test_options_resolve_augmentation(tmp_path, tiny_data, kwargs, aug, p, ada_kimg):
    from tests.utils import tiny_options

    opts = tiny_options(tmp_path, tiny_data, **kwargs)
    assert opts.aug == aug and opts.augment_kwargs.p == p and opts.augment_kwargs.ada_kimg == ada_kimg
    assert opts.augment_kwargs.mirror_axis == 0 and opts.augment_kwargs.target == 0.6


@pytest.mark.parametrize("kwargs, match", [(dict(aug="fixed"), "needs its probability"),
                                           (dict(aug="ada", p=1.5), "outside"),
                                           (dict(aug="ada", target=1.0), "target"),
                                           (dict(aug="ada", augpipe="bq"), "augmentation pipeline"),
                                           (dict(aug="sometimes"), "unknown augmentation mode")])
def test_bad_augmentation_options_are_refused(tmp_path, tiny_data, kwargs, match):
    from tests.utils import tiny_options

    with pytest.raises(ValueError, match=match):
        tiny_options(tmp_path, tiny_data, **kwargs)


def test_configs_default_demo_to_ada_and_paper_to_noaug():
    from training.configs import CONFIGS, PAPER_CONFIGS

    assert CONFIGS["demo"].aug == "ada"
    assert all(CONFIGS[name].aug == "noaug" for name in PAPER_CONFIGS)
    assert math.isclose(CONFIGS["demo"].ada_kimg, CONFIGS["demo"].total_kimg)


def test_training_loop_adapts_p_and_logs_it_every_tick(tmp_path, tiny_data):
    """End to end on demo-tiny (~1 min: the real networks are traced through the pipeline): p moves by exactly one
    ADA step after 4 batches, the tick lines and TensorBoard carry p and r_t, the checkpoint holds the pipe."""
    from tests.utils import tiny_options
    from training.training_loop import training_loop

    opts = tiny_options(tmp_path, tiny_data, aug="ada", p=0.2, ada_kimg=0.1, augpipe="bgc", snap=10)  # 1 snapshot
    result = training_loop(opts)  # log lines go to log.txt through print
    with open(os.path.join(result.run_dir, "log.txt")) as f:
        ticks = [line for line in f if line.startswith("tick ")]
    assert len(ticks) == 2 and all(" augment " in t and " rt " in t for t in ticks)
    p = float(ticks[-1].split(" augment ")[1].split()[0])
    rt = float(ticks[-1].split(" rt ")[1].split()[0])
    step = 2 * 4 / (0.1 * 1000)  # batch 2, every 4 batches, 0.1 kimg from 0 to 1
    assert p == pytest.approx(0.2 + np.sign(rt - 0.6) * step, abs=1e-3)
    tags = set()
    for name in os.listdir(result.run_dir):
        if name.startswith("events.out.tfevents"):
            for e in tf.compat.v1.train.summary_iterator(os.path.join(result.run_dir, name)):
                tags |= {v.tag for v in e.summary.value}
    assert {"Progress/augment", "Progress/rt", "Loss/signs/real"} <= tags
    prefix = tf.train.latest_checkpoint(os.path.join(result.run_dir, "checkpoints"))
    names = [n for n, _ in tf.train.list_variables(prefix)]
    assert any(n.startswith("state/augment/p/") for n in names) and any("state/augment/rng" in n for n in names)
