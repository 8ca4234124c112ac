"""Slices for the 2D FID: which slices, orientation, grey to RGB, resizing."""

import numpy as np
import pytest

from metrics import fid_slices

# (axis length, step, slice indices): the middle one, or every step-th centred on it.
SLICE_INDEX_CASES = [(80, None, [40]), (10, 3, [2, 5, 8]), (80, 7, list(range(5, 80, 7)))]


@pytest.mark.parametrize("n, step, expected", SLICE_INDEX_CASES)
def test_slice_indices(n, step, expected):
    assert fid_slices.slice_indices(n, step) == expected
    assert n // 2 in expected


def test_slice_images_orientation_and_rgb():
    rng = np.random.default_rng(0)
    v = rng.uniform(-1, 1, size=(2, 8, 8, 8, 1)).astype(np.float32)
    for axis, expected in ((0, v[:, 4, :, :, 0]), (1, v[:, :, 4, :, 0]), (2, v[:, :, :, 4, 0])):
        img = fid_slices.slice_images(v, axis, size=8).numpy()  # same size: bilinear resize is the identity
        assert img.shape == (2, 8, 8, 3)
        for c in range(3):
            np.testing.assert_allclose(img[..., c], expected, atol=1e-6)


def test_every_kth_slice_volume_major_order():
    v = np.zeros((2, 6, 4, 4, 1), np.float32)
    for b in range(2):
        for d in range(6):
            v[b, d] = b * 10 + d
    img = fid_slices.slice_images(v, 0, step=2, size=4).numpy()
    # indices [1, 3, 5] for each of the two volumes, volume-major.
    assert img[:, 0, 0, 0].tolist() == [1, 3, 5, 11, 13, 15]


def test_resize_keeps_range():
    v = np.random.default_rng(1).uniform(-1, 1, size=(1, 10, 12, 14, 1)).astype(np.float32)
    img = fid_slices.slice_images(v, 2, size=75).numpy()
    assert img.shape == (1, 75, 75, 3)
    assert img.min() >= -1 - 1e-6 and img.max() <= 1 + 1e-6
    assert img.mean() == pytest.approx(v[0, :, :, 7, 0].mean(), abs=0.05)
