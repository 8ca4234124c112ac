"""The demo cohort's covariates: drawn deterministically, driving the stated atrophy, with a true ventricle volume
that agrees with independent computations (the template mask's voxel count, the dark voxels of the image)."""

import numpy as np
import pytest
from scipy import ndimage

from dnnlib.easydict import EasyDict
from volumes import demo_cohort, demo_data

SHAPE, SPACING = (40, 48, 56), 4.0


@pytest.fixture(scope="module")
def setup():
    t_vol, t_aff = demo_data.load_template()
    grid = demo_data.demo_grid(t_vol, t_aff, SHAPE, SPACING)
    cohort = demo_data.cohort_fields(t_vol, t_aff, [SPACING] * 3)
    mask = demo_cohort.ventricle_mask(t_vol, t_aff, demo_cohort._tissue_probability(demo_data.template_dir()))
    smooth, _ = demo_data.preprocess.antialias(t_vol, t_aff, [SPACING] * 3)
    return EasyDict(t_vol=t_vol, t_aff=t_aff, smooth=smooth, grid=grid, cohort=cohort, mask=mask)


def _synth(setup, seed, var=None, covariates=None, monkeypatch=None):
    if covariates is not None:
        monkeypatch.setattr(demo_cohort, "draw_covariates", lambda s: covariates)
    return demo_data.synth_volume(
        seed, setup.smooth, setup.t_aff, setup.grid, SHAPE, var or demo_data.DEFAULT_VARIATION, setup.cohort
    )


def test_template_ventricles_are_two_lateral_ventricles(setup):
    lab, n = ndimage.label(setup.mask)
    assert n == 2
    centres = np.asarray(ndimage.center_of_mass(setup.mask, lab, [1, 2]))
    x_mm = centres @ setup.t_aff[0, :3] + setup.t_aff[0, 3]
    assert sorted(np.sign(x_mm)) == [-1, 1]  # one each side of the midline
    assert 8.0 < setup.mask.sum() / 1000.0 < 30.0  # mL at 1 mm: an adult's lateral ventricles


def test_covariates_are_deterministic_and_in_range():
    draws = [demo_cohort.draw_covariates(s) for s in range(200)]
    assert draws == [demo_cohort.draw_covariates(s) for s in range(200)]
    ages = np.array([a for a, _ in draws])
    groups = np.array([g for _, g in draws])
    assert ages.min() >= 20 and ages.max() <= 80 and set(groups) == {0, 1}
    assert 0.35 < groups.mean() < 0.65 and ages.std() > 15  # uniform on [20, 80]: std 17.3
    assert demo_cohort.atrophy_fraction(20, 0) == 0.0 and demo_cohort.atrophy_fraction(80, 0) == 1.0
    assert demo_cohort.atrophy_fraction(50, 1) == demo_cohort.atrophy_fraction(60, 0)


@pytest.mark.parametrize("seed", [3, 4])
def test_unwarped_young_volume_is_template_mask_count_times_head_scale_cubed(setup, seed, monkeypatch):
    # No random warp and atrophy 0, only the head's random scaling s: the recorded partial-volume sum on the 4 mm
    # grid must equal the template mask's voxel count at 1 mm times s^3.
    still = EasyDict(demo_data.DEFAULT_VARIATION, velocity_mm=0.0)
    _, params = _synth(setup, seed, still, (20.0, 0), monkeypatch)
    expected_ml = setup.mask.sum() / 1000.0 * params["global_scale"] ** 3
    assert params["global_scale"] != 1.0
    assert params["covariates"]["ventricle_volume_ml"] == pytest.approx(expected_ml, rel=0.03)
    assert params["covariates"]["age"] == 20.0 and params["covariates"]["group"] == 0


