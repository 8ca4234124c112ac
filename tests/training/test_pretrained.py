"""The shipped demo generator (pretrained/demo): it loads by name, matches its record, writes volumes in place."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from dnnlib.errors import InputError
from tests.utils import REPO
from training import pretrained
from training.network_io import load_generator

DEMO = os.path.join(REPO, "pretrained", "demo")


@pytest.fixture(scope="module")
def record():
    with open(os.path.join(DEMO, "record.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def demo():
    return load_generator("demo")


def test_the_name_resolves_to_the_shipped_folder(tmp_path, monkeypatch):
    assert "demo" in pretrained.names()
    assert pretrained.resolve("demo") == DEMO
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # a folder of that name where the user is: neither is chosen silently
    with pytest.raises(InputError, match=r"'demo' is both a shipped network .* write ./demo for the path"):
        pretrained.resolve("demo")
    assert pretrained.resolve("./demo") == "./demo"
    assert pretrained.resolve(str(tmp_path / "demo")) == str(tmp_path / "demo")


def test_parameters_and_options_match_the_record(demo, record):
    from training.networks import count_params

    assert count_params(demo.G) == record["G_params"]
    assert json.loads(json.dumps(demo.G.get_config())) == record["G_kwargs"]
    assert demo.options["config"] == record["config"] == "demo"
    with open(os.path.join(DEMO, "heldout", "dataset.json")) as f:
        assert json.load(f)["num_volumes"] == record["heldout_volumes"]


def test_generates_a_volume_with_the_datasets_affine(demo, tmp_path):
    from generation.outputs import output_affine, write_volume

    with open(os.path.join(DEMO, "dataset.json")) as f:
        manifest = json.load(f)
    affine = output_affine(demo.geometry, demo.G.img_shape)
    np.testing.assert_allclose(affine, np.asarray(manifest["affine"]))
    z = tf.constant(np.random.RandomState(0).randn(1, demo.G.z_dim).astype(np.float32))
    vol = demo.G(z, psi=0.5, noise_mode="const").numpy()[0]
    path = str(tmp_path / "seed0.nii.gz")
    write_volume(path, vol, affine)
    img = nib.load(path)
    assert img.shape == tuple(manifest["shape"])
    np.testing.assert_allclose(img.affine, np.asarray(manifest["affine"]), atol=1e-4)
    assert 0.05 < float(np.asarray(img.dataobj).std()) < 0.5  # a trained generator: structure, not a constant


def test_the_shipped_checkpoint_is_the_exported_generator(demo, record):
    run = load_generator(os.path.join(DEMO, "run"))
    assert run.source.endswith(os.path.basename(record["checkpoint"]))
    z = tf.constant(np.random.RandomState(1).randn(2, demo.G.z_dim).astype(np.float32))
    np.testing.assert_allclose(run.G(z, noise_mode="const").numpy(), demo.G(z, noise_mode="const").numpy(),
                               atol=1e-5)


def test_readme_generate_example_runs_on_the_shipped_network(tmp_path):
    from tests.utils import run_script

    r = run_script("run_generator.py", "generate", "--network=demo", "--seeds=0-1", f"--outdir={tmp_path / 'out'}")
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / "out" / "seed0001.nii.gz").is_file()
