"""Preprocessing: valid shapes, intensity formula, world positions kept, resampling, registration."""

import numpy as np
import pytest
from scipy import ndimage

from volumes import preprocess as pp
from volumes import volume_io as vio

SRC_SHAPE = (30, 34, 38)


def _head(shape=SRC_SHAPE, seed=0):
    """An ellipsoid 'head' with noise and an off-centre bright blob, background 0."""
    rng = np.random.default_rng(seed)
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    c = (np.asarray(shape) - 1) / 2
    head = ((ii - c[0]) / (0.3 * shape[0])) ** 2 + ((jj - c[1]) / (0.33 * shape[1])) ** 2 + (
        (kk - c[2]) / (0.32 * shape[2])
    ) ** 2 < 1
    vol = head * (100 + 10 * rng.random(shape))
    blob = (ii - c[0] - 4) ** 2 + (jj - c[1] + 3) ** 2 + (kk - c[2] - 2) ** 2 <= 4
    return np.where(blob, 300.0, vol).astype(np.float32)


def _blob_world(vol, affine, level):
    """World centroid of voxels above `level` (independent of any code under test)."""
    idx = np.argwhere(vol > level).astype(np.float64)
    w = vol[vol > level].astype(np.float64)
    centre = (idx * w[:, None]).sum(0) / w.sum()
    return (affine @ [*centre, 1])[:3]


def test_valid_shapes_and_refusal_message():
    assert pp.check_shape((80, 96, 112)) == (80, 96, 112)
    assert pp.check_shape((16, 16, 2), base_shape=(16, 16, 2)) == (16, 16, 2)
    with pytest.raises(ValueError) as e:
        pp.check_shape((256, 256, 256))
    assert "40x48x56" in str(e.value) and "160x192x224" in str(e.value) and "256x256x256" in str(e.value)
    assert "--" not in str(e.value)  # library messages name no flags
    with pytest.raises(ValueError, match="80x96x113 does not fit"):
        pp.check_shape((80, 96, 113))


@pytest.mark.parametrize("spacing, shape", [(2, (80, 96, 112)), (1, (160, 192, 224)), (4, (40, 48, 56))])
def test_default_shape_keeps_the_field_of_view(spacing, shape):
    assert pp.default_shape([spacing] * 3) == shape


def test_normalize_matches_percentile_formula():
    v = np.random.default_rng(0).gamma(2.0, 10.0, (20, 20, 20)).astype(np.float32)
    mask = v > 5
    out, info = pp.normalize_intensity(v, mask, (1.0, 99.0))
    lo, hi = np.percentile(v[mask], 1.0), np.percentile(v[mask], 99.0)
    np.testing.assert_allclose(out, np.clip((v - lo) / (hi - lo), 0, 1), atol=1e-6)
    np.testing.assert_allclose(info["clip"], [lo, hi], rtol=1e-6)


def test_foreground_centre_of_a_box():
    m = np.zeros((20, 30, 40), bool)
    m[2:9, 10:21, 5:36] = True
    np.testing.assert_allclose(pp.foreground_centre(m), [5, 15, 20], atol=0.1)


def test_antialias_sigma_known_value():
    _, sigma = pp.antialias(np.zeros((8, 8, 8), np.float32), np.eye(4), [2.0, 2.0, 1.0])
    np.testing.assert_allclose(sigma, [np.sqrt(3) / 2.355, np.sqrt(3) / 2.355, 0.0], rtol=1e-6)


@pytest.mark.parametrize(
    "affine",
    [
        np.array([[4.0, 0, 0, -50], [0, 4, 0, -60], [0, 0, 4, -70], [0, 0, 0, 1]]),  # RAS
        np.array([[-4.0, 0, 0, 50], [0, -4, 0, 60], [0, 0, 4, -70], [0, 0, 0, 1]]),  # LPS
        np.array([[-4.0, 0, 0, 50], [0, 0, 4, -60], [0, -4, 0, 70], [0, 0, 0, 1]]),  # LIA
    ],
)
def test_same_spacing_is_an_exact_crop_at_the_same_world_positions(affine):
    vol = _head()
    opts = pp.default_options(spacing=[4, 4, 4], shape=[20, 24, 28])
    out, out_aff, t = pp.preprocess_volume(vol, affine, opts)
    assert out.shape == (20, 24, 28) and t.resample["method"] == "crop_pad"
    assert vio.orientation_codes(out_aff) == ("R", "A", "S")
    lo, hi = t.intensity["clip"]
    # Every output voxel equals the normalised source voxel at the same world point.
    ijk = np.indices(out.shape).reshape(3, -1)
    src = np.linalg.solve(affine, out_aff @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]
    np.testing.assert_allclose(src, np.round(src), atol=1e-6)
    s = np.round(src).astype(int)
    inside = np.all((s >= 0) & (s < np.asarray(SRC_SHAPE)[:, None]), axis=0)
    ref = np.clip((vol[tuple(s[:, inside])] - lo) / (hi - lo), 0, 1)
    np.testing.assert_allclose(out.reshape(-1)[inside], ref, atol=1e-6)
    assert inside.mean() > 0.9


