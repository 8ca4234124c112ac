"""generation/restoration/grid_matching.py: the thickenings and crops a target's grid implies, the grid a raw scan
is resampled onto."""

import math

import numpy as np
import pytest

from generation.restoration.forward_models import Thicken
from generation.restoration.grid_matching import match_target_grid, target_sampling_grid
from tests.utils import random_affine

NET_SHAPE = (20, 24, 16)


def _target_case(name):
    """(target affine, target shape, expected ops as describe() dicts, expected target index ranges)."""
    a = random_affine(1)
    if name == "thick_k":  # exactly the thickening's own grid
        op = Thicken(2, 4)
        return op.affine(a), (20, 24, 4), [op.describe() | {"count": 4}], [(0, 20), (0, 24), (0, 4)]
    if name == "fractional_with_overhang":  # 6.5 mm slices over 2 mm voxels, slices sticking out at both ends
        t = a.copy()
        t[:3, 0] = a[:3, 0] * 3.25
        t[:3, 3] = a[:3, 3] + a[:3, 0] * -2.0  # target slice 0 centred at network voxel -2.0 (box [-3.6, -0.4])
        ops = [{"op": "thicken", "axis": 0, "factor": 3.25, "profile": "box", "start": 1.25, "count": 6}]
        return t, (8, 24, 16), ops, [(1, 7), (0, 24), (0, 16)]
    if name == "inplane_crop":  # same spacing shifted by whole voxels: larger along i, partly outside along j
        t = a.copy()
        t[:3, 3] = a[:3, 3] + a[:3, :3] @ [-2, 3, 0.5]
        t[:3, 2] = a[:3, 2] * 2
        ops = [{"op": "thicken", "axis": 1, "factor": 1, "profile": "box", "start": 3, "count": 21},
               {"op": "thicken", "axis": 2, "factor": 2, "profile": "box", "start": 0.5, "count": 8}]
        return t, (30, 30, 9), ops, [(2, 22), (0, 21), (0, 8)]
    raise KeyError(name)


@pytest.mark.parametrize("name", ["thick_k", "fractional_with_overhang", "inplane_crop"])
def test_match_target_grid(name):
    a = random_affine(1)
    t_aff, t_shape, ops, ranges = _target_case(name)
    m = match_target_grid(a, NET_SHAPE, t_aff, t_shape)
    assert [op.describe() for op in m.ops] == ops
    assert [(s.start, s.stop) for s in m.target_slices] == ranges
    assert m.shape == tuple(hi - lo for lo, hi in ranges)
    # the degraded grid is the cropped target's grid
    cropped = t_aff.copy()
    cropped[:3, 3] = t_aff[:3, :3] @ [lo for lo, _ in ranges] + t_aff[:3, 3]
    np.testing.assert_allclose(m.affine, cropped, atol=1e-6)
    assert m.degradation(sigma=0.1).output_shape(NET_SHAPE) == m.shape


GEOMETRY_ERRORS = [
    ("rotated", "voxel axis 0 points differently"),
    ("finer", "voxel axis 1: target spacing 0.4 mm is finer"),
    ("off_lattice", "voxel axis 2: target voxels are 0.3000 voxel off the network lattice"),
    ("outside", "voxel axis 0: no target slice lies inside"),
]


@pytest.mark.parametrize("case,message", GEOMETRY_ERRORS)
def test_match_target_grid_errors_say_what_differs(case, message):
    a = np.diag([2.0, 0.8, 1.0, 1.0])
    t = a.copy()
    if case == "rotated":
        c, s = math.cos(0.1), math.sin(0.1)
        t[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ a[:3, :3]
    elif case == "finer":
        t[1, 1] = 0.4
    elif case == "off_lattice":
        t[2, 3] = 0.3
    elif case == "outside":
        t[0, 0], t[0, 3] = 6.0, 100.0
    with pytest.raises(ValueError, match=message):
        match_target_grid(a, NET_SHAPE, t, NET_SHAPE)


def test_target_sampling_grid_keeps_thick_slices_and_takes_the_network_lattice_in_plane():
    # a 0.78 mm in-plane, 6.5 mm slice scan over a 2 mm network grid
    net = np.diag([2.0, 2.0, 2.0, 1.0])
    net[:3, 3] = [-20, -24, -16]
    scan = np.diag([0.78, 0.78, 6.5, 1.0])
    scan[:3, 3] = [-25.3, -30.1, -21.0]  # slice s centred at network voxel k = -2.5 + 3.25 s, box +-1.625
    grid, shape = target_sampling_grid(net, NET_SHAPE, scan, (80, 90, 7))
    assert shape == (20, 24, 7)
    want = net.copy()
    want[2, 2], want[2, 3] = 6.5, -21.0
    np.testing.assert_allclose(grid, want, atol=1e-9)
    m = match_target_grid(net, NET_SHAPE, grid, shape)
    assert [op.describe() for op in m.ops] == [{"op": "thicken", "axis": 2, "factor": 3.25, "profile": "box",
                                                "start": 4, "count": 4}]
    assert m.target_slices[2] == slice(2, 6)  # slices 0, 1 stick out below -0.5, slice 6 above 15.5
    with pytest.raises(ValueError, match="voxel axis 2 points differently"):
        scan_oblique = scan.copy()
        scan_oblique[1, 2] = 1.0
        target_sampling_grid(net, NET_SHAPE, scan_oblique, (80, 90, 7))
