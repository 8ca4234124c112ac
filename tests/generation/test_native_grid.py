"""generation/native_grid.py: a projection written back in its source file's grid and intensity units."""

import numpy as np

from generation import native_grid


def test_to_native_grid_inverts_reorientation_and_registration():
    # Dataset grid: RAS, 2 mm. Source grid: LPS-like flips, 3 mm, other origin. A linear function of world
    # position is reproduced exactly by linear interpolation, so each source voxel must get f(its world point).
    data_aff = np.array([[2.0, 0, 0, -20], [0, 2, 0, -24], [0, 0, 2, -28], [0, 0, 0, 1]])
    shape = (20, 24, 28)
    idx = np.stack(np.meshgrid(*[np.arange(s) for s in shape], indexing="ij"), -1).reshape(-1, 3)
    world = idx @ data_aff[:3, :3].T + data_aff[:3, 3]
    coef = np.array([0.01, -0.02, 0.03])
    src_aff = np.array([[-3.0, 0, 0, 12], [0, -3, 0, 15], [0, 0, 3, -18], [0, 0, 0, 1]])
    src_shape = (8, 10, 12)
    src_idx = np.stack(np.meshgrid(*[np.arange(s) for s in src_shape], indexing="ij"), -1).reshape(-1, 3)
    src_world = src_idx @ src_aff[:3, :3].T + src_aff[:3, 3]
    t = {"source_shape": list(src_shape), "source_affine": src_aff.tolist()}

    vol = (world @ coef + 0.5).reshape(shape)
    out, aff = native_grid.to_native_grid(vol, data_aff, t)
    assert out.shape == src_shape
    np.testing.assert_array_equal(aff, src_aff)
    np.testing.assert_allclose(out.ravel(), src_world @ coef + 0.5, atol=1e-5)

    # With registration: the dataset grid lives in template space, x_source = M @ x_template.
    m = np.array([[1.1, 0.05, 0, 2], [0, 0.95, 0.02, -1], [0.03, 0, 1.0, 1.5], [0, 0, 0, 1]])
    t["registration"] = {"fixed_to_moving_ras": m.tolist()}
    out, _ = native_grid.to_native_grid(vol, data_aff, t)
    tmpl = (np.c_[src_world, np.ones(len(src_world))] @ np.linalg.inv(m).T)[:, :3]
    np.testing.assert_allclose(out.ravel(), tmpl @ coef + 0.5, atol=1e-5)


def test_to_source_intensity_undoes_the_clip_normalisation():
    vol = np.array([0.0, 0.25, 1.0], np.float32)
    out, units = native_grid.to_source_intensity(vol, {"intensity": {"clip": [10.0, 50.0]}})
    np.testing.assert_allclose(out, [10.0, 20.0, 50.0])
    assert units == "source units: [0, 1] -> [10, 50]"
    same, units = native_grid.to_source_intensity(vol, {})
    assert same is vol and units == "[0, 1] (the dataset's)"


def test_background_goes_back_to_the_scans_background():
    # Clip [10, 50] from a scan whose background is 0: a projection's 0 is the scan's 0 (an overlay shows no grey
    # box), 0.025 is halfway up the ramp to the exact inverse at 0.05 (12), and above that the inverse is exact.
    vol = np.array([0.0, 0.025, 0.05, 0.25, 1.0], np.float32)
    out, units = native_grid.to_source_intensity(vol, {"intensity": {"clip": [10.0, 50.0], "background": 0.0}})
    np.testing.assert_allclose(out, [0.0, 6.0, 12.0, 20.0, 50.0], rtol=1e-6)
    assert "background 0" in units


def test_preprocessing_records_the_background(tmp_path):
    from volumes import preprocess

    vol = np.zeros((12, 12, 12), np.float32)
    vol[3:9, 3:9, 3:9] = 100 + np.arange(216, dtype=np.float32).reshape(6, 6, 6)
    vol -= 7.0  # a background below zero
    opts = preprocess.default_options(spacing=[1.0, 1.0, 1.0], shape=[10, 12, 14], base_shape=[5, 6, 7])
    _, _, t = preprocess.preprocess_volume(vol, np.eye(4), opts)
    assert t.intensity["background"] == -7.0 and t.intensity["clip"][0] > 90
