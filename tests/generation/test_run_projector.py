"""run_projector.py / generation.projection_command.run_projection end to end: image files, dataset indices and
generated seeds as targets in one batch, every per-target output, geometry of the written volumes, and flag errors."""

import csv
import json
import os
import shutil
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
import tensorflow as tf

from generation.projection_command import run_projection
from tests.utils import REPO, run_script
from training import configs
from training.network_io import export_generator, geometry_from_manifest
from training.run_files import OPTIONS_NAME as RUN_OPTIONS_NAME
from volumes import preprocess, records
from volumes.dataset_create import create_dataset
from volumes.manifest import load_manifest

# A source scan in LPS orientation at 4 mm: the dataset grid (RAS, 8 mm, 20x24x28) differs in every respect.
LPS4 = np.array([[-4.0, 0, 0, 60], [0, -4, 0, 70], [0, 0, 4, -70], [0, 0, 0, 1]])
SRC_SHAPE = (30, 34, 38)


def _head(seed):
    rng = np.random.default_rng(seed)
    g = np.meshgrid(*[np.arange(s) for s in SRC_SHAPE], indexing="ij")
    c = (np.asarray(SRC_SHAPE) - 1) / 2
    r2 = sum(((x - cc) / (0.35 * s)) ** 2 for x, cc, s in zip(g, c, SRC_SHAPE, strict=True))
    return np.where(r2 < 1, 100 + 30 * np.cos(g[2] / 4.0) + 5 * rng.random(SRC_SHAPE), 0).astype(np.float32)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("proj")
    scans = []
    for i in range(2):
        path = str(root / f"scan{i}.nii.gz")
        nib.save(nib.Nifti1Image(_head(i), LPS4), path)
        scans.append(path)
    data = str(root / "ds")
    create_dataset(scans, data, preprocess.default_options(spacing=[8.0, 8.0, 8.0], shape=[20, 24, 28]), workers=1,
                   verbose=False, log=lambda msg: None)
    manifest = load_manifest(data)
    tf.random.set_seed(0)
    G, _ = configs.build_networks(configs.get_config("demo-tiny"))
    # A run's layout: the SavedModel two folders below the run's options and its dataset.json copy (no shards).
    run = root / "run"
    net = str(run / "snapshots" / "generator")
    export_generator(G, geometry_from_manifest(manifest), net)
    shutil.copy(os.path.join(data, "dataset.json"), run / "dataset.json")
    (run / RUN_OPTIONS_NAME).write_text(json.dumps({"config": "demo-tiny"}))
    return dict(root=root, scans=scans, data=data, manifest=manifest, net=net)


def _opts(setup, outdir, **kw):
    o = dict(network=setup["net"], outdir=outdir, overwrite=False, data=None, targets=[], indices=[], target_seeds=[],
             num_steps=3, w_avg_samples=64, batch=4, progress_every=1, seed=0)
    o.update(kw)
    return o


def test_all_target_kinds_in_one_batch(setup, tmp_path, capsys):
    out = str(tmp_path / "p")
    summary = run_projection(_opts(setup, out, data=setup["data"], targets=[setup["scans"][0]],
                                             indices=[1], target_seeds=[4], w_plus=True))
    assert sorted(summary) == ["index00001", "scan0", "seed0004"]
    assert "step     3" in capsys.readouterr().out  # progress lines
    m = setup["manifest"]
    file_entry = {f["index"]: f for f in m.files}
    for name in summary:
        d = os.path.join(out, name)
        proj = nib.load(os.path.join(d, "projected.nii.gz"))
        assert proj.shape == (20, 24, 28)
        want_aff = {"scan0": file_entry[0]["affine"], "index00001": file_entry[1]["affine"],
                    "seed0004": m.affine}[name]  # scan0 is preprocessed exactly as dataset volume 0 was
        np.testing.assert_allclose(proj.affine, np.asarray(want_aff), atol=1e-5)
        assert np.load(os.path.join(d, "latent.npy")).shape == (6, 16)
        rows = list(csv.DictReader(open(os.path.join(d, "loss.csv"))))
        assert [int(r["step"]) for r in rows] == [1, 2, 3] and {"loss", "mse", "mse_down", "noise_reg"} <= set(rows[0])
        metrics = json.load(open(os.path.join(d, "metrics.json")))
        for k in ("psnr", "ssim_3d", "nrmse"):
            assert np.isfinite(metrics[k])
        for f in ("loss.png", "comparison.png", "target.nii.gz", "noise.npz"):
            assert os.path.getsize(os.path.join(d, f)) > 0
    # The file target matches the dataset's own copy of that scan (same pipeline), and its projection is also
    # written back in the scan's own grid.
    t = nib.load(os.path.join(out, "scan0", "target.nii.gz")).get_fdata()
    ref = next(records.iterate_records(setup["data"]))
    assert ref.index == 0
    from volumes.records import decode_volume

    np.testing.assert_allclose(t, decode_volume(ref.stored, m.storage_dtype).reshape(ref.shape), atol=1e-4)
    native = nib.load(os.path.join(out, "scan0", "projected_native.nii.gz"))
    assert native.shape == SRC_SHAPE
    np.testing.assert_allclose(native.affine, LPS4, atol=1e-5)
    intensity = file_entry[0]["transform"]["intensity"]  # written back in the scan's own units
    lo, hi, background = *intensity["clip"], intensity["background"]
    vals = native.get_fdata()
    # The scan's background (0, below the lower clip) where the projection is background, up to the upper clip.
    assert background == 0 < lo and vals.min() >= background - 1e-3 and vals.max() <= hi + 1e-3 and hi > 2
    assert not os.path.exists(os.path.join(out, "seed0004", "projected_native.nii.gz"))
    assert json.load(open(os.path.join(out, "seed0004", "metrics.json")))["w_rmse"] > 0
    saved = json.load(open(os.path.join(out, "projection.json")))
    assert saved["options"]["num_steps"] == 3 and set(saved["metrics"]) == set(summary)


