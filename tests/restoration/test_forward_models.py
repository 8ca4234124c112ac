"""generation/restoration/forward_models.py: slice thickening against the NumPy reference (forward_models_ref.py),
the thick-slice grid's affine, the composed degradation and its loss, gradients."""

import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from generation.restoration.data_term_ref import gaussian_nll_ref
from generation.restoration.forward_models import Degradation, SliceProfile, Thicken, thicken
from generation.restoration.forward_models_ref import block_mean_ref, default_count, thick_affine_ref, thicken_ref
from generation.restoration.masks import Mask
from generation.restoration.spec import parse_spec
from tests.utils import random_affine

SHAPE = (2, 13, 11, 9, 2)  # odd lengths everywhere, two channels


def _volume(seed=0, shape=SHAPE):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# Thickening against the reference.

THICKEN_CASES = [
    # axis, factor, profile, extra kwargs
    (0, 2, "box", {}),
    (0, 3, "box", {}),
    (0, 4, "box", {}),
    (1, 2, "box", {}),
    (1, 5, "box", {}),
    (2, 3, "box", {}),
    (2, 4, "box", {}),
    (0, 2, "gaussian", {}),
    (0, 3, "gaussian", {}),
    (1, 4, "gaussian", {}),
    (2, 3, "gaussian", {}),
    (2, 2, "gaussian", {"fwhm_vox": 1.5}),
    (0, 3, "gaussian", {"fwhm_vox": 2.0, "truncate": 2.0}),
    (0, 2.5, "box", {}),
    (1, 3.25, "box", {}),
    (2, 1.7, "gaussian", {}),
    (0, 3, "box", {"start": 2.0, "count": 3}),
    (1, 2.5, "gaussian", {"start": 1.3, "count": 3}),
    (2, 1, "box", {"start": 2, "count": 5}),  # a crop
    (0, 1, "box", {"start": 0.5, "count": 4}),  # half-voxel shift: mean of neighbours
]


