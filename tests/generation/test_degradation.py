"""generation/degradation.py: each forward model against the NumPy reference (generation/degradation_ref.py), the
thick-slice grid's affine, gradients, the spec parser, the target-grid helper, mask files and the trivial inverse."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from scipy import ndimage

from generation import degradation as dg
from generation import degradation_ref as ref

SHAPE = (2, 13, 11, 9, 2)  # odd lengths everywhere, two channels


def _volume(seed=0, shape=SHAPE):
    return np.random.RandomState(seed).randn(*shape).astype(np.float32)


def _affine(seed=0):
    """A random rotation with anisotropic spacing and an offset origin."""
    rng = np.random.RandomState(seed)
    q, _ = np.linalg.qr(rng.randn(3, 3))
    a = np.eye(4)
    a[:3, :3] = q @ np.diag([1.2, 0.8, 2.0])
    a[:3, 3] = rng.uniform(-50, 50, 3)
    return a


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
    got = dg.thicken(tf.constant(x), axis, factor, profile, **kw).numpy()
    want = ref.thicken_ref(x, axis, factor, profile, **kw)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("axis,factor", [(0, 2), (0, 3), (1, 4), (2, 2), (2, 3), (0, 6)])
def test_integer_box_is_the_block_mean_with_floor_length(axis, factor):
    x = _volume(10 + axis)
    got = dg.thicken(tf.constant(x), axis, factor).numpy()
    assert got.shape[axis + 1] == SHAPE[axis + 1] // factor
    np.testing.assert_allclose(got, ref.block_mean_ref(x, axis, factor), rtol=1e-5, atol=1e-6)


def test_gaussian_odd_factor_equals_scipy_filter_then_subsampling_away_from_the_ends():
    # sigma = 1 voxel, truncate 3: scipy's taps are exactly ours; centres 1, 4, 7, ... are integers for factor 3
    x = np.random.RandomState(3).randn(1, 25, 4, 3, 1)
    fwhm = 2 * math.sqrt(2 * math.log(2))
    got = dg.thicken(tf.constant(x, tf.float32), 0, 3, "gaussian", fwhm_vox=fwhm).numpy()
    filt = ndimage.gaussian_filter1d(x, 1.0, axis=1, truncate=3.0, mode="constant")
    centres = 1 + 3 * np.arange(got.shape[1])
    interior = [j for j, c in enumerate(centres) if 3 <= c <= 21]
    np.testing.assert_allclose(got[:, interior], filt[:, centres[interior]], rtol=1e-5, atol=1e-6)


def test_weights_rows_sum_to_one_and_fractional_edges_are_partial():
    m = dg.Thicken(0, 2.5).matrix(13)
    assert m.shape == (5, 13)  # floor(13 / 2.5)
    np.testing.assert_allclose(m.sum(axis=1), 1.0)
    np.testing.assert_allclose(m[0, :3], [0.4, 0.4, 0.2])  # box [-0.5, 2.0]
    np.testing.assert_allclose(m[1, 2:5], [0.2, 0.4, 0.4])  # box [2.0, 4.5]


@pytest.mark.parametrize("length,factor,start,count", [(13, 2, None, 6), (13, 3, None, 4), (9, 4, None, 2),
                                                       (13, 2.5, None, 5), (12, 3.25, None, 3), (8, 1, None, 8),
                                                       (13, 3, 2.0, 4), (10, 3, 2.5, 2)])
def test_output_length(length, factor, start, count):
    op = dg.Thicken(0, factor, start=start)
    assert op.output_length(length) == count == ref.default_count(length, factor, op.first_centre)


@pytest.mark.parametrize("kw,message", [
    ({"start": -0.2}, "starts before the grid"),
    ({"count": 5}, "need"),
    ({"start": 11.5}, "no thick slice"),
])
def test_slices_outside_the_grid_are_refused(kw, message):
    with pytest.raises(ValueError, match=message):
        dg.Thicken(1, 3, **kw).output_length(13)


# ---------------------------------------------------------------------------------------------------------------
# The thick-slice grid's affine.


@pytest.mark.parametrize("axis,factor", [(0, 2), (1, 3), (2, 4), (2, 5)])
def test_box_slice_centre_is_the_mean_world_position_of_its_block(axis, factor):
    a = _affine(axis)
    op = dg.Thicken(axis, factor)
    ta = op.affine(a)
    np.testing.assert_allclose(ta, ref.thick_affine_ref(a, axis, factor), atol=1e-9)
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
    a = _affine(7)
    op = dg.Thicken(1, factor, start=start)
    m, ta = op.matrix(13), op.affine(a)
    i = np.arange(13.0)
    for j, c in enumerate(op.centres(13)):
        lo, hi = np.maximum(c - factor / 2, i - 0.5), np.minimum(c + factor / 2, i + 0.5)
        centroid = float(np.sum(m[j] * (lo + hi) / 2))
        np.testing.assert_allclose(centroid, c, atol=1e-9)
        world = a[:3, 1] * centroid + a[:3, 3]
        np.testing.assert_allclose(world, ta[:3, 1] * j + ta[:3, 3], atol=1e-9)


def test_composed_affine_and_shape():
    a = _affine(2)
    deg = dg.Degradation((dg.Thicken(2, 3), dg.Thicken(0, 2, start=1.5)))
    assert deg.output_shape(SHAPE[1:4]) == (6, 11, 3)
    want = ref.thick_affine_ref(ref.thick_affine_ref(a, 2, 3), 0, 2, start=1.5)
    np.testing.assert_allclose(deg.affine(a), want, atol=1e-9)
    np.testing.assert_allclose(deg(tf.constant(_volume())).numpy(),
                               ref.thicken_ref(ref.thicken_ref(_volume(), 2, 3), 0, 2, start=1.5), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------------
# Mask, noise level, loss.


def test_masked_mse_and_noise_weighting_match_reference():
    rng = np.random.RandomState(4)
    x, y = rng.randn(3, 5, 6, 7, 2), rng.randn(3, 5, 6, 7, 2)
    w3 = (rng.rand(5, 6, 7) > 0.5).astype(np.float32)
    w4 = (rng.rand(3, 5, 6, 7) > 0.3).astype(np.float32)
    w4[1] = 0  # an item with nothing compared gets 0
    xt, yt = tf.constant(x, tf.float32), tf.constant(y, tf.float32)
    np.testing.assert_allclose(dg.masked_mse(xt, yt).numpy(), ref.masked_mse_ref(x, y), rtol=1e-5)
    np.testing.assert_allclose(dg.masked_mse(xt, yt, w3).numpy(), ref.masked_mse_ref(x, y, w3), rtol=1e-5)
    np.testing.assert_allclose(dg.masked_mse(xt, yt, w4).numpy(), ref.masked_mse_ref(x, y, w4), rtol=1e-5)
    assert dg.noise_weight(0.05) == pytest.approx(200.0) and dg.noise_weight(None) == 1.0
    np.testing.assert_allclose(dg.gaussian_data_term(xt, yt, 0.1, w3).numpy(),
                               ref.gaussian_nll_ref(x, y, 0.1, w3), rtol=1e-5)


def test_degradation_loss_is_reference_thicken_then_masked_weighted_mse():
    x, rng = _volume(5), np.random.RandomState(6)
    deg = dg.Degradation((dg.Thicken(2, 3, dg.SliceProfile("gaussian")),), sigma=0.2)
    out_shape = deg.output_shape(SHAPE[1:4])
    w = (rng.rand(*out_shape) > 0.4).astype(np.float32)
    deg = deg.with_mask(dg.Mask(weights=w))
    target = rng.randn(SHAPE[0], *out_shape, SHAPE[4])
    got = deg.loss(tf.constant(x), tf.constant(target, tf.float32)).numpy()
    want = ref.gaussian_nll_ref(ref.thicken_ref(x, 2, 3, "gaussian"), target, 0.2, w)
    assert got.shape == (SHAPE[0],)
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_identity_degradation_loss_is_plain_mse():
    x, y = _volume(1), _volume(2)
    deg = dg.parse_spec("none")
    assert deg.is_identity
    np.testing.assert_allclose(deg.loss(tf.constant(x), tf.constant(y)).numpy(),
                               np.mean((x.astype(np.float64) - y) ** 2, axis=(1, 2, 3, 4)), rtol=1e-5)


def test_loss_refuses_mismatched_target_mask_and_unread_mask():
    x = tf.constant(_volume())
    deg = dg.Degradation((dg.Thicken(0, 3),))
    with pytest.raises(ValueError, match="target"):
        deg.loss(x, x)
    y = deg(x)
    with pytest.raises(ValueError, match="mask"):
        deg.with_mask(dg.Mask(weights=np.ones((4, 11, 8)))).loss(x, y)
    with pytest.raises(ValueError, match="has not been read"):
        deg.with_mask(dg.Mask(path="m.nii.gz")).loss(x, y)
    with pytest.raises(ValueError, match="excludes every voxel"):
        dg.Mask(weights=np.zeros((4, 11, 9)))


# ---------------------------------------------------------------------------------------------------------------
# Gradients.


@pytest.mark.parametrize("profile", ["box", "gaussian"])
def test_gradient_reaches_exactly_the_voxels_the_masked_degradation_looks_at(profile):
    rng = np.random.RandomState(8)
    x = tf.Variable(_volume(9))
    deg = dg.Degradation((dg.Thicken(2, 4, dg.SliceProfile(profile)), dg.Thicken(0, 1, start=1, count=10)))
    out_shape = deg.output_shape(SHAPE[1:4])  # (10, 11, 2): network slices 8 along W and 0, 11, 12 along D unseen
    w = np.ones(out_shape, np.float32)
    w[2:5, 3:7, :] = 0  # a "lesion" that is not compared
    deg = deg.with_mask(dg.Mask(weights=w))
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
    deg = dg.parse_spec("thicken:axis=1,mm=5,profile=gaussian;noise=0.1", network_spacing=(1, 2, 1))
    y = tf.zeros((SHAPE[0], *deg.output_shape(SHAPE[1:4]), SHAPE[4]))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(deg.loss(x, y))
    g = tape.gradient(loss, x).numpy()
    covered = deg.ops[0].matrix(SHAPE[2]).sum(axis=0) > 0
    assert np.all(np.abs(g).sum(axis=(0, 1, 3, 4))[covered] > 0)


# ---------------------------------------------------------------------------------------------------------------
# The spec parser.

SPEC_CASES = [
    # spec, network spacing, expected describe() without "spec" (ops, mask, noise_sigma)
    ("", None, ([], None, None)),
    ("none", None, ([], None, None)),
    ("native", None, ([], None, None)),
    ("thicken:axis=2,factor=4", None,
     ([{"op": "thicken", "axis": 2, "factor": 4, "profile": "box", "start": 1.5}], None, None)),
    ("thicken:axis=2,factor=4,profile=gaussian;mask=path.nii.gz;noise=0.05", None,
     ([{"op": "thicken", "axis": 2, "factor": 4, "profile": "gaussian", "start": 1.5, "fwhm_vox": 4,
        "truncate": 3}], {"path": "path.nii.gz", "invert": False}, 0.05)),
    (" thicken: axis=0, mm=6.5 ; noise:sigma=0.1 ", (2.0, 1.0, 1.0),
     ([{"op": "thicken", "axis": 0, "factor": 3.25, "profile": "box", "start": 1.125}], None, 0.1)),
    ("thicken:axis=1,factor=3,profile=gaussian,fwhm_mm=3,truncate=2,start=2,count=3", (1.0, 0.5, 1.0),
     ([{"op": "thicken", "axis": 1, "factor": 3, "profile": "gaussian", "start": 2, "fwhm_vox": 6,
        "truncate": 2, "count": 3}], None, None)),
    ("mask:path=C:/scans/lesion.nii.gz,invert=true", None,
     ([], {"path": "C:/scans/lesion.nii.gz", "invert": True}, None)),
    ("mask=C:\\scans\\brain mask.nii.gz", None, ([], {"path": "C:\\scans\\brain mask.nii.gz", "invert": False}, None)),
    ("thicken:axis=0,factor=2;thicken:axis=2,factor=1.5", None,
     ([{"op": "thicken", "axis": 0, "factor": 2, "profile": "box", "start": 0.5},
       {"op": "thicken", "axis": 2, "factor": 1.5, "profile": "box", "start": 0.25}], None, None)),
]


@pytest.mark.parametrize("spec,spacing,want", SPEC_CASES)
def test_parse_spec(spec, spacing, want):
    deg = dg.parse_spec(spec, network_spacing=spacing)
    d = deg.describe()
    assert (d["ops"], d["mask"], d["noise_sigma"]) == want
    assert json.loads(json.dumps(d)) == d
    again = dg.parse_spec(d["spec"])  # the recorded spec parses back to the same degradation
    assert again.describe() == d


SPEC_ERRORS = [
    ("thicken:factor=4", "part 1 .*needs axis"),
    ("thicken:axis=3,factor=2", "axis='3' is not 0, 1 or 2"),
    ("thicken:axis=x,factor=2", "axis='x'"),
    ("thicken:axis=0", "exactly one of factor= .* or mm="),
    ("thicken:axis=0,factor=2,mm=4", "exactly one of"),
    ("thicken:axis=0,mm=4", "needs the network grid's spacing"),
    ("thicken:axis=0,factor=abc", "factor='abc' is not a number"),
    ("thicken:axis=0,factor=0.5", "factor must be a number >= 1"),
    ("thicken:axis=0,factor=nan", "not finite"),
    ("thicken:axis=0,factor=2,profile=sinc", "profile='sinc'"),
    ("thicken:axis=0,factor=2,fwhm=3", "fwhm only applies to profile=gaussian"),
    ("thicken:axis=0,factor=2,thickness=3", r"unknown key\(s\) \['thickness'\]"),
    ("thicken:axis=0,factor=2,count=2.5", "count='2.5' is not an integer"),
    ("thicken:axis=0,factor=2,axis=1", "'axis' given twice"),
    ("thicken:axis=0,factor=2,gaussian", "'gaussian' is not key=value"),
    ("thicken=axis=0", "write thicken:"),
    ("thicken:axis=0,factor=2;thicken:axis=0,factor=3", "part 2 .*axis 0 is already thickened"),
    ("noise=0", "part 1 .*must be positive"),
    ("noise=-1", "must be positive"),
    ("noise=loud", "noise='loud' is not a number"),
    ("noise=0.1;noise=0.2", "part 2 .*only one noise level"),
    ("noise:level=0.1", "noise=SIGMA or noise:sigma=SIGMA"),
    ("mask=", "needs a file path"),
    ("mask:invert=1", "needs a file path"),
    ("mask:path=a.nii,invert=maybe", "not a boolean"),
    ("mask=a.nii;mask=b.nii", "only one mask"),
    ("blur:sigma=2", "unknown forward model 'blur'"),
    ("thicken:axis=0,factor=2;;noise=0.1", "part 2 .* is empty"),
    ("gibberish", "part 1 'gibberish': expected thicken"),
]


@pytest.mark.parametrize("spec,message", SPEC_ERRORS)
def test_parse_spec_errors_name_the_bad_part(spec, message):
    with pytest.raises(ValueError, match=message):
        dg.parse_spec(spec, network_spacing=None)


# ---------------------------------------------------------------------------------------------------------------
# The target-grid helper.

NET_SHAPE = (20, 24, 16)


def _target_case(name):
    """(target affine, target shape, expected ops as describe() dicts, expected target index ranges)."""
    a = _affine(1)
    if name == "thick_k":  # exactly the thickening's own grid
        op = dg.Thicken(2, 4)
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
    a = _affine(1)
    t_aff, t_shape, ops, ranges = _target_case(name)
    m = dg.match_target_grid(a, NET_SHAPE, t_aff, t_shape)
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
        dg.match_target_grid(a, NET_SHAPE, t, NET_SHAPE)


def test_target_sampling_grid_keeps_thick_slices_and_takes_the_network_lattice_in_plane():
    # a 0.78 mm in-plane, 6.5 mm slice scan over a 2 mm network grid
    net = np.diag([2.0, 2.0, 2.0, 1.0])
    net[:3, 3] = [-20, -24, -16]
    scan = np.diag([0.78, 0.78, 6.5, 1.0])
    scan[:3, 3] = [-25.3, -30.1, -21.0]  # slice s centred at network voxel k = -2.5 + 3.25 s, box +-1.625
    grid, shape = dg.target_sampling_grid(net, NET_SHAPE, scan, (80, 90, 7))
    assert shape == (20, 24, 7)
    want = net.copy()
    want[2, 2], want[2, 3] = 6.5, -21.0
    np.testing.assert_allclose(grid, want, atol=1e-9)
    m = dg.match_target_grid(net, NET_SHAPE, grid, shape)
    assert [op.describe() for op in m.ops] == [{"op": "thicken", "axis": 2, "factor": 3.25, "profile": "box",
                                                "start": 4, "count": 4}]
    assert m.target_slices[2] == slice(2, 6)  # slices 0, 1 stick out below -0.5, slice 6 above 15.5
    with pytest.raises(ValueError, match="voxel axis 2 points differently"):
        scan_oblique = scan.copy()
        scan_oblique[1, 2] = 1.0
        dg.target_sampling_grid(net, NET_SHAPE, scan_oblique, (80, 90, 7))


# ---------------------------------------------------------------------------------------------------------------
# Mask files.


def test_read_mask_and_load_into_degradation(tmp_path):
    import nibabel as nib

    aff = np.diag([1.0, 1.0, 4.0, 1.0])
    lesion = np.zeros((4, 5, 3), np.float32)
    lesion[1:3, 2:4, 1] = 1
    path = str(tmp_path / "lesion.nii.gz")
    nib.save(nib.Nifti1Image(lesion, aff), path)
    m = dg.read_mask(path, shape=(4, 5, 3), affine=aff)
    np.testing.assert_array_equal(m.weights, lesion)
    inv = dg.parse_spec(f"mask:path={path},invert=1").load_mask(shape=(4, 5, 3), affine=aff)
    np.testing.assert_array_equal(inv.weights(), 1 - lesion)
    assert inv.describe()["mask"]["fraction_compared"] == pytest.approx(1 - 4 / 60)
    with pytest.raises(ValueError, match="lesion.nii.gz: mask has shape"):
        dg.read_mask(path, shape=(4, 5, 4))
    with pytest.raises(ValueError, match="lesion.nii.gz: mask affine"):
        dg.read_mask(path, affine=np.eye(4))


# ---------------------------------------------------------------------------------------------------------------
# The trivial inverse.


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
    op = dg.Thicken(axis, factor, start=start)
    y = op(tf.constant(x, tf.float32)).numpy()
    back = dg.trivial_inverse(y, axis, factor, start=start, length=shape[axis + 1])
    assert back.shape == x.shape
    c = op.centres(shape[axis + 1])
    inside = np.flatnonzero((np.arange(shape[axis + 1]) >= c[0]) & (np.arange(shape[axis + 1]) <= c[-1]))
    np.testing.assert_allclose(np.take(back, inside, axis + 1), np.take(x, inside, axis + 1), atol=1e-4)
    np.testing.assert_allclose(back, ref.linear_inverse_ref(y, axis, factor, shape[axis + 1], start), atol=1e-5)


@pytest.mark.parametrize("axis,factor,start", [(0, 2.5, None), (1, 3.25, 1.6), (2, 1.7, 0.5)])
def test_trivial_inverse_fractional_factor_interpolates_samples_at_the_slice_centres(axis, factor, start):
    shape = [2, 13, 11, 17, 1]
    x = _linear_along(axis, shape, seed=13)
    op = dg.Thicken(axis, factor, start=start)
    c = op.centres(shape[axis + 1])
    slope = np.take(x, [1], axis + 1) - np.take(x, [0], axis + 1)
    cshape = [-1 if k == axis + 1 else 1 for k in range(5)]
    samples = np.take(x, [0], axis + 1) + slope * c.reshape(cshape)  # the linear profile at the centres
    back = dg.trivial_inverse(samples, axis, factor, start=start, length=shape[axis + 1])
    inside = np.flatnonzero((np.arange(shape[axis + 1]) >= c[0]) & (np.arange(shape[axis + 1]) <= c[-1]))
    np.testing.assert_allclose(np.take(back, inside, axis + 1), np.take(x, inside, axis + 1), atol=1e-9)
    y = op(tf.constant(x, tf.float32)).numpy()
    np.testing.assert_allclose(dg.trivial_inverse(y, axis, factor, start=start, length=shape[axis + 1]),
                               ref.linear_inverse_ref(y, axis, factor, shape[axis + 1], start), atol=1e-5)


def test_trivial_inverse_nearest_and_bad_kind():
    y = np.arange(4, dtype=np.float32).reshape(1, 4, 1, 1, 1)
    got = dg.trivial_inverse(y, 0, 3, kind="nearest")[0, :, 0, 0, 0]
    np.testing.assert_array_equal(got, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    with pytest.raises(ValueError, match="'linear' or 'nearest'"):
        dg.trivial_inverse(y, 0, 3, kind="sinc")