def test_resampling_keeps_the_blob_in_place_and_matches_scipy():
    vol = _head()
    affine = np.array([[2.0, 0, 0, -30], [0, 2, 0, -34], [0, 0, 2, -38], [0, 0, 0, 1]])
    opts = pp.default_options(spacing=[3, 3, 3], shape=[20, 24, 28], antialias=False, normalize=False)
    out, out_aff, _ = pp.preprocess_volume(vol / 300.0, affine, opts)
    # Independent reference: SciPy trilinear interpolation at the output voxels' world points.
    ijk = np.indices(out.shape).reshape(3, -1)
    src = np.linalg.solve(affine, out_aff @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]
    ref = ndimage.map_coordinates(vol / 300.0, src, order=1, mode="constant", cval=0.0).reshape(out.shape)
    inside = np.all((src >= 0) & (src <= np.asarray(SRC_SHAPE)[:, None] - 1), axis=0).reshape(out.shape)
    np.testing.assert_allclose(out[inside], ref[inside], atol=1e-4)
    np.testing.assert_allclose(_blob_world(out, out_aff, 0.6), _blob_world(vol, affine, 200), atol=1.0)


def _with_inf():
    vol = _head()
    vol[1, 2, 3] = np.inf
    return vol


@pytest.mark.parametrize(
    "make, message",
    [(_with_inf, "scan.nii: 1 NaN/Inf"), (lambda: np.full((8, 8, 8), 3.0), "scan.nii: empty volume")],
    ids=["inf", "constant"],
)
def test_bad_values_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        pp.preprocess_volume(make(), np.eye(4), pp.default_options(), name="scan.nii")


def test_registration_undoes_a_rigid_motion(tmp_path):
    # Template: the head at 4 mm. Moving: the same voxels under a rotated (10 deg) and shifted affine.
    vol = _head((24, 28, 32), seed=1)
    t_aff = np.diag([4.0, 4.0, 4.0, 1.0])
    t_aff[:3, 3] = -np.asarray([24, 28, 32]) * 2
    vio.write_nifti(tmp_path / "template.nii.gz", vol, t_aff)
    a = np.radians(10)
    rot = np.eye(4)
    rot[:3, :3] = [[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]]
    rot[:3, 3] = [7.0, -5.0, 3.0]
    m_aff = rot @ t_aff
    opts = pp.default_options(spacing=[4, 4, 4], shape=[20, 24, 28], register_to=str(tmp_path / "template.nii.gz"))
    template = pp.Template(opts.register_to)
    out_m, aff_m, t = pp.preprocess_volume(vol, m_aff, opts, template=template)
    # Output grid: the template's world frame (RAS axes, 4 mm), whatever the moving scan's pose was.
    np.testing.assert_allclose(aff_m[:3, :3], t_aff[:3, :3])
    # The blob lands within a voxel (4 mm) of where it is in the template.
    dist = np.linalg.norm(_blob_world(out_m, aff_m, 0.9) - _blob_world(vol, t_aff, 200))
    assert dist < 4.0
    # And the whole volume matches the template sampled (SciPy) on the same grid.
    ijk = np.indices(out_m.shape).reshape(3, -1)
    src = np.linalg.solve(t_aff, aff_m @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]
    ref = ndimage.map_coordinates(vol, src, order=1, mode="constant", cval=0.0)
    assert np.corrcoef(out_m.ravel(), ref)[0, 1] > 0.9
    # The recorded transform maps template points to the moving scan's points: ~ rot.
    fixed_to_moving = np.asarray(t.registration["fixed_to_moving_ras"])
    p = np.array([10.0, 20.0, -5.0, 1.0])
    assert np.linalg.norm(fixed_to_moving @ p - rot @ p) < 4.0


def test_switching_off_reorientation_and_resampling():
    vol = _head()
    lia = np.array([[-3.0, 0, 0, 50], [0, 0, 3, -60], [0, -3, 0, 70], [0, 0, 0, 1]])
    opts = pp.default_options(spacing=[2, 2, 2], shape=[20, 24, 28], reorient=False, resample=False)
    out, out_aff, t = pp.preprocess_volume(vol, lia, opts)
    assert vio.orientation_codes(out_aff) == ("L", "I", "A")  # the scan's own axes are kept
    np.testing.assert_allclose(vio.voxel_sizes(out_aff), [3, 3, 3])  # and its own spacing
    assert t.resample["method"] == "crop_pad" and "reorient" not in t
    off = np.asarray(t.resample["offset"])
    # Exact crop: output voxel 0 is source voxel `offset`, at the same world point.
    np.testing.assert_allclose(out_aff @ [0, 0, 0, 1], lia @ [*off, 1])


def test_foreground_centre_ignores_stray_voxels_like_coordinate_percentiles():
    rng = np.random.default_rng(3)
    m = rng.random((30, 40, 50)) < 0.002  # scattered noise voxels
    m[5:20, 10:30, 3:40] = True
    idx = np.nonzero(m)
    ref = [(np.percentile(a, 0.5) + np.percentile(a, 99.5)) / 2 for a in idx]
    np.testing.assert_allclose(pp.foreground_centre(m), ref, atol=0.5)
    np.testing.assert_allclose(pp.foreground_centre(m), [12, 19.5, 21], atol=1.0)