@pytest.mark.parametrize("axis,factor,profile,kw", THICKEN_CASES)
def test_thicken_matches_reference(axis, factor, profile, kw):
    x = _volume(axis)
    got = thicken(tf.constant(x), axis, factor, profile, **kw).numpy()
    want = thicken_ref(x, axis, factor, profile, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis,factor", [(0, 2), (0, 3), (1, 4), (2, 2), (2, 3), (0, 6)])
def test_integer_box_is_the_block_mean_with_floor_length(axis, factor):
    x = _volume(10 + axis)
    got = thicken(tf.constant(x), axis, factor).numpy()
    assert got.shape[axis + 1] == SHAPE[axis + 1] // factor
    np.testing.assert_allclose(got, block_mean_ref(x, axis, factor), rtol=1e-5, atol=1e-6)


def test_gaussian_odd_factor_equals_scipy_filter_then_subsampling_away_from_the_ends():
    # sigma = 1 voxel, truncate 3: scipy's taps are exactly ours; centres 1, 4, 7, ... are integers for factor 3
    x = np.random.RandomState(3).randn(1, 25, 4, 3, 1)
    fwhm = 2 * math.sqrt(2 * math.log(2))
    got = thicken(tf.constant(x, tf.float32), 0, 3, "gaussian", fwhm_vox=fwhm).numpy()
    filt = ndimage.gaussian_filter1d(x, 1.0, axis=1, truncate=3.0, mode="constant")
    centres = 1 + 3 * np.arange(got.shape[1])
    interior = [j for j, c in enumerate(centres) if 3 <= c <= 21]
    np.testing.assert_allclose(got[:, interior], filt[:, centres[interior]], rtol=1e-5, atol=1e-6)


def test_weights_rows_sum_to_one_and_fractional_edges_are_partial():
    m = Thicken(0, 2.5).matrix(13)
    assert m.shape == (5, 13)  # floor(13 / 2.5)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[0, :3], [0.4, 0.4, 0.2])  # box [-0.5, 2.0]
    np.testing.assert_allclose(m[1, 2:5], [0.2, 0.4, 0.4])  # box [2.0, 4.5]


@pytest.mark.parametrize("length,factor,start,count", [(13, 2, None, 6), (13, 3, None, 4), (9, 4, None, 2),
                                                       (13, 2.5, None, 5), (12, 3.25, None, 3), (8, 1, None, 8),
                                                       (13, 3, 2.0, 4), (10, 3, 2.5, 2)])
def test_output_length(length, factor, start, count):
    op = Thicken(0, factor, start=start)
    assert op.output_length(length) == count == default_count(length, factor, op.first_centre)


@pytest.mark.parametrize("kw,message", [
    ({"start": -0.2}, "starts before the grid"),
    ({"count": 5}, "need"),
    ({"start": 11.5}, "no thick slice"),
])
def test_slices_outside_the_grid_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        Thicken(1, 3, **kw).output_length(13)


# ---------------------------------------------------------------------------------------------------------------
# The thick-slice grid's affine.


@pytest.mark.parametrize("axis,factor", [(0, 2), (1, 3), (2, 4), (2, 5)])
def test_box_slice_centre_is_the_mean_world_position_of_its_block(axis, factor):
    a = random_affine(axis)
    op = Thicken(axis, factor)
    ta = op.affine(a)
    np.testing.assert_allclose(ta, thick_affine_ref(a, axis, factor), atol=1e-9)
    for j in range(op.output_length(13)):
        block = np.zeros((factor, 4))
        block[:, axis] = j * factor + np.arange(factor)
        block[:, 3] = 1
        for other in (0, 1, 2):
            if other != axis:
                block[:, other] = 3 + other  # any in-plane voxel
        mean_world = (a @ block.T).mean(axis=1)
        vox = np.array([3.0, 4.0, 5.0, 1.0])
        vox[axis] = j
        np.testing.assert_allclose(ta @ vox, mean_world, atol=1e-9)


@pytest.mark.parametrize("factor,start", [(2.5, None), (3.25, 1.6), (1.5, 0.25), (3, None)])
def test_box_slice_centre_is_the_centroid_of_the_covered_interval(factor, start):
    # the network volume is piecewise constant per voxel, so a partly covered voxel contributes the midpoint of
    # its covered part (for a fractional factor, the centroid of voxel centres alone is off by a fraction)
    a = random_affine(7)
    op = Thicken(1, factor, start=start)
    m, ta = op.matrix(13), op.affine(a)
    i = np.arange(13.0)
    for j, c in enumerate(op.centres(13)):
        lo, hi = np.maximum(c - factor / 2, i - 0.5), np.minimum(c + factor / 2, i + 0.5)
        centroid = float(np.sum(m[j] * (lo + hi) / 2))
        np.testing.assert_allclose(centroid, c, atol=1e-9)
        world = a[:3, 1] * centroid + a[:3, 3]
        np.testing.assert_allclose(world, ta[:3, 1] * j + ta[:3, 3], atol=1e-9)


def test_composed_affine_and_shape():
    a = random_affine(2)
    deg = Degradation((Thicken(2, 3), Thicken(0, 2, start=1.5)))
    assert deg.output_shape(SHAPE[1:4]) == (6, 11, 3)
    want = thick_affine_ref(thick_affine_ref(a, 2, 3), 0, 2, start=1.5)
    np.testing.assert_allclose(deg.affine(a), want, atol=1e-9)
    np.testing.assert_allclose(deg(tf.constant(_volume())).numpy(),
                               thicken_ref(thicken_ref(_volume(), 2, 3), 0, 2, start=1.5), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# The composed degradation: its loss (mask, noise level).


def test_degradation_loss_is_reference_thicken_then_masked_weighted_mse():
    x, rng = _volume(5), np.random.RandomState(6)
    deg = Degradation((Thicken(2, 3, SliceProfile("gaussian")),), sigma=0.2)
    out_shape = deg.output_shape(SHAPE[1:4])
    w = (rng.rand(*out_shape) > 0.4).astype(np.float32)
    deg = deg.with_mask(Mask(weights=w))
    target = rng.randn(SHAPE[0], *out_shape, SHAPE[4])
    got = deg.loss(tf.constant(x), tf.constant(target, tf.float32)).numpy()
    want = gaussian_nll_ref(thicken_ref(x, 2, 3, "gaussian"), target, 0.2, w)
    assert got.shape == (SHAPE[0],)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_identity_degradation_loss_is_plain_mse():
    x, y = _volume(1), _volume(2)
    deg = parse_spec("none")
    assert deg.is_identity
    np.testing.assert_allclose(deg.loss(tf.constant(x), tf.constant(y)).numpy(),
                               np.mean((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3, 4)), rtol=1e-5)


def test_loss_refuses_mismatched_target_mask_and_unread_mask():
    x = tf.constant(_volume())
    deg = Degradation((Thicken(0, 3),))
    with pytest.raises(ValueError, match="target"):
        deg.loss(x, x)
    y = deg(x)
    with pytest.raises(ValueError, match="mask"):
        deg.with_mask(Mask(weights=np.ones((4, 11, 8)))).loss(x, y)
    with pytest.raises(ValueError, match="has not been read"):
        deg.with_mask(Mask(path="m.nii.gz")).loss(x, y)
    with pytest.raises(ValueError, match="excludes every voxel"):
        Mask(weights=np.zeros((4, 11, 9)))


# ---------------------------------------------------------------------------------------------------------------
# Gradients.


@pytest.mark.parametrize("profile", ["box", "gaussian"])
def test_gradient_reaches_exactly_the_voxels_the_masked_degradation_looks_at(profile):
    rng = np.random.RandomState(8)
    x = tf.Variable(_volume(9))
    deg = Degradation((Thicken(2, 4, SliceProfile(profile)), Thicken(0, 1, start=1, count=10)))
    out_shape = deg.output_shape(SHAPE[1:4])  # (10, 11, 2): network slices 8 along W and 0, 11, 12 along D unseen
    w = np.ones(out_shape, np.float32)
    w[2:5, 3:7, :] = 0  # a "lesion" that is not compared
    deg = deg.with_mask(Mask(weights=w))
    target = tf.constant(rng.randn(SHAPE[0], *out_shape, SHAPE[4]), tf.float32)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(deg.loss(x, target))
    g = tape.gradient(loss, x).numpy()
    # which network voxels feed a compared degraded voxel: the transposed operators applied to the mask
    a_w = deg.ops[0].matrix(SHAPE[3])
    seen = np.zeros(SHAPE[1:4])
    seen[1:11] = np.einsum("dhm,mw->dhw", w, a_w)
    support = seen > 0
    assert np.all(np.abs(g[:, support]) > 0)
    assert np.all(g[:, ~support] == 0)
    assert (~support).sum() > 0 and support.sum() > 0
    assert np.all(g[:, 3:6, 3:7] == 0)  # the excluded region (all degraded W slices) in network voxels


def test_gradient_flows_through_a_fractional_gaussian_to_every_covered_slice():
    x = tf.Variable(_volume(11))
    deg = parse_spec("thicken:axis=1,mm=5,profile=gaussian;noise=0.1", network_spacing=(1, 2, 1))
    y = tf.zeros((SHAPE[0], *deg.output_shape(SHAPE[1:4]), SHAPE[4]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(deg.loss(x, y))
    g = tape.gradient(loss, x).numpy()
    covered = deg.ops[0].matrix(SHAPE[2]).sum(axis=0) > 0
    assert np.all(np.abs(g).sum(axis=(0, 1, 3, 4))[covered] > 0)
