"""generation/outputs.py: NIfTI values and affine, the output affine rule; the strip, GIF and grids that
volumes/visualize.py draws of generated volumes."""

import os
import warnings

import nibabel as nib
import numpy as np
import pytest

from generation import outputs
from volumes import visualize


def _volumes(n, seed=0):
    return np.tanh(np.random.RandomState(seed).randn(n, 20, 24, 28, 1)).astype(np.float32)


def test_write_volume_affine_and_values(tmp_path):
    vol = _volumes(1)[0] * 1.2  # also values beyond [-1, 1], which are clipped
    affine = np.array([[-8.0, 0, 0, 80], [0, 8, 0, -100], [0, 0, 8, -60], [0, 0, 0, 1]])
    path = str(tmp_path / "v.nii.gz")
    outputs.write_volume(path, vol, affine, uint8=True)
    img = nib.load(path)
    np.testing.assert_allclose(img.affine, affine)
    np.testing.assert_allclose(img.header.get_zooms(), (8, 8, 8))
    np.testing.assert_allclose(img.get_fdata(), np.clip((vol[..., 0] + 1) / 2, 0, 1), atol=1e-6)
    u8 = nib.load(str(tmp_path / "v_uint8.nii.gz"))
    assert u8.get_data_dtype() == np.uint8
    np.testing.assert_allclose(u8.get_fdata(), np.clip((vol[..., 0] + 1) / 2, 0, 1), atol=0.5 / 255 + 1e-6)


def test_output_affine_identity_warns_without_geometry():
    with pytest.warns(UserWarning, match="identity affine"):
        np.testing.assert_array_equal(outputs.output_affine({}, (2, 2, 2)), np.eye(4))
    aff = np.diag([2.0, 2, 2, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(outputs.output_affine({"affine": aff.tolist(), "shape": [2, 2, 2]},
                                                            (2, 2, 2)), aff)
    with pytest.raises(ValueError, match="invalid affine"):
        outputs.output_affine({"affine": np.eye(3).tolist()}, (2, 2, 2))


def test_strip_and_gif(tmp_path):
    from PIL import Image

    vols = _volumes(3)
    png, gif = str(tmp_path / "s.png"), str(tmp_path / "s.gif")
    visualize.write_strip_and_gif(png, gif, vols, axis=2)
    scale = visualize.png_scale((20, 24, 28))
    strip = np.asarray(Image.open(png))
    # Axial slices of 20x24 (i, j) are drawn 24 rows by 20 columns; three frames with 2-pixel gaps.
    assert strip.shape == (24 * scale, 3 * 20 * scale + 4)
    with Image.open(gif) as im:
        assert im.n_frames == 4  # forth and back: 0 1 2 1
    assert os.path.getsize(gif) > 0


def test_grids_one_per_orientation(tmp_path):
    visualize.write_grids(str(tmp_path / "grid"), _volumes(5), 2, 3)
    assert sorted(os.listdir(tmp_path)) == [f"grid_{name}.png" for name in sorted(visualize.PLANE_NAMES)]