def test_manifest_found_in_run_dir_and_outdir_protected(setup, tmp_path):
    out = tmp_path / "q"
    run_projection(_opts(setup, str(out), targets=[setup["scans"][1]], num_steps=1))
    assert (out / "scan1" / "projected_native.nii.gz").exists()
    with pytest.raises(FileExistsError, match="already exists"):
        run_projection(_opts(setup, str(out), target_seeds=[1], num_steps=1))
    assert not (out / "seed0001").exists()
    with pytest.raises(ValueError, match="no volumes with indices"):
        run_projection(_opts(setup, str(tmp_path / "r"), data=setup["data"], indices=[7]))
    assert not (tmp_path / "r").exists()


def _run(*args):
    return run_script("run_projector.py", *args)


def test_cli(setup, tmp_path):
    out = str(tmp_path / "cli")
    r = _run(f"--network={setup['net']}", "--target_seeds=2", "--num_steps=2", "--w_avg_samples=16",
             "--progress_every=1", f"--outdir={out}", "--degradation=thicken:axis=0,mm=16", "--output_grid=8",
             "--w_prior_weight=0.01")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "step     2" in r.stdout and os.path.isfile(os.path.join(out, "seed0002", "metrics.json"))
    assert nib.load(os.path.join(out, "seed0002", "degraded.nii.gz")).shape == (10, 24, 28)  # 16 mm = 2 voxels
    assert os.path.isfile(os.path.join(out, "seed0002", "restored_8mm.nii.gz"))
    saved = json.load(open(os.path.join(out, "projection.json")))["options"]
    assert (saved["degradation"], saved["output_grid"], saved["w_prior_weight"]) == ("thicken:axis=0,mm=16", 8, 0.01)
    r = _run(f"--network={setup['net']}", "--target_seeds=2", f"--outdir={out}")
    assert r.returncode == 2 and "already exists" in r.stderr and "Traceback" not in r.stderr


def test_outdir_around_a_target_or_the_dataset_is_refused(setup, tmp_path):
    scan = setup["scans"][0]
    for outdir, args in [(os.path.dirname(scan), [f"--target={scan}"]),
                         (os.path.join(setup["data"], "proj"), [f"--data={setup['data']}", "--indices=0"])]:
        before = sorted(os.listdir(os.path.dirname(outdir)))
        r = _run(f"--network={setup['net']}", f"--outdir={outdir}", "--overwrite", *args)
        assert r.returncode == 2 and "the input" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
        assert sorted(os.listdir(os.path.dirname(outdir))) == before


# Flag mistakes, caught before TensorFlow loads: (arguments, a phrase of the one-line error).
FLAG_ERRORS = [
    ([], "nothing to project"),
    (["--indices=0"], "--data"),
    (["--target={tmp}/none.nii.gz"], "none.nii.gz"),
    (["--target_seeds=1", "--num_steps=0"], "--num_steps"),
    (["--target_seeds=1", "--w_avg_samples=1"], "--w_avg_samples"),
    (["--target_seeds=1", "--batch=0"], "--batch"),
    (["--target_seeds=1", "--lr=0"], "--lr"),
    (["--target_seeds=1", "--ssim_weight=-1"], "--ssim_weight"),
    (["--target_seeds=1", "--label=a"], "--label=a"),
    (["--target_seeds=1", "extra"], "unexpected arguments"),
    (["--target_seeds=1", "--degradation=blur:sigma=1"], "--degradation: degradation part 1 'blur:sigma=1'"),
    (["--target_seeds=1", "--degradation=mask={tmp}/m.nii.gz"], "m.nii.gz: no such file"),
    (["--target_seeds=1", "--degradation=thicken:axis=1,mm=6", "--loss=mse+ssim"], "--loss=mse+ssim"),
    (["--target_seeds=1", "--degradation=native", "--output_grid=0"], "--output_grid=0"),
    (["--target_seeds=1", "--output_grid=1"], "--output_grid needs a --degradation"),
    (["--target_seeds=1", "--degradation=none", "--output_grid=1"], "other than 'none' (use --degradation=native"),
    (["--target={tmp}"], "holds no images"),
    (["--target_seeds=1", "--ood_reference=-1"], "--ood_reference=-1"),
    (["--target_seeds=1", "--w_prior_weight=-1"], "--w_prior_weight"),
]


