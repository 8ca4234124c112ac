"""The synthetic demo dataset: labelled synthetic, on the documented grid, brain-shaped, deterministic."""

import json
import os

import numpy as np
import pytest
from scipy import ndimage

from dnnlib.easydict import EasyDict
from volumes import demo_data


@pytest.fixture(scope="module")
def template():
    return demo_data.load_template()


def test_template_is_brain_masked_mni(template):
    vol, aff = template
    assert vol.shape == (197, 233, 189) and vol.max() == pytest.approx(1.0)
    np.testing.assert_allclose(aff[:3, :3], np.eye(3))
    # Skull-stripped: about 1.9 litres of brain in an 8.7 litre box (a head with skull would fill ~half).
    assert vol.min() >= 0 and 0.15 < np.mean(vol > 0.02) < 0.3 and vol[0, 0, 0] == 0


def test_displacement_is_diffeomorphic():
    rng = np.random.default_rng(0)
    var = EasyDict(demo_data.DEFAULT_VARIATION, velocity_mm=8.0)
    spacing = np.array([16.0, 16.0, 16.0])
    u = demo_data.random_velocity_exp(rng, (10, 12, 14), spacing, var)
    assert u.shape == (3, 10, 12, 14) and 1.0 < np.abs(u).max() < 60.0
    # Jacobian of x -> x + u(x) (in mm) must be positive everywhere: no folding.
    grads = [np.gradient(u[a], *spacing) for a in range(3)]
    jac = np.stack([np.stack(g) for g in grads]) + np.eye(3)[:, :, None, None, None]
    det = np.linalg.det(np.moveaxis(jac, (0, 1), (-2, -1)))
    assert det.min() > 0


def test_build_small_demo_set(tmp_path, template):
    m = demo_data.build_demo_dataset(
        str(tmp_path / "demo"), res="demo", num_volumes=3, seed=1, workers=1, verbose=False
    )
    on_disk = json.load(open(tmp_path / "demo" / "dataset.json"))
    assert on_disk["synthetic"] is True and "SYNTHETIC" in on_disk["description"]
    assert on_disk["shape"] == [40, 48, 56] and on_disk["spacing"] == [4.0, 4.0, 4.0]
    assert on_disk["orientation"] == "RAS" and on_disk["mirror_axis"] == 0 and on_disk["num_volumes"] == 3

    from volumes import dataset_reader as dataset

    vols = np.concatenate(
        [x.numpy() for x, _ in dataset.make_dataset(tmp_path / "demo", 3, shuffle=False, repeat=False)]
    )
    assert vols.shape == (3, 40, 48, 56, 1) and vols.min() == -1.0 and vols.max() <= 1.0
    # Brain-shaped and where the template's brain is: correlate with the template sampled (SciPy) on the grid.
    t_vol, t_aff = template
    affine = np.asarray(m["affine"])
    ijk = np.indices((40, 48, 56)).reshape(3, -1)
    src = np.linalg.solve(t_aff, affine @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]
    ref = ndimage.map_coordinates(t_vol, src, order=1).reshape(40, 48, 56)
    for v in vols[..., 0]:
        assert np.corrcoef(v.ravel(), ref.ravel())[0, 1] > 0.7
        assert np.mean((v > -1) != (ref > 0.02)) < 0.15  # brain mask overlaps the template's
    assert not np.allclose(vols[0], vols[1])  # each volume is a different warp


def test_same_seed_same_data_other_seed_other_data(template):
    t_vol, t_aff = template
    grid = demo_data.demo_grid(t_vol, t_aff, (20, 24, 28), 8.0)
    var = demo_data.DEFAULT_VARIATION
    a, pa = demo_data.synth_volume(7, t_vol, t_aff, grid, (20, 24, 28), var)
    b, _ = demo_data.synth_volume(7, t_vol, t_aff, grid, (20, 24, 28), var)
    c, _ = demo_data.synth_volume(8, t_vol, t_aff, grid, (20, 24, 28), var)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    assert 0.75 <= pa["gamma"] <= 1.35 and a.min() == 0.0 and a.max() == 1.0


def test_default_demo_dataset_is_built_once(tmp_path, monkeypatch):
    from volumes.manifest import load_manifest

    calls = []
    real = demo_data.build_demo_dataset

    def counting(*args, **kw):
        calls.append(1)
        return real(*args, **dict(kw, workers=1))

    monkeypatch.setattr(demo_data, "build_demo_dataset", counting)
    monkeypatch.setenv("STYLEGAN3D_DATA", str(tmp_path / "data"))
    p1 = demo_data.default_demo_dataset(num_volumes=2, verbose=False)
    p2 = demo_data.default_demo_dataset(num_volumes=2, verbose=False)
    assert p1 == p2 == os.path.join(str(tmp_path / "data"), "demo-demo") and len(calls) == 1
    assert load_manifest(p1).synthetic is True
    with pytest.raises(ValueError, match="unknown"):
        demo_data.default_demo_dataset(res="7mm")
    (tmp_path / "data" / "demo-2mm").mkdir()
    (tmp_path / "data" / "demo-2mm" / "mine.txt").write_text("not a dataset")
    with pytest.raises(FileExistsError, match="remove it"):
        demo_data.default_demo_dataset(res="2mm")
    assert (tmp_path / "data" / "demo-2mm" / "mine.txt").exists()


def test_without_nilearn_the_message_says_what_to_install(monkeypatch):
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match="pip install nilearn"):
        demo_data.load_template()


def test_separable_upsampling_matches_map_coordinates():
    f = np.random.default_rng(0).random((2, 5, 6, 7)).astype(np.float32)
    shape = (20, 24, 21)
    grid = np.stack(
        np.meshgrid(
            *[(np.arange(s) + 0.5) * c / s - 0.5 for s, c in zip(shape, f.shape[1:], strict=True)], indexing="ij"
        )
    )
    ref = np.stack([ndimage.map_coordinates(x, grid, order=1, mode="nearest") for x in f])
    np.testing.assert_allclose(demo_data._upsample(f, shape), ref, atol=1e-6)
