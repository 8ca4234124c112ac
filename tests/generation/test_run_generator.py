"""run_generator.py end to end on a randomly initialised demo-tiny generator exported as a SavedModel."""

import json
import os

import nibabel as nib
import numpy as np
import pytest

from generation import commands, sampling
from generation.runner import Runner
from tests.utils import run_script, tiny_generator
from training.network_io import export_generator, load_generator
from volumes.visualize import PLANE_NAMES as ORIENTATIONS
from volumes.volume_io import to_unit_range

AFFINE = np.array([[8.0, 0, 0, -76], [0, 8, 0, -110], [0, 0, 8, -70], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    G = tiny_generator(seed=3, noise_strength=0.3)  # noise visible, as in a trained network
    geometry = dict(shape=[20, 24, 28], spacing=[8.0, 8.0, 8.0], affine=AFFINE.tolist(), orientation="RAS",
                    mirror_axis=0)
    path = str(tmp_path_factory.mktemp("net") / "generator")
    export_generator(G, geometry, path)
    return path


def _run(*args):
    return run_script("run_generator.py", *args)


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
    for name in ORIENTATIONS:
        assert os.path.isfile(os.path.join(out, f"grid_{name}.png"))
    assert os.path.isfile(os.path.join(out, "seeds.png"))
    opts = json.load(open(os.path.join(out, "generation.json")))["options"]
    assert opts["seeds"] == [0, 1, 2] and opts["noise_mode"] == "random"
    # Same seed, same volume: another process, another batch position.
    G = load_generator(network).G
    again = sampling.generate(Runner(G, batch_size=1), [1], psi=0.7, noise_mode="random")[0]
    np.testing.assert_allclose(_load(os.path.join(out, "seed0001.nii.gz"))[0], to_unit_range(again)[..., 0],
                               atol=1e-5)


def test_seeds_picture_names_each_row(tmp_path):
    pytest.importorskip("matplotlib")
    vols = np.random.RandomState(0).uniform(-1, 1, (2, 6, 8, 10, 1)).astype(np.float32)
    res = commands._seeds_picture(str(tmp_path / "seeds.png"), vols, [5, 9, 11], 0.5)
    axes = np.asarray(res.figure.axes).reshape(2, 3)
    assert [a.get_ylabel() for a in axes[:, 0]] == ["seed 5", "seed 9"]
    assert res.figure._suptitle.get_text() == "generated volumes (psi 0.5)"
    np.testing.assert_allclose(axes[1, 2].images[0].get_array(), (vols[1, :, :, 5, 0].T[::-1] + 1) / 2, atol=1e-6)


# Flag mistakes, caught before TensorFlow loads: (arguments, a phrase of the one-line error).
FLAG_ERRORS = [
    (["--seeds=1"], "give one command"),
    (["generate", "--seeds=5-2"], "--seeds"),
    (["generate"], "needs --seeds"),
    (["style-mix", "--row_seeds=1"], "--col_seeds"),
    (["interpolate", "--seeds=1"], "at least two --seeds"),
    (["interpolate", "--seeds=1,2", "--frames=1"], "--frames=1"),
    (["interpolate", "--seeds=1,2", "--axis=3"], "--axis=3"),
    (["generate", "--seeds=1", "--batch=0"], "--batch=0"),
    (["generate", "--seeds=1", "--label=a,b"], "--label=a,b"),
]


@pytest.mark.parametrize("args, phrase", FLAG_ERRORS, ids=[" ".join(a) for a, _ in FLAG_ERRORS])
def test_flag_errors_exit_2_with_one_line(tmp_path, args, phrase):
    r = _run(*args, "--network=x", f"--outdir={tmp_path}/o")
    assert r.returncode == 2 and phrase in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not os.path.exists(f"{tmp_path}/o")


def test_library_errors_exit_2_with_one_line(tmp_path):
    r = _run("generate", f"--network={tmp_path}/missing", f"--outdir={tmp_path}/o", "--seeds=1")
    assert r.returncode == 2 and "missing" in r.stderr and "Traceback" not in r.stderr
    assert not os.path.exists(f"{tmp_path}/o")
    r = _run("generate", "--network=x", f"--outdir={tmp_path}", "--seeds=1")
    assert r.returncode == 2 and "already exists" in r.stderr


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


# --outdir values that could lose data (relative to a folder holding results/00003-x/generator and notes/keep.txt):
# each exits 2 with one line naming both paths, whatever --overwrite says, and every file stays in place.
UNSAFE_OUTDIRS = [
    ("results", "contains the input"),
    ("results/00003-x/generator", "is the input"),
    ("results/00003-x/generator/out", "lies inside the input"),
    ("notes", "did not write"),
]


@pytest.mark.parametrize("outdir, phrase", UNSAFE_OUTDIRS, ids=[o for o, _ in UNSAFE_OUTDIRS])
def test_unsafe_outdir_is_refused_and_nothing_moves(network, tmp_path, outdir, phrase):
    import shutil

    shutil.copytree(network, tmp_path / "results" / "00003-x" / "generator")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    before = _tree(tmp_path)
    net = tmp_path / "results" / "00003-x" / "generator"
    r = _run("generate", f"--network={net}", "--seeds=1", f"--outdir={tmp_path / outdir}", "--overwrite")
    assert r.returncode == 2 and phrase in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(r.stderr.strip().splitlines()) == 1 and "--outdir" in r.stderr
    assert _tree(tmp_path) == before


def test_current_folder_is_never_an_outdir(network):
    r = _run("generate", f"--network={network}", "--seeds=1", "--outdir=.", "--overwrite")
    assert r.returncode == 2 and "current folder" in r.stderr


def _opts(network, outdir, command, **kw):
    base = dict(command=command, network=network, outdir=outdir, overwrite=False, psi=1.0, truncation_cutoff=None,
                noise_seed=0, class_idx=None, label=None, batch=4, uint8=False, noise_mode="const")
    base.update(kw)
    return base


@pytest.mark.parametrize("noise_mode", ["const", "random"])
def test_style_mix_files_empty_range_is_row_all_layers_is_column(network, tmp_path, noise_mode):
    for styles in ("none", "all"):
        out = str(tmp_path / styles)
        commands.run(_opts(network, out, "style-mix", row_seeds=[1, 2], col_seeds=[3, 4], styles=styles,
                                     noise_mode=noise_mode))
        for r in (1, 2):
            for c in (3, 4):
                mix, aff = _load(os.path.join(out, f"mix-row{r:04d}-col{c:04d}.nii.gz"))
                np.testing.assert_allclose(aff, AFFINE)
                want = _load(os.path.join(out, f"seed{(r if styles == 'none' else c):04d}.nii.gz"))[0]
                other = _load(os.path.join(out, f"seed{(c if styles == 'none' else r):04d}.nii.gz"))[0]
                np.testing.assert_allclose(mix, want, atol=1e-5)
                assert np.abs(mix - other).max() > 1e-3
        for name in ORIENTATIONS:
            assert os.path.isfile(os.path.join(out, f"stylemix_{name}.png"))


def test_style_mix_preset_and_bad_styles(network, tmp_path):
    s = commands.run(_opts(network, str(tmp_path / "fine"), "style-mix", row_seeds=[1], col_seeds=[2],
                                     styles="fine"))
    assert s.col_styles == [3, 4, 5]
    with pytest.raises(ValueError, match="out of range"):
        commands.run(_opts(network, str(tmp_path / "bad"), "style-mix", row_seeds=[1], col_seeds=[2],
                                     styles="2-8"))
    assert not os.path.exists(tmp_path / "bad")


def test_interpolate_and_average(network, tmp_path):
    from PIL import Image

    out = str(tmp_path / "interp")
    s = commands.run(_opts(network, out, "interpolate", seeds=[1, 2, 3], frames=3, space="w",
                                     interp="slerp", axis=1, save_frames=True))
    assert s.frames == 5
    with Image.open(os.path.join(out, "interpolation.gif")) as im:
        assert im.n_frames == 8  # 5 frames forth, 3 back
    assert os.path.isfile(os.path.join(out, "interpolation.png"))
    first, aff = _load(os.path.join(out, "frame0000.nii.gz"))
    np.testing.assert_allclose(aff, AFFINE)
    frames = [_load(os.path.join(out, f"frame{f:04d}.nii.gz"))[0] for f in range(5)]
    # The change printed and recorded is measured on the frames written: consecutive frames and segment ends.
    want_consecutive = np.mean([np.abs(b - a) for a, b in zip(frames, frames[1:], strict=False)])
    assert s.mean_abs_change["consecutive"] == pytest.approx(want_consecutive, rel=1e-4)
    assert s.mean_abs_change["ends"] == pytest.approx([np.abs(frames[2] - frames[0]).mean(),
                                                       np.abs(frames[4] - frames[2]).mean()], rel=1e-4)
    pytest.importorskip("matplotlib")
    assert Image.open(os.path.join(out, "interpolation_frames.png")).size[1] > 300

    avg = str(tmp_path / "avg")
    commands.run(_opts(network, avg, "average", seeds=list(range(5)), noise_mode="none"))
    mean, aff = _load(os.path.join(avg, "average.nii.gz"))
    np.testing.assert_allclose(aff, AFFINE)
    G = load_generator(network).G
    vols = sampling.generate(Runner(G, 5), list(range(5)), psi=1.0, noise_mode="none")
    np.testing.assert_allclose(mean, np.clip((vols.mean(0)[..., 0] + 1) / 2, 0, 1), atol=1e-5)
    assert os.path.isfile(os.path.join(avg, "average_w.nii.gz"))


def test_existing_outdir_is_not_overwritten_unless_asked(network, tmp_path):
    out = tmp_path / "exists"
    commands.run(_opts(network, str(out), "generate", seeds=[0]))
    with pytest.raises(FileExistsError, match="already exists"):
        commands.run(_opts(network, str(out), "generate", seeds=[1]))
    assert (out / "seed0000.nii.gz").exists() and not (out / "seed0001.nii.gz").exists()
    commands.run(_opts(network, str(out), "generate", seeds=[1], overwrite=True))
    assert not (out / "seed0000.nii.gz").exists() and (out / "seed0001.nii.gz").exists()
    (out / "seed0001.nii.gz").write_text("x")  # edited by the user: no longer what the output's record lists
    with pytest.raises(ValueError, match="seed0001.nii.gz"):
        commands.run(_opts(network, str(out), "generate", seeds=[2], overwrite=True))
    assert (out / "seed0001.nii.gz").read_text() == "x" and not (out / "seed0002.nii.gz").exists()


def _fake_projection(network, root, seeds, psi):
    """Projector-style folders <root>/t<seed>/latent.npy + noise.npz holding exactly the seeds' ws and noise."""
    from generation.seeds import seeds_to_z

    runner = Runner(load_generator(network).G, batch_size=2)
    ws = runner.map(seeds_to_z(seeds, runner.z_dim), psi=psi)
    noise = runner.seeds_noise(seeds)
    for i, s in enumerate(seeds):
        os.makedirs(root / f"t{s}")
        np.save(root / f"t{s}" / "latent.npy", ws[i])
        np.savez(root / f"t{s}" / "noise.npz", *[n[i] for n in noise])
    return ws


def test_projected_w_resynthesises_generates_mixes_and_interpolates(network, tmp_path):
    _fake_projection(network, tmp_path / "proj", [1, 2], psi=0.5)
    ref = str(tmp_path / "ref")
    commands.run(_opts(network, ref, "generate", seeds=[1, 2], psi=0.5, noise_mode="random"))
    out = str(tmp_path / "gen")
    # --latent: StyleGAN2-ADA users' name; the projection's own noise maps come with it.
    r = _run("generate", f"--network={network}", f"--latent={tmp_path / 'proj'}", f"--outdir={out}")
    assert r.returncode == 0, r.stderr[-2000:]
    for s in (1, 2):  # a latent that is exactly seed s's gives back seed s's volume
        np.testing.assert_allclose(_load(os.path.join(out, f"t{s}.nii.gz"))[0],
                                   _load(os.path.join(ref, f"seed{s:04d}.nii.gz"))[0], atol=1e-5)
    one = str(tmp_path / "one")  # one target's folder
    commands.run(_opts(network, one, "generate", projected_w=str(tmp_path / "proj" / "t2")))
    assert sorted(f for f in os.listdir(one) if f.endswith(".nii.gz")) == ["t2.nii.gz"]

    mix = str(tmp_path / "mix")
    commands.run(_opts(network, mix, "style-mix", projected_w=str(tmp_path / "proj"), col_seeds=[3], styles="none"))
    np.testing.assert_allclose(_load(os.path.join(mix, "mix-rowt1-col0003.nii.gz"))[0],
                               _load(os.path.join(mix, "t1.nii.gz"))[0], atol=1e-5)
    interp = str(tmp_path / "interp")
    commands.run(_opts(network, interp, "interpolate", projected_w=str(tmp_path / "proj"), frames=3, space="w",
                       interp="linear", axis=2, save_frames=True))
    np.testing.assert_allclose(_load(os.path.join(interp, "frame0000.nii.gz"))[0],
                               _load(os.path.join(mix, "t1.nii.gz"))[0], atol=1e-5)


PROJECTED_W_ERRORS = [
    (["average", "--projected_w=."], "not average"),
    (["generate", "--projected_w=.", "--seeds=1"], "replaces --seeds"),
    (["style-mix", "--projected_w=."], "needs --col_seeds"),
    (["interpolate", "--projected_w=.", "--space=z"], "no z"),
]


@pytest.mark.parametrize("args, phrase", PROJECTED_W_ERRORS, ids=[" ".join(a) for a, _ in PROJECTED_W_ERRORS])
def test_projected_w_flag_errors(tmp_path, args, phrase):
    r = _run(*args, "--network=x", f"--outdir={tmp_path}/o")
    assert r.returncode == 2 and phrase in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_projected_w_of_another_network_is_refused(network, tmp_path):
    np.save(tmp_path / "w.npy", np.zeros([3, 7], np.float32))
    with pytest.raises(ValueError, match="does not fit this network"):
        commands.run(_opts(network, str(tmp_path / "o"), "generate", projected_w=str(tmp_path / "w.npy")))
    assert not os.path.exists(tmp_path / "o")