@pytest.mark.parametrize("args, phrase", FLAG_ERRORS, ids=[" ".join(a) or "no targets" for a, _ in FLAG_ERRORS])
def test_flag_errors_exit_2_with_one_line(tmp_path, args, phrase):
    args = [a.format(tmp=tmp_path) for a in args]
    r = _run("--network=x", f"--outdir={tmp_path}/x", *args)
    assert r.returncode == 2 and phrase in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not os.path.exists(f"{tmp_path}/x")


def test_a_target_folder_of_files_stands_for_its_scans(tmp_path):
    # In a fresh Python: importing a front end defines its absl flags, which clash with a bench module's in a
    # worker that imported one.
    for name in ("b.nii.gz", "a.nrrd", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    code = ("import sys, run_projector; print(run_projector._target_files(sys.argv[1])); "
            "print(run_projector._target_files(sys.argv[2]))")
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "b.nii.gz")], cwd=REPO,
                       env=dict(os.environ, PYTHONPATH=REPO), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.splitlines() == [str([str(tmp_path / "a.nrrd"), str(tmp_path / "b.nii.gz")]),
                                     str([str(tmp_path / "b.nii.gz")])]


# ---------------------------------------------------------------------------------------------------------------
# Reconstruction studies (--degradation).

THICK_RAS = np.array([[8.0, 0, 0, -80], [0, 8, 0, -90], [0, 0, 20, -70], [0, 0, 0, 1]])  # 20 mm slices along k
THICK_SHAPE = (24, 28, 8)


def _thick_scan(root):
    rng = np.random.default_rng(3)
    g = np.meshgrid(*[np.arange(s) for s in THICK_SHAPE], indexing="ij")
    c = (np.asarray(THICK_SHAPE) - 1) / 2
    r2 = sum(((x - cc) / (0.4 * s)) ** 2 for x, cc, s in zip(g, c, THICK_SHAPE, strict=True))
    vol = np.where(r2 < 1, 100 + 20 * g[2] + 5 * rng.random(THICK_SHAPE), 0).astype(np.float32)
    path = str(root / "thick.nii.gz")
    nib.save(nib.Nifti1Image(vol, THICK_RAS), path)
    return path


def test_seed_and_dataset_targets_through_a_degradation(setup, tmp_path):
    out = str(tmp_path / "d")
    summary = run_projection(_opts(setup, out, data=setup["data"], indices=[0], target_seeds=[3],
                                   degradation="thicken:axis=2,mm=24;noise=0.1", output_grid=4.0,
                                   w_prior_weight=0.1))
    assert sorted(summary) == ["index00000", "seed0003"]
    m = setup["manifest"]
    for name, net_aff in (("index00000", m.files[0]["affine"]), ("seed0003", m.affine)):
        d = os.path.join(out, name)
        net_aff = np.asarray(net_aff)
        deg, tgt = (nib.load(os.path.join(d, f)) for f in ("degraded.nii.gz", "target_degraded.nii.gz"))
        assert deg.shape == tgt.shape == (20, 24, 9)  # 28 network slices of 8 mm -> 9 slices of 24 mm
        want = net_aff.copy()
        want[:3, 2] *= 3
        want[:3, 3] += net_aff[:3, 2]  # first thick slice centred on network slice 1
        np.testing.assert_allclose(deg.affine, want, atol=1e-4)
        np.testing.assert_allclose(tgt.affine, want, atol=1e-4)
        restored = nib.load(os.path.join(d, "restored_4mm.nii.gz"))
        assert restored.shape == (40, 48, 56)  # the network grid's field of view at 4 mm
        np.testing.assert_allclose(restored.affine[:3, :3], np.diag([4.0, 4, 4]), atol=1e-6)
        assert nib.load(os.path.join(d, "trivial_inverse.nii.gz")).shape == (20, 24, 28)
        metrics = json.load(open(os.path.join(d, "metrics.json")))
        assert metrics["missing_fraction"] == pytest.approx(1 - 9 / 28)
        for k in ("degraded_mse", "missing_mse_projection", "missing_mse_trivial_inverse", "psnr"):
            assert np.isfinite(metrics[k]), k
        rows = list(csv.DictReader(open(os.path.join(d, "loss.csv"))))
        assert float(rows[0]["w_prior"]) == 0 < float(rows[-1]["w_prior"])  # W starts at the mean
    record = json.load(open(os.path.join(out, "projection.json")))
    assert record["degradation"]["ops"][0]["factor"] == 3 and record["degradation"]["noise_sigma"] == 0.1
    assert record["options"]["degradation"] == "thicken:axis=2,mm=24;noise=0.1"


