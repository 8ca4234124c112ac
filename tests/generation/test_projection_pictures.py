"""The projection's comparison picture for every kind of target (rows and columns labelled, the baseline and
degraded input beside the projection), and the out-of-distribution rule (the warning end to end:
test_run_projector.py)."""

import numpy as np
import pytest
from PIL import Image

from dnnlib import EasyDict
from generation.projection_outputs import comparison_png, comparison_rows
from generation.projection_trust import FACTORS, out_of_distribution
from generation.restoration.forward_models import Degradation, Thicken
from generation.restoration.trivial_inverse import trivial_inverse_volume
from tests.utils import png_pixel
from volumes import visualize

AFF = np.diag([8.0, 8.0, 8.0, 1.0])
SHAPE = (20, 24, 28)


def _vol(seed):
    return np.random.RandomState(seed).uniform(-1, 1, (*SHAPE, 1)).astype(np.float32)


def _degraded_target(volume=True):
    deg = Degradation((Thicken(2, 4.0),))
    vol = _vol(0)
    t = EasyDict(name="t", volume=vol if volume else None, affine=AFF, degradation=deg,
                 degraded=deg(vol[None]).numpy()[0], grid_affine=deg.affine(AFF))
    return t, vol


@pytest.mark.parametrize("kind", ["dataset", "degraded", "image-own-geometry"])
def test_comparison_rows_for_every_kind_of_target(kind):
    proj = _vol(1)
    if kind == "dataset":
        t = EasyDict(name="t", volume=_vol(0), affine=AFF)
        want = ["target", "projection", "|target - projection|\nx4"]
    else:
        t, _ = _degraded_target(volume=kind == "degraded")
        want = (["target"] if kind == "degraded" else []) + [
            "degraded input", "baseline:\nlinear interpolation", "projection",
            "|target - projection|\nx4" if kind == "degraded" else "|input - degraded\nprojection| x4"]
    rows = comparison_rows(t, proj)
    assert [r[0] for r in rows] == want
    by = dict((r[0], r) for r in rows)
    np.testing.assert_allclose(by["projection"][1], (proj[..., 0] + 1) / 2, atol=1e-6)
    if kind != "dataset":
        # The degraded input is drawn on its own grid, in millimetres: 4x thicker voxels along axis 2.
        assert by["degraded input"][1].shape == (20, 24, 7) and list(by["degraded input"][2]) == [8, 8, 32]
        base = trivial_inverse_volume(t.degradation, t.degraded, SHAPE)
        np.testing.assert_allclose(by["baseline:\nlinear interpolation"][1], (base[..., 0] + 1) / 2, atol=1e-6)


def test_comparison_picture_labels_and_pixels(tmp_path):
    pytest.importorskip("matplotlib")
    t, vol = _degraded_target()
    proj = _vol(1)
    res = comparison_png(str(tmp_path / "c.png"), t, proj, title="t (dataset volume)")
    axes = np.asarray(res.figure.axes).reshape(5, 3)
    assert [a.get_ylabel() for a in axes[:, 0]] == [visualize.wrap_label(r[0]) for r in comparison_rows(t, proj)]
    assert axes[2, 0].get_ylabel() == "baseline:\nlinear\ninterpolation"
    assert [a.get_title() for a in axes[0]] == ["sagittal", "coronal", "axial"]
    png = np.asarray(Image.open(tmp_path / "c.png").convert("RGB"))
    for r, want in ((0, (vol[..., 0] + 1) / 2), (3, (proj[..., 0] + 1) / 2)):  # target, projection rows
        for a in range(3):
            sl = visualize.slice_2d(want, a)
            i, j = sl.shape[0] // 2, sl.shape[1] // 3
            assert abs(png_pixel(png, axes[r, a], i, j) - sl[i, j] * 255) <= 2, (r, a)


def test_out_of_distribution_rule():
    ref = np.array([0.010, 0.006])
    assert out_of_distribution(0.04, ref) is None  # 4x generated references: like the demo's held-out volumes
    why = out_of_distribution(0.07, ref)
    assert why.startswith("its final data term 0.07 is 7.0x the largest") and f"above {FACTORS['generated']:g}x" in why
    # Dataset references are like the scans themselves: a smaller factor.
    assert out_of_distribution(0.04, np.array([0.035, 0.03]), "dataset") is None
    why = out_of_distribution(0.076, np.array([0.035, 0.04]), "dataset")
    assert "1.9x the largest the network reaches on 2 of the dataset's volumes" in why
