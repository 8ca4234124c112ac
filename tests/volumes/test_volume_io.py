"""Volume I/O: axis order and world coordinates checked against SimpleITK's and nibabel's own readers."""

import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from dnnlib.fileutil import current_umask
from tests.utils import write_dicom_series
from volumes import volume_io as vio

LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _oblique_affine():
    # A rotation about z by 20 degrees, anisotropic voxels, an offset: nothing symmetric to hide bugs.
    c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
    rot = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])
    a = np.eye(4)
    a[:3, :3] = rot @ np.diag([2.0, 3.0, 4.0])
    a[:3, 3] = [-30.0, 12.5, 7.0]
    return a


def _volume(shape=(6, 7, 8), seed=0):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


def test_nifti_round_trip_is_exact_and_sets_qform_sform(tmp_path):
    vol, aff = _volume(), _oblique_affine()
    path = tmp_path / "v.nii.gz"
    vio.write_nifti(path, vol, aff)
    back, back_aff = vio.read_volume(path)
    np.testing.assert_array_equal(back, vol)
    np.testing.assert_allclose(back_aff, aff, atol=1e-5)
    img = nib.load(str(path))
    assert int(img.header["qform_code"]) == 1 and int(img.header["sform_code"]) == 1
    np.testing.assert_allclose(img.get_qform(), aff, atol=1e-5)
    np.testing.assert_allclose(img.header.get_zooms()[:3], [2.0, 3.0, 4.0], atol=1e-6)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~current_umask()


def test_nifti_channel_axis_of_one_is_dropped(tmp_path):
    vio.write_nifti(tmp_path / "c.nii", _volume()[..., None], np.eye(4))
    assert nib.load(str(tmp_path / "c.nii")).shape == (6, 7, 8)


def test_uint8_nifti_reads_back_in_unit_range(tmp_path):
    vol = _volume()
    vio.write_nifti(tmp_path / "u.nii.gz", vol, np.eye(4), dtype="uint8")
    img = nib.load(str(tmp_path / "u.nii.gz"))
    assert img.get_data_dtype() == np.uint8
    back = img.get_fdata()
    np.testing.assert_allclose(back, np.round(vol * 255) / 255, atol=1e-6)


def test_write_nifti_refuses_other_suffix(tmp_path):
    with pytest.raises(ValueError, match="v.mha"):
        vio.write_nifti(tmp_path / "v.mha", _volume(), np.eye(4))


@pytest.mark.parametrize("ext", [".mha", ".nrrd"])
def test_sitk_formats_axis_order_and_world_coordinates(tmp_path, ext):
    # Written with SimpleITK's own API in LPS; read back as RAS [i,j,k]; compared voxel by voxel.
    arr_kji = np.random.default_rng(1).random((8, 7, 6)).astype(np.float32)  # SimpleITK's [z,y,x]
    img = sitk.GetImageFromArray(arr_kji)
    img.SetSpacing((1.5, 2.0, 2.5))
    img.SetOrigin((10.0, -20.0, 5.0))
    c, s = np.cos(0.3), np.sin(0.3)
    img.SetDirection((c, 0, s, 0, 1, 0, -s, 0, c))
    path = str(tmp_path / f"v{ext}")
    sitk.WriteImage(img, path)
    vol, aff = vio.read_volume(path)
    assert vol.shape == (6, 7, 8)
    for ijk in [(0, 0, 0), (5, 6, 7), (2, 3, 4)]:
        assert vol[ijk] == img.GetPixel(*[int(v) for v in ijk])
        p_lps = np.asarray(img.TransformIndexToPhysicalPoint([int(v) for v in ijk]))
        p_ras = p_lps * [-1, -1, 1]
        np.testing.assert_allclose((aff @ [*ijk, 1])[:3], p_ras, atol=1e-5)


def test_nibabel_and_itk_readers_agree_on_oblique_nifti(tmp_path):
    vol, aff = _volume(), _oblique_affine()
    path = str(tmp_path / "o.nii.gz")
    nib.save(nib.Nifti1Image(vol, aff), path)
    arr, itk_aff = vio.sitk_to_array_affine(sitk.ReadImage(path))
    np.testing.assert_array_equal(arr, vol)
    np.testing.assert_allclose(itk_aff, aff, atol=1e-4)


def test_array_affine_to_sitk_inverts_sitk_to_array_affine():
    vol, aff = _volume(), _oblique_affine()
    img = vio.array_affine_to_sitk(vol, aff)
    np.testing.assert_allclose(
        np.asarray(img.TransformIndexToPhysicalPoint((1, 2, 3))) * [-1, -1, 1], (aff @ [1, 2, 3, 1])[:3], atol=1e-9
    )
    back, back_aff = vio.sitk_to_array_affine(img)
    np.testing.assert_array_equal(back, vol)
    np.testing.assert_allclose(back_aff, aff, atol=1e-9)