def test_thick_scan_is_compared_in_its_own_geometry(setup, tmp_path):
    scan = _thick_scan(tmp_path)
    out = str(tmp_path / "n")
    summary = run_projection(_opts(setup, out, data=setup["data"], targets=[scan], degradation="native",
                                   output_grid=4.0))
    d = os.path.join(out, "thick")
    tgt = nib.load(os.path.join(d, "target_degraded.nii.gz"))
    deg = nib.load(os.path.join(d, "degraded.nii.gz"))
    assert tgt.shape == deg.shape and tgt.shape[:2] == (20, 24) and 1 <= tgt.shape[2] <= THICK_SHAPE[2]
    np.testing.assert_allclose(tgt.affine, deg.affine, atol=1e-6)
    # The scan's own slices: 20 mm apart, each at the world position of one of the scan's slices.
    np.testing.assert_allclose(tgt.affine[:3, 2], [0, 0, 20], atol=1e-6)
    k = (tgt.affine[2, 3] - THICK_RAS[2, 3]) / 20
    assert abs(k - round(k)) < 1e-6
    assert not os.path.exists(os.path.join(d, "target.nii.gz"))  # nothing is known on the network grid
    assert nib.load(os.path.join(d, "projected_native.nii.gz")).shape == THICK_SHAPE
    restored = nib.load(os.path.join(d, "restored_4mm.nii.gz"))
    assert restored.shape == (48, 56, 40)  # the scan's field of view (192 x 224 x 160 mm) at 4 mm
    assert np.isfinite(summary["thick"]["degraded_mse"]) and "missing_mse_projection" not in summary["thick"]
    assert json.load(open(os.path.join(d, "degradation.json")))["ops"][0]["factor"] == 2.5


def test_millimetres_are_checked_against_the_networks_spacing(setup, tmp_path):
    # 4 mm slices are finer than the network's 8 mm voxels: known only once the network's geometry is read.
    out = tmp_path / "mm"
    with pytest.raises(ValueError, match=r"degradation part 1 'thicken:axis=2,mm=4'.*factor must be a number >= 1"):
        run_projection(_opts(setup, str(out), target_seeds=[1], degradation="thicken:axis=2,mm=4"))
    assert not out.exists()


def _stripes(path):
    """A scan no untrained network makes: 16 mm slabs alternating bright and dark through the whole field."""
    k = np.arange(SRC_SHAPE[2])
    vol = np.broadcast_to(np.where((k // 4) % 2 == 0, 100.0, 1.0), SRC_SHAPE).astype(np.float32)
    nib.save(nib.Nifti1Image(vol.copy(), LPS4), path)
    return path


def test_warning_fires_on_a_constructed_scan_and_not_on_a_generated_volume(setup, tmp_path, capsys):
    scan = _stripes(str(tmp_path / "stripes.nii.gz"))
    out = str(tmp_path / "p")
    summary = run_projection(_opts(setup, out, data=setup["data"], targets=[scan], target_seeds=[4],
                                   ood_reference=3))
    err = capsys.readouterr().err
    warned = [line for line in err.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and warned[0].startswith("warning: stripes: its final data term"), err
    assert summary["stripes"]["out_of_distribution"] and not summary["seed0004"]["out_of_distribution"]
    saved = json.load(open(os.path.join(out, "seed0004", "metrics.json")))
    # The dataset holds two volumes, fewer than the three references asked for: generated ones are used.
    assert len(saved["reference_data_terms"]) == 3 and saved["reference_kind"] == "generated"
    assert saved["data_term"] > 0
    for name in ("stripes", "seed0004"):
        assert os.path.isfile(os.path.join(out, name, "comparison.png"))


def test_dataset_references_are_volumes_that_are_not_targets(setup):
    from generation.projection_trust import reference_volumes

    kind, vols = reference_volumes(None, 1, None, setup["data"], exclude=[0])
    assert kind == "dataset"
    want = records.decode_volume(next(r for r in records.iterate_records(setup["data"]) if r.index == 1).stored,
                                 setup["manifest"].storage_dtype).reshape(20, 24, 28)
    np.testing.assert_allclose(vols[0, ..., 0], want * 2 - 1, atol=1e-6)
