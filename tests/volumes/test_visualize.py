"""Pictures: sizes, intensity mapping, and that anatomy lands on the documented side of each panel."""

import numpy as np
import pytest
from PIL import Image

from volumes import visualize as vz

SHAPE = (10, 12, 14)  # i: left->right, j: posterior->anterior, k: inferior->superior


def _marked():
    """Zero volume with bright voxels through the centre at the Right, Anterior and Superior ends."""
    v = np.zeros(SHAPE, np.float32)
    ci, cj, ck = (s // 2 for s in SHAPE)
    v[SHAPE[0] - 1, cj, ck] = 1.0  # right
    v[ci, SHAPE[1] - 1, ck] = 1.0  # anterior
    v[ci, cj, SHAPE[2] - 1] = 1.0  # superior
    return v


def _bright(img):
    ys, xs = np.nonzero(img > img.max() / 2)
    return set(zip(ys.tolist(), xs.tolist(), strict=True))


def test_slice_orientation_follows_viewer_conventions():
    v = _marked()
    sag, cor, ax = (vz.slice_2d(v, a) for a in range(3))
    assert sag.shape == (14, 12) and cor.shape == (14, 10) and ax.shape == (12, 10)
    # sagittal: superior at the top row, anterior at the right column
    assert (0, 6) in _bright(sag) and (6, 11) in _bright(sag)
    # coronal: superior at the top, subject's right on the right of the picture
    assert (0, 5) in _bright(cor) and (6, 9) in _bright(cor)
    # axial: anterior at the top, right on the right
    assert (0, 5) in _bright(ax) and (5, 9) in _bright(ax)


def test_mid_slices_png_file_and_range(tmp_path):
    v = _marked() * 2 - 1  # [-1, 1]: background -1 must be black, markers white
    path = tmp_path / "m.png"
    img = vz.mid_slices_png(path, v[None, ..., None], gap=2)
    png = np.asarray(Image.open(path))
    np.testing.assert_array_equal(png, img)
    assert png.shape == (14, 12 + 2 + 10 + 2 + 10)
    assert png.min() == 0 and png.max() == 255
    assert int(png.sum()) == 255 * 6  # three panels x two markers each


def test_mid_slices_batch_rows_and_scale(tmp_path):
    v = np.random.default_rng(0).random((3, *SHAPE)).astype(np.float32)
    img = vz.mid_slices_png(tmp_path / "b.png", v, scale=2, gap=1)
    assert img.shape == (2 * (3 * 14 + 2), 2 * (12 + 1 + 10 + 1 + 10))


def test_unit_range_maps_linearly():
    v = np.full(SHAPE, 0.5, np.float32)
    img = vz.mid_slices_image(v, gap=0)
    assert np.all((img == 128) | (img == 0))  # 0.5 -> 127.5 rounds to 128; padding is 0


def test_grid_png_layout(tmp_path):
    vols = np.stack([np.full(SHAPE, (n + 1) / 5, np.float32) for n in range(5)])[..., None]
    img = vz.grid_png(tmp_path / "g.png", vols, rows=2, cols=3, axis="coronal", gap=2)
    h, w = 14, 10
    assert img.shape == (2 * h + 2, 3 * w + 4)
    for n in range(5):
        r, c = divmod(n, 3)
        cell = img[r * (h + 2) : r * (h + 2) + h, c * (w + 2) : c * (w + 2) + w]
        assert np.all(cell == round((n + 1) / 5 * 255))
    assert np.all(img[h + 2 :, 2 * (w + 2) :] == 0)  # the sixth cell is empty


def test_grid_refuses_too_many_volumes(tmp_path):
    with pytest.raises(ValueError, match="do not fit"):
        vz.grid_png(tmp_path / "g.png", np.zeros((5, *SHAPE)), rows=2, cols=2)