def test_mgz_is_read(tmp_path):
    vol, aff = _volume(), _oblique_affine()
    path = str(tmp_path / "v.mgz")
    nib.save(nib.MGHImage(vol, aff), path)
    back, back_aff = vio.read_volume(path)
    np.testing.assert_allclose(back, vol)
    np.testing.assert_allclose(back_aff, aff, atol=1e-4)
    img = vio.read_image(path)
    np.testing.assert_allclose(np.asarray(img.GetSpacing()), [2.0, 3.0, 4.0], atol=1e-5)


def test_dicom_series_folder(tmp_path):
    vol = (np.random.default_rng(2).random((5, 6, 4)) * 1000).astype(np.int16)
    img = sitk.GetImageFromArray(np.transpose(vol, (2, 1, 0)))
    img.SetSpacing((2.0, 2.0, 3.0))
    img.SetOrigin((5.0, 6.0, 7.0))
    d = tmp_path / "series"
    write_dicom_series(img, d, "1.2.826.0.1.3680043.2.1125.1", "{:03d}.dcm", tags={"0028|0030": "2\\2"})
    assert vio.is_dicom_dir(str(d))
    back, aff = vio.read_volume(str(d))
    np.testing.assert_array_equal(back, vol.astype(np.float32))
    np.testing.assert_allclose(aff[:3, 3], [-5.0, -6.0, 7.0], atol=1e-4)  # LPS origin -> RAS
    np.testing.assert_allclose(vio.voxel_sizes(aff), [2.0, 2.0, 3.0], atol=1e-4)


def test_reorient_to_ras_keeps_every_voxel_in_place():
    aff = np.array([[0, 0, -2.0, 40], [-3.0, 0, 0, 20], [0, 4.0, 0, -10], [0, 0, 0, 1]])  # axes point P, S, L
    vol = _volume((5, 6, 7))
    out, out_aff, _ = vio.reorient_to_ras(vol, aff)
    assert vio.orientation_codes(out_aff) == ("R", "A", "S")
    inv = np.linalg.inv(out_aff)
    for ijk in [(0, 0, 0), (4, 5, 6), (1, 2, 3)]:
        world = aff @ [*ijk, 1]
        new = np.round(inv @ world)[:3].astype(int)
        assert out[tuple(new)] == vol[ijk]


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b"not an image at all" * 10), "unreadable"),
        (lambda p: nib.save(nib.Nifti1Image(np.zeros((4, 5, 6, 3), np.float32), np.eye(4)), str(p)), "4D"),
        (lambda p: nib.save(nib.Nifti1Image(np.zeros((4, 5), np.float32), np.eye(4)), str(p)), "2D"),
    ],
)
def test_bad_files_raise_a_value_error_naming_the_file(tmp_path, make, message):
    p = tmp_path / "bad.nii"
    make(p)
    with pytest.raises(ValueError, match=message) as e:
        vio.read_volume(p)
    assert str(p) in str(e.value)


def test_truncated_gzip_nifti(tmp_path):
    p = tmp_path / "t.nii.gz"
    vio.write_nifti(p, _volume((20, 20, 20)), np.eye(4))
    data = p.read_bytes()
    p.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match="t.nii.gz: unreadable"):
        vio.read_volume(p)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such file"):
        vio.read_volume("/nonexistent/x.nii.gz")


@pytest.mark.parametrize(
    "path, stem",
    [
        ("scans/sub-01_T1w.nii.gz", "sub-01_T1w"),
        ("a/b.NII", "b"),
        ("x.mgz", "x"),
        ("x.mhd", "x"),
        ("x.nhdr", "x"),
        ("series/dicom/", "dicom"),
        ("notes.txt", "notes.txt"),
    ],
)
def test_file_stem(path, stem):
    assert vio.file_stem(path) == stem


def test_unit_range_and_network_range_map_onto_each_other():
    import tensorflow as tf

    unit = np.array([0.0, 0.25, 0.5, 1.0], np.float32)
    np.testing.assert_array_equal(vio.from_unit_range(unit), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_array_equal(vio.from_unit_range(tf.constant(unit)).numpy(), [-1.0, -0.5, 0.0, 1.0])
    np.testing.assert_array_equal(vio.to_unit_range(vio.from_unit_range(unit)), unit)
    np.testing.assert_array_equal(vio.to_unit_range([-3.0, 3.0]), [0.0, 1.0])  # clipped on the way out