def test_ventricles_grow_with_age_and_group_ages_by_ten_years(setup, monkeypatch):
    volumes = []
    for age in (20.0, 40.0, 60.0, 80.0):
        _, p = _synth(setup, 5, covariates=(age, 0), monkeypatch=monkeypatch)
        volumes.append(p["covariates"]["ventricle_volume_ml"])
    assert np.all(np.diff(volumes) > 0) and volumes[-1] / volumes[0] > 1.6
    a, pa = _synth(setup, 5, covariates=(50.0, 1), monkeypatch=monkeypatch)
    b, pb = _synth(setup, 5, covariates=(60.0, 0), monkeypatch=monkeypatch)
    np.testing.assert_array_equal(a, b)
    assert pa["covariates"]["ventricle_volume_ml"] == pb["covariates"]["ventricle_volume_ml"]


def test_recorded_mask_lies_on_the_dark_ventricles_of_the_image(setup):
    # The mask recorded for each volume sits where that volume's ventricles are: inside it the image is darker than
    # in the ring of voxels around it, by far (a mask shifted by one voxel or left unwarped fails this).
    for seed in range(4):
        vol, p = demo_data.synth_volume(
            seed, setup.smooth, setup.t_aff, setup.grid, SHAPE, demo_data.DEFAULT_VARIATION, setup.cohort
        )
        inside = p["ventricle_mask"] > 0.5
        ring = ndimage.binary_dilation(inside, iterations=1) & ~inside
        assert vol[inside].mean() < 0.75 * vol[ring].mean()
        shifted = np.roll(inside, 2, axis=0)
        assert vol[shifted].mean() > vol[inside].mean() + 0.05


def test_atrophy_map_does_not_fold(setup):
    x, y, z = (np.arange(-40, 41, 2.0), np.arange(-60, 41, 2.0), np.arange(-20, 51, 2.0))
    pts = np.stack(np.meshgrid(x, y, z, indexing="ij")).reshape(3, -1)
    a_max = demo_cohort.atrophy_fraction(80, 1)
    q = demo_cohort.template_points(pts, setup.t_aff, setup.cohort.direction, a_max).reshape(3, len(x), len(y), len(z))
    jac = np.stack([np.stack(np.gradient(q[i], 2.0)) for i in range(3)])
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    unmoved = demo_cohort.template_points(pts, setup.t_aff, None, 0.0).reshape(q.shape)
    assert det.min() > 0 and np.abs(q - unmoved).max() > 2


def test_dataset_manifest_lists_covariates_and_split_keeps_them(tmp_path):
    from volumes.dataset_ops import split_dataset
    from volumes.manifest import load_manifest

    demo_data.build_demo_dataset(str(tmp_path / "d"), res="demo", num_volumes=4, seed=2, workers=1, verbose=False)
    m = load_manifest(str(tmp_path / "d"))
    assert set(m["covariates"]) == {"age", "group", "ventricle_volume_ml"} and "atrophy" in m["covariate_rule"]
    assert m.get("labels") is None  # unconditional training stays the default
    seeds = [f["transform"]["synthetic"]["seed"] for f in m["files"]]
    for f, seed in zip(m["files"], seeds, strict=True):
        age, group = demo_cohort.draw_covariates(seed)
        assert f["covariates"]["age"] == pytest.approx(age, abs=1e-3) and f["covariates"]["group"] == group
        assert 5.0 < f["covariates"]["ventricle_volume_ml"] < 80.0
    from volumes.dataset_ops import summary_lines

    text = "\n".join(summary_lines(m))
    ages = [f["covariates"]["age"] for f in m["files"]]
    assert f"age: {min(ages):.4g} to {max(ages):.4g} years" in text and "group: " in text
    split_dataset(str(tmp_path / "d"), str(tmp_path / "s"), 0.5, 0, False)
    parts = [load_manifest(str(tmp_path / "s" / p)) for p in ("train", "test")]
    kept = sorted(f["covariates"]["age"] for p in parts for f in p["files"])
    assert kept == sorted(f["covariates"]["age"] for f in m["files"])
