"""run_generator.py end to end on a randomly initialised demo-tiny generator exported as a SavedModel."""

import json
import os
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from dnnlib.errors import UserError
from generation import sampling as generation
from generation.network_loader import export_generator, load_generator
from tests.utils import REPO
from training import configs

AFFINE = np.array([[8.0, 0, 0, -76], [0, 8, 0, -110], [0, 0, 8, -70], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    tf.random.set_seed(3)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    for layer in [lyr for b in G.synthesis.blocks for lyr in b.noise_layers()]:
        layer.noise_strength.assign(0.3)  # make noise visible, as in a trained network
    geometry = dict(shape=[20, 24, 28], spacing=[8.0, 8.0, 8.0], affine=AFFINE.tolist(), orientation="RAS",
                    mirror_axis=0)
    path = str(tmp_path_factory.mktemp("net") / "generator")
    export_generator(G, geometry, path)
    return path


def _run(*args):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, os.path.join(REPO, "run_generator.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def _load(path):
    img = nib.load(path)
    return img.get_fdata(dtype=np.float32), img.affine


def test_generate_cli_writes_nifti_with_the_data_affine(network, tmp_path):
    out = str(tmp_path / "gen")
    r = _run("generate", f"--network={network}", "--seeds=0-2", "--psi=0.7", "--uint8", f"--outdir={out}")
    assert r.returncode == 0, r.stderr[-2000:]
    for s in range(3):
        vol, aff = _load(os.path.join(out, f"seed{s:04d}.nii.gz"))
        assert vol.shape == (20, 24, 28) and 0 <= vol.min() and vol.max() <= 1
        np.testing.assert_allclose(aff, AFFINE)
        u8 = nib.load(os.path.join(out, f"seed{s:04d}_uint8.nii.gz"))
        assert u8.get_data_dtype() == np.uint8
        np.testing.assert_allclose(u8.affine, AFFINE)
        assert os.path.getsize(os.path.join(out, f"seed{s:04d}.png")) > 0
    for name in generation.ORIENTATIONS:
        assert os.path.isfile(os.path.join(out, f"grid_{name}.png"))
    opts = json.load(open(os.path.join(out, "generation.json")))["options"]
    assert opts["seeds"] == [0, 1, 2] and opts["noise_mode"] == "random"
    # Same seed, same volume: another process, another batch position.
    G = load_generator(network).G
    again = generation.generate(generation.Runner(G, batch_size=1), [1], psi=0.7, noise_mode="random")[0]
    np.testing.assert_allclose(_load(os.path.join(out, "seed0001.nii.gz"))[0], generation.to_unit_range(again)[..., 0],
                               atol=1e-5)


def test_cli_errors_exit_2_with_one_line(tmp_path):
    r = _run("--network=x", f"--outdir={tmp_path}/o", "--seeds=1")
    assert r.returncode == 2 and "give one command" in r.stderr
    r = _run("generate", "--network=x", f"--outdir={tmp_path}/o", "--seeds=5-2")
    assert r.returncode == 2 and "--seeds" in r.stderr
    r = _run("style-mix", "--network=x", f"--outdir={tmp_path}/o", "--row_seeds=1")
    assert r.returncode == 2 and "--col_seeds" in r.stderr
    r = _run("generate", f"--network={tmp_path}/missing", f"--outdir={tmp_path}/o", "--seeds=1")
    assert r.returncode == 2 and "missing" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(f"{tmp_path}/o")
    r = _run("generate", "--network=x", f"--outdir={tmp_path}", "--seeds=1")
    assert r.returncode == 2 and "already exists" in r.stderr


def _opts(network, outdir, command, **kw):
    base = dict(command=command, network=network, outdir=outdir, overwrite=False, psi=1.0, truncation_cutoff=None,
                noise_seed=0, class_idx=None, label=None, batch=4, uint8=False, noise_mode="const")
    base.update(kw)
    return base


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_style_mix_files_empty_range_is_row_all_layers_is_column(network, tmp_path, noise_mode):
    for styles in ("none", "all"):
        out = str(tmp_path / styles)
        generation.run_command(_opts(network, out, "style-mix", row_seeds=[1, 2], col_seeds=[3, 4], styles=styles,
                                     noise_mode=noise_mode))
        for r in (1, 2):
            for c in (3, 4):
                mix, aff = _load(os.path.join(out, f"mix-row{r:04d}-col{c:04d}.nii.gz"))
                np.testing.assert_allclose(aff, AFFINE)
                want = _load(os.path.join(out, f"seed{(r if styles == 'none' else c):04d}.nii.gz"))[0]
                other = _load(os.path.join(out, f"seed{(c if styles == 'none' else r):04d}.nii.gz"))[0]
                np.testing.assert_allclose(mix, want, atol=1e-5)
                assert np.abs(mix - other).max() > 1e-3
        for name in generation.ORIENTATIONS:
            assert os.path.isfile(os.path.join(out, f"stylemix_{name}.png"))


def test_style_mix_preset_and_bad_styles(network, tmp_path):
    s = generation.run_command(_opts(network, str(tmp_path / "fine"), "style-mix", row_seeds=[1], col_seeds=[2],
                                     styles="fine"))
    assert s.col_styles == [3, 4, 5]
    with pytest.raises(UserError, match="out of range"):
        generation.run_command(_opts(network, str(tmp_path / "bad"), "style-mix", row_seeds=[1], col_seeds=[2],
                                     styles="2-8"))
    assert not os.path.exists(tmp_path / "bad")


def test_interpolate_and_average(network, tmp_path):
    from PIL import Image

    out = str(tmp_path / "interp")
    s = generation.run_command(_opts(network, out, "interpolate", seeds=[1, 2, 3], frames=3, space="w",
                                     interp="slerp", axis=1, save_frames=True))
    assert s.frames == 5
    with Image.open(os.path.join(out, "interpolation.gif")) as im:
        assert im.n_frames == 8  # 5 frames forth, 3 back
    assert os.path.isfile(os.path.join(out, "interpolation.png"))
    first, aff = _load(os.path.join(out, "frame0000.nii.gz"))
    np.testing.assert_allclose(aff, AFFINE)

    avg = str(tmp_path / "avg")
    generation.run_command(_opts(network, avg, "average", seeds=list(range(5)), noise_mode="none"))
    mean, aff = _load(os.path.join(avg, "average.nii.gz"))
    np.testing.assert_allclose(aff, AFFINE)
    G = load_generator(network).G
    vols = generation.generate(generation.Runner(G, 5), list(range(5)), psi=1.0, noise_mode="none")
    np.testing.assert_allclose(mean, np.clip((vols.mean(0)[..., 0] + 1) / 2, 0, 1), atol=1e-5)
    assert os.path.isfile(os.path.join(avg, "average_w.nii.gz"))


def test_existing_outdir_is_not_overwritten_unless_asked(network, tmp_path):
    out = tmp_path / "exists"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(UserError, match="already exists"):
        generation.run_command(_opts(network, str(out), "generate", seeds=[0]))
    assert (out / "keep.txt").read_text() == "x"
    generation.run_command(_opts(network, str(out), "generate", seeds=[0], overwrite=True))
    assert not (out / "keep.txt").exists() and (out / "seed0000.nii.gz").exists()
