"""generation/projection_targets.py: target names, the manifest that preprocesses image targets, shape checks."""

import json

import numpy as np
import pytest

from dnnlib import EasyDict
from generation import projection_targets
from volumes import volume_io


def test_unique_names_number_repeats():
    assert projection_targets.unique_names(["a", "b", "a", "a"]) == ["a", "b", "a-1", "a-2"]


@pytest.mark.parametrize("path, stem", [
    ("/data/sub-01_T1w.nii.gz", "sub-01_T1w"),
    ("scan.NII", "scan"),
    ("brain.mgz", "brain"),
    ("/dicom/series7/", "series7"),
])
def test_target_names_are_file_stems(path, stem):
    assert volume_io.file_stem(path) == stem


def test_find_manifest_looks_up_to_three_folders_above_the_network_into_its_run(tmp_path):
    net = tmp_path / "run" / "snapshots" / "000010" / "generator"
    net.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no dataset.json") as e:
        projection_targets.find_manifest(str(net))
    assert "--" not in str(e.value)
    # Somebody's dataset.json in a folder that is not the network's run is not taken.
    (tmp_path / "run" / "dataset.json").write_text(json.dumps({"shape": [4, 4, 4], "spacing": [2, 2, 2]}))
    with pytest.raises(FileNotFoundError, match="no dataset.json"):
        projection_targets.find_manifest(str(net))
    (tmp_path / "run" / "training_options.json").write_text("{}")
    (tmp_path / "run" / "dataset.json").write_text(json.dumps({"shape": [4, 4, 4]}))
    with pytest.raises(ValueError, match="lacks shape/spacing"):
        projection_targets.find_manifest(str(net))
    (tmp_path / "run" / "dataset.json").write_text(json.dumps({"shape": [4, 4, 4], "spacing": [2, 2, 2]}))
    assert projection_targets.find_manifest(str(net)).spacing == [2, 2, 2]


def test_target_shapes_must_match_the_network():
    G = EasyDict(img_shape=(4, 5, 6), img_channels=1)
    good = EasyDict(name="a", volume=np.zeros([4, 5, 6, 1]))
    projection_targets.check_target_shapes([good], G)
    bad = EasyDict(name="b", volume=np.zeros([4, 5, 7, 1]), path="/x/b.nii.gz")
    with pytest.raises(ValueError, match=r"/x/b.nii.gz: target b has shape \(4, 5, 7, 1\)") as e:
        projection_targets.check_target_shapes([good, bad], G)
    assert "--" not in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# Image targets in their own geometry (reconstruction studies).

NET_SHAPE = (10, 12, 14)  # 2 mm
SCAN_AFFINE = np.diag([2.0, 2.0, 5.0, 1.0])  # RAS, the network's in-plane lattice, 5 mm slices (2.5 voxels)
SCAN_SHAPE = (10, 12, 6)
MANIFEST = EasyDict(shape=list(NET_SHAPE), spacing=[2.0, 2.0, 2.0], preprocessing={"center": "image"})


def _scan(tmp_path, affine=SCAN_AFFINE, name="scan.nii.gz", data=None):
    import nibabel as nib

    rng = np.random.RandomState(0)
    data = rng.uniform(10, 100, SCAN_SHAPE).astype(np.float32) if data is None else data
    path = str(tmp_path / name)
    nib.save(nib.Nifti1Image(data, affine), path)
    return path, data


def test_native_target_keeps_the_scans_own_slices(tmp_path):
    from generation.restoration.spec import parse_spec

    path, raw = _scan(tmp_path)
    mask = np.ones(SCAN_SHAPE, np.float32)
    mask[2:5, 3:6, 2] = 0
    mask_path, _ = _scan(tmp_path, name="mask.nii.gz", data=mask)
    deg = parse_spec(f"thicken:axis=2,mm=5,profile=gaussian;mask={mask_path};noise=0.1", network_spacing=[2, 2, 2])
    t = projection_targets.native_file_target(path, MANIFEST, NET_SHAPE, deg)
    # The network grid is centred on the scan (origin 0 after snapping to the scan's lattice); scan slices 1-4
    # (5..20 mm) are the ones whose 5 mm boxes lie inside its 28 mm: compared as acquired, not interpolated.
    np.testing.assert_allclose(t.affine, np.diag([2.0, 2, 2, 1]), atol=1e-9)
    lo, hi = t.transform["intensity"]["clip"]
    want = np.clip((raw[:, :, 1:5] - lo) / (hi - lo), 0, 1) * 2 - 1
    np.testing.assert_allclose(t.degraded[..., 0], want, atol=1e-5)
    np.testing.assert_allclose(t.grid_affine, [[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 5, 5], [0, 0, 0, 1]], atol=1e-9)
    (op,) = t.degradation.ops
    assert (op.axis, op.factor, op.first_centre, op.count, op.profile.kind) == (2, 2.5, 2.5, 4, "gaussian")
    assert t.degradation.output_shape(NET_SHAPE) == t.degraded.shape[:3] and t.degradation.sigma == 0.1
    np.testing.assert_array_equal(t.degradation.weights(), mask[:, :, 1:5])
    assert t.volume is None and t.fov[1] == SCAN_SHAPE


