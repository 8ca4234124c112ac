"""generation/projection_targets.py: target names, the manifest that preprocesses image targets, shape checks."""

import json

import numpy as np
import pytest

from dnnlib import EasyDict
from generation import projection_targets


def test_unique_names_number_repeats():
    assert projection_targets.unique_names(["a", "b", "a", "a"]) == ["a", "b", "a-1", "a-2"]


@pytest.mark.parametrize("path, stem", [
    ("/data/sub-01_T1w.nii.gz", "sub-01_T1w"),
    ("scan.NII", "scan"),
    ("brain.mgz", "brain"),
    ("/dicom/series7/", "series7"),
])
def test_file_stem(path, stem):
    assert projection_targets.file_stem(path) == stem


def test_find_manifest_looks_up_to_three_folders_above_the_network(tmp_path):
    net = tmp_path / "run" / "snapshots" / "000010" / "generator"
    net.mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no dataset.json") as e:
        projection_targets.find_manifest(str(net))
    assert "--" not in str(e.value)
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
