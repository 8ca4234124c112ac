"""run_latent.py's commands on a tiny network and dataset: embed (and its resume), atlas, regress, trajectory,
progress, and the bad inputs that must stop with one error before anything is written."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from generation.latent_stats import commands, embedding
from generation.latent_stats.latent_volumes import synthesize
from tests.utils import make_tiny_dataset, run_script, tiny_generator
from training.network_io import export_generator, geometry_from_manifest, load_generator
from volumes.manifest import load_manifest
from volumes.volume_io import to_unit_range

N = 6
AGES = [30.0, 42.0, 55.0, 61.0, 70.0, 78.0]


def _add_covariates(data):
    """The demo cohort's covariate format: files[i].covariates and a top-level description."""
    path = os.path.join(data, "dataset.json")
    with open(path) as f:
        m = json.load(f)
    m["files"] = [{"index": i, "covariates": {"age": AGES[i], "group": i % 2, "site": "AB"[i % 2],
                                               "site_code": i % 3}} for i in range(N)]
    m["covariates"] = {"age": {"kind": "continuous", "description": "years"},
                       "group": {"kind": "categorical", "description": "0 control, 1 patient"},
                       "site": {"kind": "categorical", "description": "scanner site"},
                       "site_code": {"kind": "categorical", "description": "site as a number"}}
    with open(path, "w") as f:
        json.dump(m, f)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("latent")
    data = make_tiny_dataset(str(root / "ds"), num=N)
    _add_covariates(data)
    net = str(root / "net")
    export_generator(tiny_generator(0), geometry_from_manifest(load_manifest(data)), net)
    emb = str(root / "emb")
    commands.run(_embed_opts(net, data, emb))
    return dict(root=root, data=data, net=net, emb=emb)


def _embed_opts(net, data, outdir, **kw):
    opts = dict(command="embed", network=net, data=data, outdir=outdir, num_steps=3, w_avg_samples=50, batch=3,
                progress_every=100, seed=0)
    opts.update(kw)
    return opts


def _nifti(path):
    img = nib.load(path)
    return np.asarray(img.dataobj, np.float32), img.affine


def test_embed_writes_latents_rows_and_projections(setup):
    emb = embedding.load_embedding(setup["emb"])
    G = load_generator(setup["net"]).G
    assert emb.latents.shape == (N, int(G.num_ws), int(G.w_dim))
    np.testing.assert_array_equal(emb.latents, np.repeat(emb.latents[:, :1], G.num_ws, axis=1))  # W, tiled
    assert [r["covariates"]["age"] for r in emb.record.rows] == AGES
    assert emb.record.covariate_kinds["group"] == "categorical"
    manifest = load_manifest(setup["data"])
    vol, affine = _nifti(os.path.join(setup["emb"], "projected", "index00003.nii.gz"))
    np.testing.assert_allclose(affine, manifest.affine)
    # The projection is the generator at the stored latent with the projection's noise: at least its range fits.
    assert vol.shape == tuple(manifest.shape) and 0 <= vol.min() and vol.max() <= 1
    assert os.path.isfile(os.path.join(setup["emb"], "embedding.png"))
    assert not os.path.exists(setup["emb"] + ".partial")


