"""The shipped demo generators (pretrained/demo, pretrained/demo-wide): each loads by name, matches its record, writes
volumes in place, and its shipped checkpoint is the exported generator."""

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
SHIPPED = ["demo", "demo-wide"]  # each name is also the config it was trained with


@pytest.fixture(scope="module", params=SHIPPED)
def name(request):
    return request.param


@pytest.fixture(scope="module")
def record(name):
    with open(os.path.join(REPO, "pretrained", name, "record.json")) as f:
        return json.load(f)


@pytest.fixture(scope="module")
def demo(name):
    return load_generator(name)


def test_the_name_resolves_to_the_shipped_folder(tmp_path, monkeypatch):
    assert set(SHIPPED) <= set(pretrained.names())
    assert pretrained.resolve("demo") == DEMO
    monkeypatch.chdir(tmp_path)
    (tmp_path / "demo").mkdir()  # a folder of that name where the user is: neither is chosen silently
    with pytest.raises(InputError, match=r"'demo' is both a shipped network .* write ./demo for the path"):
        pretrained.resolve("demo")
    assert pretrained.resolve("./demo") == "./demo"
    assert pretrained.resolve(str(tmp_path / "demo")) == str(tmp_path / "demo")


def test_parameters_and_options_match_the_record(name, demo, record):
    from training.configs import build_networks
    from training.networks import count_params

    assert count_params(demo.G) == record["G_params"] == count_params(build_networks(name)[0])
    assert json.loads(json.dumps(demo.G.get_config())) == record["G_kwargs"]
    assert demo.options["config"] == record["config"] == name
    with open(os.path.join(REPO, "pretrained", name, "heldout", "dataset.json")) as f:
        assert json.load(f)["num_volumes"] == record["heldout_volumes"]


def test_generates_a_volume_with_the_datasets_affine(name, demo, tmp_path):
    from generation.outputs import output_affine, write_volume

    with open(os.path.join(REPO, "pretrained", name, "dataset.json")) as f:
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


def test_the_shipped_checkpoint_is_the_exported_generator(name, demo, record):
    run = load_generator(os.path.join(REPO, "pretrained", name, "run"))
    assert run.source.endswith(os.path.basename(record["checkpoint"]))
    z = tf.constant(np.random.RandomState(1).randn(2, demo.G.z_dim).astype(np.float32))
    np.testing.assert_allclose(run.G(z, noise_mode="const").numpy(), demo.G(z, noise_mode="const").numpy(),
                               atol=1e-5)


@pytest.mark.parametrize("shipped", SHIPPED)
def test_readme_generate_example_runs_on_the_shipped_network(tmp_path, shipped):
    from tests.utils import run_script

    outs = []
    for k in range(2):  # deterministic: the same seeds give the same volumes
        out = tmp_path / f"out{k}"
        r = run_script("run_generator.py", "generate", f"--network={shipped}", "--seeds=0-1", f"--outdir={out}")
        assert r.returncode == 0, r.stderr[-2000:]
        outs.append(np.asarray(nib.load(str(out / "seed0001.nii.gz")).dataobj))
    np.testing.assert_array_equal(outs[0], outs[1])


def test_the_shipped_run_continues_under_its_config(name):
    # What run_training.py --resume=pretrained/<name>/run checks before it restores anything: the networks its
    # config builds now (as training_loop records them) against the run's.
    from training.configs import build_networks, get_config
    from training.resume import check_resume_compatible
    from training.run_files import resumed_architecture

    def built(config):
        G, D = build_networks(config)
        return dict(G_kwargs=json.loads(json.dumps(G.get_config())), D_kwargs=json.loads(json.dumps(D.get_config())),
                    img_shape=get_config(config).img_shape, c_dim=0)

    before = resumed_architecture(os.path.join(REPO, "pretrained", name, "run"))
    check_resume_compatible(built(name), before, name)
    with pytest.raises(InputError, match=r"G_kwargs.synthesis_kwargs.fmap_base: checkpoint \d+ vs now \d+"):
        check_resume_compatible(built("demo-wide" if name == "demo" else "demo"), before, name)
