"""Every command's input/output table and value checks, tried as a careless user would: each attack exits 2 with
one 'error:' line before any work, and every file is left as it was."""

import json
import os

import numpy as np
import pytest

from tests.utils import make_tiny_dataset, run_script


def _tree(root):
    out = {}
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = f.read()
    return out


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    t = tmp_path_factory.mktemp("io")
    make_tiny_dataset(str(t / "DS"), num=2)
    (t / "DIR").mkdir()
    (t / "DIR" / "mask.nii.gz").write_bytes(b"a user's mask")
    (t / "DIR" / "notes.txt").write_text("keep me")
    return t


# (script and arguments, what the error line says). {t} is the folder holding DS (a dataset) and DIR (user files).
ATTACKS = {
    "metrics --json onto the dataset's manifest": (
        ["run_metrics.py", "--network=demo", "--data={t}/DS", "--json={t}/DS/dataset.json", "--overwrite"],
        ["--json=", "lies inside the input"]),
    "metrics --json into the dataset": (
        ["run_metrics.py", "--network=demo", "--data={t}/DS", "--json={t}/DS/results.json"],
        ["lies inside the input"]),
    "metrics --json onto a user file": (
        ["run_metrics.py", "--network=demo", "--data={t}/DS", "--json={t}/DIR/notes.txt", "--overwrite"],
        ["did not write"]),
    "projector --outdir holding its mask": (
        ["run_projector.py", "--network=demo", "--target_seeds=0", "--degradation=mask={t}/DIR/mask.nii.gz",
         "--outdir={t}/DIR", "--overwrite"], ["contains the input", "mask.nii.gz"]),
    "training --outdir is its data": (
        ["run_training.py", "--data={t}/DS", "--outdir={t}/DS"], ["--outdir=", "is the input"]),
    "training --outdir inside its data": (
        ["run_training.py", "--data={t}/DS", "--outdir={t}/DS/results"], ["lies inside the input"]),
    "generate --psi=nan": (
        ["run_generator.py", "generate", "--network=demo", "--seeds=0", "--psi=nan", "--outdir={t}/g"],
        ["--psi=nan", "finite"]),
    "generate --psi=inf": (
        ["run_generator.py", "generate", "--network=demo", "--seeds=0", "--psi=inf", "--outdir={t}/g"],
        ["--psi=inf", "finite"]),
    "metrics --psi=nan": (
        ["run_metrics.py", "--network=demo", "--data={t}/DS", "--psi=nan"], ["--psi=nan"]),
    "projector --lr=inf": (
        ["run_projector.py", "--network=demo", "--target_seeds=0", "--lr=inf", "--outdir={t}/p"], ["--lr=inf"]),
    "projector --output_grid=nan": (
        ["run_projector.py", "--network=demo", "--target_seeds=0", "--degradation=none", "--output_grid=nan",
         "--outdir={t}/p"], ["--output_grid=nan"]),
    "generate --label=nan": (
        ["run_generator.py", "generate", "--network=demo", "--seeds=0", "--label=nan", "--outdir={t}/g"],
        ["--label=nan"]),
    "generate huge --seeds": (
        ["run_generator.py", "generate", "--network=demo", "--seeds=0-99999999999", "--outdir={t}/g"],
        ["--seeds="]),
    "generate many --seeds": (
        ["run_generator.py", "generate", "--network=demo", "--seeds=0-4000000000", "--outdir={t}/g"],
        ["--seeds=", "at most"]),
    "generate huge --batch": (
        ["run_generator.py", "generate", "--network=demo", "--seeds=0", "--batch=100000000", "--outdir={t}/g"],
        ["--batch=100000000"]),
    "interpolate negative seed": (
        ["run_generator.py", "interpolate", "--network=demo", "--seeds=-5,3", "--outdir={t}/g"], ["--seeds="]),
    "projector huge --target_seeds": (
        ["run_projector.py", "--network=demo", "--target_seeds=0-99999999999", "--outdir={t}/p"],
        ["--target_seeds="]),
    "projector huge --w_avg_samples": (
        ["run_projector.py", "--network=demo", "--target_seeds=0", "--w_avg_samples=10000000000",
         "--outdir={t}/p"], ["--w_avg_samples="]),
    "metrics huge --num": (
        ["run_metrics.py", "--network=demo", "--data={t}/DS", "--num=100000000000"], ["--num="]),
    "metrics huge --batch": (
        ["run_metrics.py", "--network=demo", "--data={t}/DS", "--batch=100000000"], ["--batch="]),
    "dataset create --spacing=nan": (
        ["dataset_tool.py", "create", "--input={t}/DIR", "--output={t}/new", "--spacing=nan"], ["--spacing="]),
    "dataset extract huge --indices": (
        ["dataset_tool.py", "extract", "--dataset={t}/DS", "--output={t}/x", "--indices=0-99999999999"],
        ["--indices="]),
}


@pytest.mark.parametrize("args,says", ATTACKS.values(), ids=ATTACKS.keys())
def test_attack_is_refused_before_any_work(place, args, says):
    before = _tree(place)
    r = run_script(args[0], *[a.format(t=place) for a in args[1:]], timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [line for line in r.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr[-2000:]
    for text in says:
        assert text in lines[0], lines[0]
    assert _tree(place) == before


@pytest.mark.parametrize("change", ["nan", "singular", "record nan"])
def test_dataset_with_a_non_finite_or_singular_affine_is_refused(tmp_path, change):
    ds = make_tiny_dataset(str(tmp_path / "DS"), num=2)
    path = os.path.join(ds, "dataset.json")
    with open(path) as f:
        m = json.load(f)
    if change == "nan":
        m["affine"][0][0] = float("nan")
    elif change == "singular":
        m["affine"][2] = [0.0, 0.0, 0.0, 0.0]
    else:
        m["files"] = [{"index": 1, "path": "b.nii.gz", "affine": np.diag([1.0, 1.0, float("nan"), 1.0]).tolist()}]
    with open(path, "w") as f:
        json.dump(m, f)
    r = run_script("dataset_tool.py", "info", f"--dataset={ds}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.startswith("error: ") and "affine" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_mask_or_template_is_judged_by_its_header_before_its_data_is_read(tmp_path):
    # A 1024^3 float32 header (4 GiB declared) over a few bytes of data: refused as too large, nothing allocated.
    import nibabel as nib

    from dnnlib.errors import InputError
    from generation.restoration.masks import read_mask
    from volumes.preprocess import Template

    hdr = nib.Nifti1Header()
    hdr.set_data_shape((1024, 1024, 1024))
    hdr.set_data_dtype(np.float32)
    path = tmp_path / "huge.nii"
    path.write_bytes(hdr.binaryblock + b"\0" * 4 + b"\0" * 64)
    for read in (read_mask, Template):
        with pytest.raises(InputError, match="too large"):
            read(str(path))
