"""Dataset pictures (montage.png from create / extract / info --picture): labels, the pixels against the
volumes' mid-slices, and the partial field-of-view warning (fires on a small patch, not on a whole head)."""

import json

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import dataset_tool
from dnnlib.errors import UserError
from tests.utils import png_pixel
from volumes import preprocess, records, visualize
from volumes.dataset_pictures import MONTAGE_NAME, dataset_montage
from volumes.manifest import load_manifest
from volumes.records import iterate_records

pytest.importorskip("matplotlib")

RAS4 = np.array([[4.0, 0, 0, -40], [0, 4, 0, -48], [0, 0, 4, -56], [0, 0, 0, 1]])


def _head(shape, seed):
    rng = np.random.default_rng(seed)
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    c = (np.asarray(shape) - 1) / 2
    r2 = sum(((g - cc) / (0.4 * s)) ** 2 for g, cc, s in zip((ii, jj, kk), c, shape, strict=True))
    # A ramp along every axis, so a transposed or flipped slice would not match.
    return np.where(r2 < 1, 50 + ii + 2 * jj + 3 * kk + 5 * rng.random(shape), 0).astype(np.float32)


def _dataset(tmp_path, patch=False):
    scans = tmp_path / "scans"
    scans.mkdir()
    nib.save(nib.Nifti1Image(_head((22, 26, 30), 0), RAS4), str(scans / "whole.nii.gz"))
    nib.save(nib.Nifti1Image(_head((20, 24, 28), 1), RAS4), str(scans / "whole2.nii.gz"))
    if patch:  # a partial field of view: 8x10x6 voxels of 4 mm in a 20x24x28 grid
        nib.save(nib.Nifti1Image(_head((8, 10, 6), 2) + 1, RAS4), str(scans / "patch.nii.gz"))
    (scans / "broken.nii.gz").write_bytes(b"not a scan")
    f = dataset_tool.defaults()
    f.update(spacing="4", shape="20x24x28", workers=1, progress=False, input=str(scans), output=str(tmp_path / "ds"))
    assert dataset_tool.run("create", f) == 0
    return tmp_path / "ds"


def _unwrapped(label):
    return label.replace("\n", " ")


def test_montage_labels_and_pixels_equal_the_mid_slices(tmp_path):
    ds = _dataset(tmp_path)
    assert (ds / MONTAGE_NAME).is_file()  # create draws one
    res = dataset_montage(str(tmp_path / "look.png"), str(ds))
    m = load_manifest(str(ds))
    fig = res.figure
    axes = np.asarray(fig.axes).reshape(2, 3)
    names = {int(f["index"]): f["path"].split("/")[-1].split(".")[0] for f in m.files}
    assert [_unwrapped(a.get_ylabel()) for a in axes[:, 0]] == [f"{i}: {names[i]}" for i in range(2)]
    assert [a.get_title() for a in axes[0]] == ["sagittal", "coronal", "axial"]
    assert "ds: all 2 volumes, 20x24x28 at 4x4x4 mm" in fig._suptitle.get_text()
    assert "skipped 1:" in fig._supxlabel.get_text() and "broken.nii.gz" in fig._supxlabel.get_text()
    png = np.asarray(Image.open(tmp_path / "look.png").convert("RGB"))
    vols = {r.index: records.decode_volume(r.stored, m.storage_dtype).reshape(r.shape) for r in iterate_records(ds)}
    for r in range(2):
        for a in range(3):
            sl = visualize.slice_2d(vols[r], a)  # the volume's mid-slice, as documented in slice_2d
            rows, cols = sl.shape
            for i, j in [(rows // 2, cols // 2), (rows // 3, cols // 2), (rows // 2, 2 * cols // 3)]:
                assert abs(png_pixel(png, axes[r, a], i, j) - sl[i, j] * 255) <= 2, (r, a, i, j)


def test_extract_and_info_draw_the_montage(tmp_path, capsys):
    ds = _dataset(tmp_path)
    f = dataset_tool.defaults()
    f.update(dataset=str(ds), output=str(tmp_path / "nii"), indices="1", progress=False)
    dataset_tool.run("extract", f)
    assert Image.open(tmp_path / "nii" / MONTAGE_NAME).size[1] > 100
    f.update(picture=str(tmp_path / "info.png"))
    dataset_tool.run("info", f)
    assert f"picture: {tmp_path / 'info.png'}" in capsys.readouterr().out
    assert Image.open(tmp_path / "info.png").format == "PNG"
    with pytest.raises(UserError, match="--picture=.*info.png: already exists"):
        dataset_tool.run("info", f)


def test_partial_field_of_view_warns_and_a_whole_head_does_not(tmp_path, capsys):
    ds = _dataset(tmp_path, patch=True)
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("warning:") and "of the output grid" in line]
    assert len(warned) == 2 and "patch.nii.gz" in warned[0] and "1 scan(s)" in warned[1]
    m = json.load(open(ds / "dataset.json"))
    cov = {f["path"].split("/")[-1]: f["transform"]["coverage"] for f in m["files"]}
    # 8x10x6 voxels in 20x24x28 (the coverage is counted on every second voxel along each axis)
    assert cov["patch.nii.gz"] == pytest.approx(8 * 10 * 6 / (20 * 24 * 28), abs=0.03)
    assert cov["whole.nii.gz"] == 1.0 and cov["whole2.nii.gz"] == 1.0


def test_coverage_against_a_direct_count():
    # A registration-like map: output world shifted by 20 mm along x before reaching the source.
    out_aff = RAS4.copy()
    shift = np.eye(4)
    shift[0, 3] = 20.0
    got = preprocess.coverage(RAS4, (20, 24, 28), out_aff, (20, 24, 28), fixed_to_moving=shift, step=1)
    assert got == pytest.approx((20 - 5) / 20)  # 5 of 20 columns fall beyond the source's right edge
