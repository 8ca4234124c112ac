"""Covariates: files[i].covariates with their description, else the label vectors stored in the records, decoded with
the manifest's schema."""

import json
import os

import numpy as np
import pytest

from generation.latent_stats.cohort import covariate_kinds, volume_covariates
from generation.latent_stats.embedding import _labels_of
from tests.utils import make_tiny_dataset
from volumes.manifest import load_manifest
from volumes.records import ShardedWriter, encode_volume, serialize_example

SCHEMA = {"c_dim": 3, "columns": [
    {"name": "sex", "type": "categorical", "categories": ["F", "M"], "offset": 0, "size": 2},
    {"name": "age", "type": "continuous", "mean": 50.0, "std": 10.0, "offset": 2, "size": 1}]}


def test_labelled_records_decode_to_covariates(tmp_path):
    data = make_tiny_dataset(str(tmp_path / "ds"), num=1, shape=(4, 4, 4))
    for f in os.listdir(data):
        if f.endswith(".gz"):
            os.remove(os.path.join(data, f))
    labels = np.array([[1, 0, -1.0], [0, 1, 2.5], [1, 0, 0.0]], np.float32)
    writer = ShardedWriter(data, 1)
    for i, c in enumerate(labels):
        writer.write(serialize_example(encode_volume(np.full((4, 4, 4), 0.5, np.float32)), i, c))
    with open(os.path.join(data, "dataset.json")) as f:
        m = json.load(f)
    m.update(shards=writer.close(), labels=SCHEMA, num_volumes=3)
    with open(os.path.join(data, "dataset.json"), "w") as f:
        json.dump(m, f)
    manifest = load_manifest(data)
    got = _labels_of(data, manifest, [2, 1])
    np.testing.assert_array_equal(got[1], labels[1])
    assert covariate_kinds(manifest) == {"sex": "categorical", "age": "continuous"}
    assert [volume_covariates(manifest, i, got[i]) for i in (1, 2)] == [{"sex": "M", "age": 75.0},
                                                                       {"sex": "F", "age": 50.0}]


def test_covariates_from_files_else_decoded_labels():
    described = {"covariates": {"age": {"kind": "continuous"}, "group": {"kind": "categorical"}},
                 "files": [{"index": 0, "covariates": {"age": 31.5, "group": 1}}], "labels": None}
    assert covariate_kinds(described) == {"age": "continuous", "group": "categorical"}
    assert volume_covariates(described, 0) == {"age": 31.5, "group": 1}
    schema = {"c_dim": 3, "columns": [
        {"name": "sex", "type": "categorical", "categories": ["F", "M"], "offset": 0, "size": 2},
        {"name": "age", "type": "continuous", "mean": 50.0, "std": 10.0, "offset": 2, "size": 1}]}
    labelled = {"files": [{"index": 0}], "labels": schema}
    assert covariate_kinds(labelled) == {"sex": "categorical", "age": "continuous"}
    assert volume_covariates(labelled, 0, np.array([0, 1, -1.5], np.float32)) == {"sex": "M", "age": 35.0}
    assert covariate_kinds({"files": [], "labels": None}) == {}
    with pytest.raises(ValueError, match="kind 'ordinal'"):
        covariate_kinds({"covariates": {"age": {"kind": "ordinal"}}})
