"""generation/restoration/restored.py: where information is missing, the field-of-view grid of restored volumes,
restored volumes on a grid and the missing-information metrics."""

import numpy as np
import pytest

from generation.restoration import restored
from generation.restoration.masks import Mask
from generation.restoration.spec import parse_spec


# (spec, mask on the degraded grid or None, network shape, the missing voxels written out)
def _missing_cases():
    cases = []
    want = np.ones((6, 4, 7), bool)
    want[:, :, [1, 4]] = False  # factor 3, default start 1: centres 1 and 4 (slice 6 is not covered)
    cases.append(("thicken:axis=2,factor=3", None, (6, 4, 7), want))
    want = np.ones((6, 4, 5), bool)
    want[1:4] = False  # a crop keeps network slices 1..3 along axis 0
    cases.append(("thicken:axis=0,factor=1,start=1,count=3", None, (6, 4, 5), want))
    mask = np.ones((2, 4, 5), np.float32)
    mask[1, 2, 3] = 0  # thick slice 1 (network slices 3, 4, 5 along axis 0) excluded at (2, 3)
    want = np.ones((6, 4, 5), bool)
    want[[1, 4]] = False
    want[3:6, 2, 3] = True
    cases.append(("thicken:axis=0,factor=3", mask, (6, 4, 5), want))
    mask = np.ones((6, 4, 5), np.float32)
    mask[2:4, 1, 1:3] = 0
    cases.append(("none", mask, (6, 4, 5), mask == 0))
    return cases


@pytest.mark.parametrize("spec, mask, shape, want", _missing_cases(), ids=["thick", "crop", "thick+mask", "mask"])
def test_missing_information(spec, mask, shape, want):
    deg = parse_spec(spec)
    if mask is not None:
        deg = deg.with_mask(Mask(weights=mask))
    np.testing.assert_array_equal(restored.missing_information(deg, shape), want)


def test_fov_grid_covers_the_box_along_the_network_axes():
    net = np.array([[2.0, 0, 0, -10], [0, 2, 0, -12], [0, 0, 2, -14], [0, 0, 0, 1]])
    # A scan in LPS at 1 x 1 x 5 mm: its box is x in [-20.5, 9.5] (30 voxels from 9 down), y [-40.5, -0.5],
    # z [-2.5, 47.5].
    scan = np.array([[-1.0, 0, 0, 9], [0, -1, 0, -1], [0, 0, 5, 0], [0, 0, 0, 1]])
    aff, shape = restored.fov_grid(net, scan, (30, 40, 10), 1.0)
    assert shape == (30, 40, 50)
    np.testing.assert_allclose(aff, [[1, 0, 0, -20], [0, 1, 0, -40], [0, 0, 1, -2], [0, 0, 0, 1]], atol=1e-9)


def test_on_grid_and_missing_metrics():
    net = np.diag([2.0, 2.0, 2.0, 1.0])
    vol = np.random.RandomState(1).rand(4, 5, 6).astype(np.float32)
    # The network grid itself: values unchanged; a 1 mm grid's every other voxel is a network voxel.
    np.testing.assert_allclose(restored.on_grid(vol, net, net, vol.shape), vol, atol=1e-6)
    fine = restored.on_grid(vol, net, np.eye(4), (7, 9, 11))
    np.testing.assert_allclose(fine[::2, ::2, ::2], vol, atol=1e-6)
    np.testing.assert_allclose(fine[1, 0, 0], vol[:2, 0, 0].mean(), atol=1e-6)
    truth, rest = np.zeros((2, 2, 2)), np.zeros((2, 2, 2))
    rest[0, 0, 0] = 1.0  # [-1, 1] units: an error of 0.5 in [0, 1]
    missing = np.zeros((2, 2, 2), bool)
    missing[0, 0] = True
    got = restored.missing_metrics(truth, rest, missing)
    assert got["mse"] == pytest.approx(0.125) and got["psnr"] == pytest.approx(10 * np.log10(8))