@pytest.mark.parametrize("case, match", [
    ("oblique", "points differently"),
    ("factor", "the degradation says 3"),
    ("fine_axis", r"thickens voxel axes \[0\]"),
    ("registered", "registered to"),
    ("mask_grid", "must be in the scan's space"),
])
def test_native_target_errors(tmp_path, case, match):
    from generation.restoration.spec import parse_spec

    affine = SCAN_AFFINE.copy()
    if case == "oblique":
        c, s = np.cos(0.3), np.sin(0.3)
        affine[:3, :3] = np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]) @ affine[:3, :3]
    path, _ = _scan(tmp_path, affine)
    spec, manifest = "native", MANIFEST
    if case == "factor":
        spec = "thicken:axis=2,factor=3"
    elif case == "fine_axis":
        spec = "thicken:axis=0,factor=2"
    elif case == "registered":
        manifest = EasyDict(MANIFEST, preprocessing={"register_to": "/x/template.nii.gz"})
    elif case == "mask_grid":
        mask_path, _ = _scan(tmp_path, np.diag([2.0, 2, 4, 1]), name="mask.nii.gz")
        spec = f"mask={mask_path}"
    with pytest.raises(ValueError, match=match) as e:
        projection_targets.native_file_target(path, manifest, NET_SHAPE, parse_spec(spec, [2, 2, 2]))
    assert "--" not in str(e.value)


# ---------------------------------------------------------------------------------------------------------------
# Dataset and seed targets through a degradation: what the mask hides is not in the input.

# (spec, factor along axis 2 (1 = no thickening)): the mask lives on the degraded grid.
DEGRADE_CASES = [("mask:path={mask},invert=1", 1), ("thicken:axis=2,factor=2;mask:path={mask},invert=1", 2)]


@pytest.mark.parametrize("spec, factor", DEGRADE_CASES, ids=["mask", "thick+mask"])
def test_degrade_target_blanks_what_the_mask_hides(tmp_path, spec, factor):
    from generation.restoration.restored import missing_information, missing_metrics
    from generation.restoration.spec import parse_spec
    from generation.restoration.trivial_inverse import trivial_inverse_volume

    rng = np.random.RandomState(3)
    volume = rng.uniform(-0.9, 0.9, (6, 8, 10, 1)).astype(np.float32)
    affine = np.diag([4.0, 4.0, 4.0, 1.0])
    grid = (6, 8, 10 // factor)
    block = np.zeros(grid, np.float32)
    block[2:4, 3:6, 1:3] = 1  # hidden (invert=1)
    grid_affine = affine.copy()
    grid_affine[2, 2] *= factor
    grid_affine[2, 3] += 4.0 * (factor - 1) / 2
    volume_io.write_nifti(str(tmp_path / "block.nii.gz"), block, grid_affine, dtype="uint8")
    deg = parse_spec(spec.format(mask=tmp_path / "block.nii.gz"), network_spacing=[4, 4, 4])
    t = projection_targets.degrade_target(EasyDict(name="x", volume=volume, affine=affine), deg)

    box = volume[..., 0].reshape(6, 8, 10 // factor, factor).mean(axis=-1)  # box thick slices, NumPy
    want = np.where(block > 0, -1.0, box)[..., None]
    np.testing.assert_allclose(t.degraded, want, atol=1e-6)
    np.testing.assert_array_equal(t.degradation.weights(), 1 - block)
    # The trivial inverse ("the mask left as is") no longer sees the truth under the block.
    missing = missing_information(t.degradation, volume.shape[:3])
    got = missing_metrics(volume, trivial_inverse_volume(t.degradation, t.degraded, volume.shape[:3]), missing)
    assert 0 < got["mse"] < np.inf