def test_embed_killed_and_resumed_gives_the_same_latents(setup, monkeypatch):
    out = str(setup["root"] / "emb-resumed")
    calls = []
    real = embedding.project_batch

    def dies_on_second_batch(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a SIGTERM/Ctrl-C would unwind
        return real(*args, **kwargs)

    monkeypatch.setattr(embedding, "project_batch", dies_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        commands.run(_embed_opts(setup["net"], setup["data"], out))
    part = out + ".partial"
    assert not os.path.exists(out) and sorted(os.listdir(os.path.join(part, "rows"))) == [
        "index00000.json", "index00001.json", "index00002.json"]
    # Another command's options never resume (nor touch) it.
    with pytest.raises(ValueError, match="other options \\(num_steps differ"):
        commands.run(_embed_opts(setup["net"], setup["data"], out, num_steps=4))
    calls.clear()
    monkeypatch.setattr(embedding, "project_batch", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    commands.run(_embed_opts(setup["net"], setup["data"], out))
    assert len(calls) == 1  # the batch not finished before
    np.testing.assert_array_equal(embedding.load_embedding(out).latents,
                                  embedding.load_embedding(setup["emb"]).latents)
    assert not os.path.exists(part)


def _atlas_opts(setup, outdir, **kw):
    return dict(dict(command="atlas", embedding=setup["emb"], outdir=outdir, segments=2, geodesic_steps=2), **kw)


def test_atlas_writes_three_atlases(setup):
    out = str(setup["root"] / "atlas")
    summary = commands.run(_atlas_opts(setup, out))
    manifest = load_manifest(setup["data"])
    emb = embedding.load_embedding(setup["emb"])
    G = load_generator(setup["net"]).G
    mean_latent, affine = _nifti(os.path.join(out, "atlas_mean_latent.nii.gz"))
    np.testing.assert_allclose(affine, manifest.affine)
    want = to_unit_range(synthesize(G, emb.latents.mean(axis=0, keepdims=True)))[0, ..., 0]
    np.testing.assert_allclose(mean_latent, want, atol=1e-5)
    from generation.projection_targets import dataset_targets

    vols = np.stack([t.volume for t in dataset_targets(setup["data"], list(range(N)))])
    voxel_mean, _ = _nifti(os.path.join(out, "atlas_voxel_mean.nii.gz"))
    np.testing.assert_allclose(voxel_mean, to_unit_range(vols.mean(axis=0))[..., 0], atol=1e-5)
    intrinsic = np.load(os.path.join(out, "intrinsic_mean_latent.npy"))
    assert intrinsic.shape == emb.latents.shape[1:]
    assert summary.sum_sq_geodesic_at_intrinsic_mean < summary.sum_sq_geodesic_at_arithmetic_mean
    assert len(summary.geodesic_distances) == N
    assert Image.open(os.path.join(out, "atlas.png")).size[1] > 3 * 20  # three rows


def test_regress_atlases_along_a_covariate(setup):
    out = str(setup["root"] / "regress")
    summary = commands.run(dict(command="regress", embedding=setup["emb"], outdir=out, at=["age", [30.0, 50.0, 70.0]],
                                covariates=["age", "group"], hold={"group": 1}, method="linear"))
    emb = embedding.load_embedding(setup["emb"])
    G = load_generator(setup["net"]).G
    # Independent fit: lstsq of the W rows on [1, age, group] and the atlas at age 70, group 1.
    X = np.array([[1.0, a, i % 2] for i, a in enumerate(AGES)])
    B = np.linalg.lstsq(X, emb.latents[:, 0].astype(np.float64), rcond=None)[0]
    w70 = np.array([1.0, 70.0, 1.0]) @ B
    want = to_unit_range(synthesize(G, np.repeat(w70[None, None], G.num_ws, axis=1)))[0, ..., 0]
    got, _ = _nifti(os.path.join(out, "atlas_age_70.nii.gz"))
    np.testing.assert_allclose(got, want, atol=1e-4)
    first, _ = _nifti(os.path.join(out, "atlas_age_30.nii.gz"))
    diff, _ = _nifti(os.path.join(out, "difference_age_70_minus_30.nii.gz"))
    np.testing.assert_allclose(diff, got - first, atol=1e-5)
    assert summary.held_at == {"age": pytest.approx(np.mean(AGES)), "group": 1.0}
    assert summary.cross_validation["folds"] == N
    assert Image.open(os.path.join(out, "atlases.gif")).n_frames == 4  # 3 atlases, forth and back
    with open(os.path.join(out, "latent_stats.json")) as f:
        assert json.load(f)["summary"]["design_columns"] == ["intercept", "age", "group=1"]


def test_trajectory_moves_a_subject_along_the_fitted_effect(setup):
    out = str(setup["root"] / "traj")
    summary = commands.run(dict(command="trajectory", embedding=setup["emb"], outdir=out, subject="2",
                                change="age=+20", method="linear", frames=3))
    emb = embedding.load_embedding(setup["emb"])
    G = load_generator(setup["net"]).G
    slope = np.polyfit(AGES, emb.latents[:, 0].astype(np.float64), 1)[0]
    w = emb.latents[2, 0] + 20 * slope
    want = to_unit_range(synthesize(G, np.repeat(w[None, None], G.num_ws, axis=1)))[0, ..., 0]
    got, _ = _nifti(os.path.join(out, "predicted.nii.gz"))
    np.testing.assert_allclose(got, want, atol=1e-4)
    base, _ = _nifti(os.path.join(out, "subject_reconstruction.nii.gz"))
    diff, _ = _nifti(os.path.join(out, "difference.nii.gz"))
    np.testing.assert_allclose(diff, got - base, atol=1e-5)
    assert summary.change == {"age": {"from": 55.0, "to": 75.0}}


def test_progress_shows_every_snapshot(setup):
    run = setup["root"] / "run"
    geometry = geometry_from_manifest(load_manifest(setup["data"]))
    for k, name in enumerate(["step00000002-kimg00000.008", "step00000001-kimg00000.004"]):
        export_generator(tiny_generator(k + 1), geometry, str(run / "snapshots" / name / "generator"))
    out = str(setup["root"] / "progress")
    summary = commands.run(dict(command="progress", run=str(run), seeds=[0, 1, 2], outdir=out))
    assert [s["step"] for s in summary.snapshots] == [1, 2]  # oldest first
    assert Image.open(os.path.join(out, "progress.gif")).n_frames == 2
    first, _ = _nifti(os.path.join(out, "volumes", "step00000001-kimg00000.004_seed0001.nii.gz"))
    from generation.runner import Runner
    from generation.sampling import generate

    want = to_unit_range(generate(Runner(tiny_generator(2)), [1], noise_mode="const"))[0, ..., 0]
    np.testing.assert_allclose(first, want, atol=1e-5)


@pytest.mark.parametrize("case", [
    dict(covariates=["agee"], at=["agee", [30.0]], match="covariate 'agee' is not in the cohort"),
    dict(covariates=["site"], at=["age", [30.0]], match="covariate 'site' holds text"),
    dict(covariates=["age", "group", "site_code"], at=["age", [30.0]], match="needs at least 7 subjects"),
    dict(covariates=["age"], at=["age", [30.0]], hold={"group": 1}, match="held covariates \\['group'\\] are not"),
    dict(covariates=["age"], at=["group", [0.0, 2.0]], match="'group' has levels \\[0.0, 1.0\\], not \\[2.0\\]"),
])
def test_regress_bad_covariates_write_nothing(setup, case):
    out = str(setup["root"] / "bad")
    with pytest.raises(ValueError, match=case["match"]):
        commands.run(dict(command="regress", embedding=setup["emb"], outdir=out, at=case["at"],
                          covariates=case["covariates"], hold=case.get("hold"), method="linear"))
    assert not os.path.exists(out)


def test_network_and_dataset_on_different_grids_write_nothing(setup):
    other = make_tiny_dataset(str(setup["root"] / "ds16"), num=2, shape=(16, 16, 16))
    out = str(setup["root"] / "grid-out")
    with pytest.raises(ValueError, match="different grids"):
        commands.run(_embed_opts(setup["net"], other, out))
    with pytest.raises(ValueError, match="different grids"):
        commands.run(dict(command="atlas", embedding=setup["emb"], data=other, outdir=out))
    assert not os.path.exists(out) and not os.path.exists(out + ".partial")


def test_cli_error_is_one_line_exit_2(setup):
    out = str(setup["root"] / "cli-out")
    r = run_script("run_latent.py", "regress", f"--embedding={setup['emb']}", "--at=sex=0,1", f"--outdir={out}")
    assert r.returncode == 2 and r.stderr.strip() == (
        f"error: {setup['emb']}/embedding.json: covariate 'sex' is not in the cohort (have age, group, site, "
        "site_code)")
    assert not os.path.exists(out)
