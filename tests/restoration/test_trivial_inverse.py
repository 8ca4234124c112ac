"""generation/restoration/trivial_inverse.py: the trivial inverse against the NumPy reference
(trivial_inverse_ref.py), exact for volumes linear along the axis, and across a degradation's axes."""

import numpy as np
import pytest
import tensorflow as tf

from generation.restoration.forward_models import Thicken
from generation.restoration.spec import parse_spec
from generation.restoration.trivial_inverse import trivial_inverse, trivial_inverse_volume
from generation.restoration.trivial_inverse_ref import linear_inverse_ref


def _linear_along(axis, shape, seed=12):
    pos = np.arange(shape[axis + 1], dtype=np.float64).reshape([-1 if k == axis + 1 else 1 for k in range(5)])
    rng = np.random.RandomState(seed)
    x = rng.randn(2, 1, 1, 1, 1) + rng.randn(*[1 if k == axis + 1 else s for k, s in enumerate(shape)]) * pos
    return np.broadcast_to(x, shape).astype(np.float64)


@pytest.mark.parametrize("axis,factor,start", [(0, 3, None), (1, 2, None), (2, 4, None), (2, 3, 2.0), (0, 1, 0.5)])
def test_trivial_inverse_of_box_thickening_is_exact_for_a_volume_linear_along_the_axis(axis, factor, start):
    # integer factor: a box slice of a linear profile equals the profile at the slice centre
    shape = [2, 13, 11, 17, 1]
    x = _linear_along(axis, shape)
    op = Thicken(axis, factor, start=start)
    y = op(tf.constant(x, tf.float32)).numpy()
    back = trivial_inverse(y, axis, factor, start=start, length=shape[axis + 1])
    assert back.shape == x.shape
    c = op.centres(shape[axis + 1])
    inside = np.flatnonzero((np.arange(shape[axis + 1]) >= c[0]) & (np.arange(shape[axis + 1]) <= c[-1]))
    np.testing.assert_allclose(np.take(back, inside, axis + 1), np.take(x, inside, axis + 1), atol=1e-4)
    np.testing.assert_allclose(back, linear_inverse_ref(y, axis, factor, shape[axis + 1], start), atol=1e-5)


@pytest.mark.parametrize("axis,factor,start", [(0, 2.5, None), (1, 3.25, 1.6), (2, 1.7, 0.5)])
def test_trivial_inverse_fractional_factor_interpolates_samples_at_the_slice_centres(axis, factor, start):
    shape = [2, 13, 11, 17, 1]
    x = _linear_along(axis, shape, seed=13)
    op = Thicken(axis, factor, start=start)
    c = op.centres(shape[axis + 1])
    slope = np.take(x, [1], axis + 1) - np.take(x, [0], axis + 1)
    cshape = [-1 if k == axis + 1 else 1 for k in range(5)]
    samples = np.take(x, [0], axis + 1) + slope * c.reshape(cshape)  # the linear profile at the centres
    back = trivial_inverse(samples, axis, factor, start=start, length=shape[axis + 1])
    inside = np.flatnonzero((np.arange(shape[axis + 1]) >= c[0]) & (np.arange(shape[axis + 1]) <= c[-1]))
    np.testing.assert_allclose(np.take(back, inside, axis + 1), np.take(x, inside, axis + 1), atol=1e-9)
    y = op(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(trivial_inverse(y, axis, factor, start=start, length=shape[axis + 1]),
                               linear_inverse_ref(y, axis, factor, shape[axis + 1], start), atol=1e-5)


def test_trivial_inverse_nearest_and_bad_kind():
    y = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1, 1)
    got = trivial_inverse(y, 0, 3, kind="nearest")[0, :, 0, 0, 0]
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    with pytest.raises(ValueError, match="'linear' or 'nearest'"):
        trivial_inverse(y, 0, 3, kind="sinc")


def test_trivial_inverse_volume_undoes_each_axis_like_the_reference():
    rng = np.random.RandomState(0)
    deg = parse_spec("thicken:axis=0,factor=2;thicken:axis=2,factor=3")
    y = rng.randn(5, 6, 4, 1).astype(np.float32)  # network grid (10, 6, 12)
    got = trivial_inverse_volume(deg, y, (10, 6, 12))
    want = linear_inverse_ref(linear_inverse_ref(y[..., 0], axis=2, factor=3, length=12), axis=0, factor=2, length=10)
    assert got.shape == (10, 6, 12, 1)
    np.testing.assert_allclose(got[..., 0], want, atol=1e-5)
