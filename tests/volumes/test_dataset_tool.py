"""dataset_tool.py: create -> records -> extract round trips in world coordinates, bad inputs, labels,
info verification, split, flag validation (UserError naming the flag), the one options object, and the
command line's exit codes."""

import json
import os

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

import dataset_tool
from dnnlib.errors import UserError
from dnnlib.fileutil import current_umask
from tests.utils import run_script, write_dicom_series
from volumes import preprocess
from volumes import volume_io as vio

OUT_SHAPE = "20x24x28"

# Source grids: two orientations besides RAS, two spacings (4 mm -> exact crop, 8 mm -> resampled).
RAS4 = np.array([[4.0, 0, 0, -50], [0, 4, 0, -60], [0, 0, 4, -70], [0, 0, 0, 1]])
LPS4 = np.array([[-4.0, 0, 0, 50], [0, -4, 0, 60], [0, 0, 4, -70], [0, 0, 0, 1]])
LIA8 = np.array([[-8.0, 0, 0, 60], [0, 0, 8, -70], [0, -8, 0, 70], [0, 0, 0, 1]])


def _head(shape, seed):
    rng = np.random.default_rng(seed)
    ii, jj, kk = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    c = (np.asarray(shape) - 1) / 2
    r2 = sum(((g - cc) / (0.32 * s)) ** 2 for g, cc, s in zip((ii, jj, kk), c, shape, strict=True))
    return np.where(r2 < 1, 100 + 20 * rng.random(shape), 0).astype(np.float32)


def _write_sitk(path, vol, affine):
    sitk.WriteImage(vio.array_affine_to_sitk(vol, affine), str(path))


def _opts(**kw):
    f = dataset_tool.defaults()
    f.update(spacing="4", shape=OUT_SHAPE, workers=1, progress=False)
    f.update(kw)
    return f


def _sources(folder):
    folder.mkdir(exist_ok=True)
    src = {
        "a.nii.gz": (_head((30, 34, 38), 0), RAS4),
        "b.mha": (_head((28, 30, 36), 1), LPS4),
        "c.nrrd": (_head((14, 18, 16), 2), LIA8),
    }
    nib.save(nib.Nifti1Image(*src["a.nii.gz"]), str(folder / "a.nii.gz"))
    _write_sitk(folder / "b.mha", *src["b.mha"])
    _write_sitk(folder / "c.nrrd", *src["c.nrrd"])
    return src


def test_round_trip_keeps_voxels_at_their_world_positions(tmp_path):
    src = _sources(tmp_path / "scans")
    assert dataset_tool.run("create", _opts(input=str(tmp_path / "scans"), output=str(tmp_path / "ds"))) == 0
    m = json.load(open(tmp_path / "ds" / "dataset.json"))
    assert m["num_volumes"] == 3 and m["shape"] == [20, 24, 28] and m["orientation"] == "RAS"
    assert m["spacing"] == [4.0, 4.0, 4.0] and m["storage_dtype"] == "uint16" and m["synthetic"] is False
    assert dataset_tool.run("extract", _opts(dataset=str(tmp_path / "ds"), output=str(tmp_path / "nii"))) == 0
    by_name = {os.path.basename(f["path"]): f for f in m["files"]}
    for name, (vol, affine) in src.items():
        f = by_name[name]
        out_path = tmp_path / "nii" / f"{f['index']:05d}-{name.split('.')[0]}.nii.gz"
        out, out_aff = vio.read_volume(out_path)
        assert out.shape == (20, 24, 28)
        assert vio.orientation_codes(out_aff) == ("R", "A", "S")
        lo, hi = f["transform"]["intensity"]["clip"]
        ijk = np.indices(out.shape).reshape(3, -1)
        pts = np.linalg.solve(affine, out_aff @ np.vstack([ijk, np.ones(ijk.shape[1])]))[:3]
        inside = np.all((pts >= 0) & (pts <= np.asarray(vol.shape)[:, None] - 1), axis=0)
        if name == "c.nrrd":  # 8 mm -> 4 mm: trilinear interpolation, checked with SciPy
            ref = ndimage.map_coordinates(vol, pts[:, inside], order=1)
            atol = 2e-3
        else:  # same spacing: exactly the source voxel at that world point
            np.testing.assert_allclose(pts, np.round(pts), atol=1e-5)
            ref = vol[tuple(np.round(pts[:, inside]).astype(int))]
            atol = 1.0 / 65535
        np.testing.assert_allclose(out.reshape(-1)[inside], np.clip((ref - lo) / (hi - lo), 0, 1), atol=atol)
        assert inside.mean() > 0.5
        # A new scan preprocessed "like the manifest" (the projector's path) lands on the same grid and values.
        again, again_aff, _ = preprocess.preprocess_like_manifest(str(tmp_path / "scans" / name), m)
        np.testing.assert_allclose(again_aff, out_aff, atol=1e-4)
        np.testing.assert_allclose(again, out, atol=1.0 / 65535)


def test_dicom_series_folder_and_list_file_inputs(tmp_path):
    vol = (_head((20, 22, 18), 3)).astype(np.int16)
    img = sitk.GetImageFromArray(np.transpose(vol, (2, 1, 0)))
    img.SetSpacing((4.0, 4.0, 4.0))
    write_dicom_series(img, tmp_path / "scans" / "subj1" / "dicom", "1.2.826.0.1.3680043.2.1125.7", "IM{:04d}.dcm")
    nib.save(nib.Nifti1Image(_head((30, 34, 38), 4), RAS4), str(tmp_path / "scans" / "x.nii"))
    (tmp_path / "list.txt").write_text("# two scans\nscans/subj1/dicom\nscans/x.nii\n")
    dataset_tool.run("create", _opts(input=str(tmp_path / "list.txt"), output=str(tmp_path / "ds")))
    m = json.load(open(tmp_path / "ds" / "dataset.json"))
    assert m["num_volumes"] == 2 and not m["skipped"]
    assert m["files"][0]["path"].endswith("dicom") and m["files"][0]["transform"]["source_orientation"] == "LPS"


def _bad_inputs():
    def garbage(p):
        p.write_bytes(b"\x00garbage" * 50)

    def truncated(p):
        vio.write_nifti(p, _head((30, 30, 30), 0), RAS4)
        data = p.read_bytes()
        p.write_bytes(data[: len(data) // 2])

    def flat(p):
        nib.save(nib.Nifti1Image(_head((30, 30, 30), 0)[:, :, 15], RAS4), str(p))

    def four_d(p):
        v = _head((30, 30, 30), 0)
        nib.save(nib.Nifti1Image(np.stack([v, v, v], -1), RAS4), str(p))

    def nan(p):
        v = _head((30, 30, 30), 0)
        v[10, 10, 10] = np.nan
        nib.save(nib.Nifti1Image(v, RAS4), str(p))

    def inf(p):
        v = _head((30, 30, 30), 0)
        v[10, 10, 10] = -np.inf
        nib.save(nib.Nifti1Image(v, RAS4), str(p))

    def constant(p):
        nib.save(nib.Nifti1Image(np.full((30, 30, 30), 7.0, np.float32), RAS4), str(p))

    return [
        (garbage, "unreadable"),
        (truncated, "unreadable"),
        (flat, "2D image"),
        (four_d, "4D image"),
        (nan, "NaN/Inf"),
        (inf, "NaN/Inf"),
        (constant, "empty volume"),
    ]


@pytest.mark.parametrize("make, reason", _bad_inputs(), ids=lambda x: getattr(x, "__name__", x))
def test_bad_input_is_skipped_with_a_reason_or_stops_with_strict(tmp_path, make, reason):
    scans = tmp_path / "scans"
    scans.mkdir()
    nib.save(nib.Nifti1Image(_head((30, 34, 38), 0), RAS4), str(scans / "good.nii.gz"))
    make(scans / "bad.nii.gz")
    dataset_tool.run("create", _opts(input=str(scans), output=str(tmp_path / "ds")))
    m = json.load(open(tmp_path / "ds" / "dataset.json"))
    assert m["num_volumes"] == 1 and len(m["skipped"]) == 1
    assert m["skipped"][0]["reason"].startswith(str(scans / "bad.nii.gz")) and reason in m["skipped"][0]["reason"]
    with pytest.raises(ValueError, match=reason) as e:
        dataset_tool.run("create", _opts(input=str(scans), output=str(tmp_path / "strict"), strict=True))
    assert "--" not in str(e.value)  # a library message: it names the file, not a flag
    assert not os.path.exists(tmp_path / "strict")
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]


def test_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("nothing here")
    with pytest.raises(ValueError, match="holds no images"):
        dataset_tool.run("create", _opts(input=str(tmp_path / "empty"), output=str(tmp_path / "ds")))


def test_all_inputs_bad_is_an_error_and_writes_nothing(tmp_path):
    (tmp_path / "scans").mkdir()
    nib.save(nib.Nifti1Image(np.zeros((20, 20, 20), np.float32), RAS4), str(tmp_path / "scans" / "z.nii"))
    with pytest.raises(ValueError, match="no usable volumes"):
        dataset_tool.run("create", _opts(input=str(tmp_path / "scans"), output=str(tmp_path / "ds")))
    assert os.listdir(tmp_path) == ["scans"]


def test_existing_output_needs_overwrite(tmp_path):
    _sources(tmp_path / "scans")
    args = dict(input=str(tmp_path / "scans"), output=str(tmp_path / "ds"))
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("mine")
    with pytest.raises(UserError, match="already exists"):
        dataset_tool.run("create", _opts(**args))
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"
    # Even with overwrite, a folder holding files this project did not write is never replaced.
    with pytest.raises(ValueError, match="did not write"):
        dataset_tool.run("create", _opts(overwrite=True, **args))
    assert (tmp_path / "ds" / "keep.txt").read_text() == "mine"
    (tmp_path / "ds" / "keep.txt").unlink()
    dataset_tool.run("create", _opts(overwrite=True, **args))  # an empty folder
    first = os.stat(tmp_path / "ds").st_ino
    dataset_tool.run("create", _opts(overwrite=True, **args))  # our own dataset
    assert os.stat(tmp_path / "ds").st_ino != first  # a new folder took its place
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".tmp")]
    # Ordinary permissions (umask applies), not the private ones of temporary files: others may read it.
    mask = current_umask()
    assert os.stat(tmp_path / "ds").st_mode & 0o777 == 0o777 & ~mask
    for name in os.listdir(tmp_path / "ds"):
        assert os.stat(tmp_path / "ds" / name).st_mode & 0o777 == 0o666 & ~mask


def test_labels_from_csv_and_subject_split(tmp_path):
    from volumes import dataset_reader as dataset
    from volumes.manifest import load_manifest

    scans = tmp_path / "scans"
    scans.mkdir()
    rows = ["filename,subject,sex,age"]
    for n in range(6):
        nib.save(nib.Nifti1Image(_head((30, 34, 38), n), RAS4), str(scans / f"s{n}.nii.gz"))
        rows.append(f"s{n}.nii.gz,subj{n // 2},{'FM'[n % 2]},{20 + 10 * n}")
    nib.save(nib.Nifti1Image(_head((30, 34, 38), 9), RAS4), str(scans / "nolabel.nii.gz"))
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    dataset_tool.run(
        "create", _opts(input=str(scans), output=str(tmp_path / "ds"), labels=str(tmp_path / "labels.csv"))
    )
    m = load_manifest(tmp_path / "ds")
    assert m.labels.c_dim == 3 and [c["name"] for c in m.labels.columns] == ["sex", "age"]
    assert m.labels.columns[0]["categories"] == ["F", "M"]
    assert len(m.skipped) == 1 and "nolabel" in m.skipped[0]["reason"]
    ages = np.array([20 + 10 * n for n in range(6)], float)
    x, c = next(iter(dataset.make_dataset(tmp_path / "ds", 6, shuffle=False, repeat=False)))
    assert x.shape == (6, 20, 24, 28, 1) and c.shape == (6, 3)
    by_index = {f["index"]: f for f in m.files}
    for i in range(6):
        n = int(os.path.basename(by_index[i]["path"])[1])
        np.testing.assert_allclose(
            c[i].numpy(), [n % 2 == 0, n % 2 == 1, (ages[n] - ages.mean()) / ages.std()], atol=1e-5
        )
        assert by_index[i]["subject"] == f"subj{n // 2}"
    # Split: deterministic, subjects never straddle the parts.
    for out in ("split", "split2"):
        dataset_tool.run(
            "split", _opts(dataset=str(tmp_path / "ds"), output=str(tmp_path / out), test_fraction=0.34, seed=3)
        )
    parts = {}
    for part in ("train", "test"):
        pm = load_manifest(tmp_path / "split" / part)
        pm2 = load_manifest(tmp_path / "split2" / part)
        assert [g["path"] for g in pm.files] == [g["path"] for g in pm2.files]
        parts[part] = {g["subject"] for g in pm.files}
        assert pm.num_volumes == len(pm.files) and pm.split.part == part
        dataset_tool.run("info", _opts(dataset=str(tmp_path / "split" / part)))
    assert not parts["train"] & parts["test"] and len(parts["test"]) == 1 and len(parts["train"]) == 2


def test_info_verifies_records(tmp_path, capsys):
    _sources(tmp_path / "scans")
    dataset_tool.run("create", _opts(input=str(tmp_path / "scans"), output=str(tmp_path / "ds")))
    dataset_tool.run("info", _opts(dataset=str(tmp_path / "ds")))
    assert "verified 3 records" in capsys.readouterr().out
    path = tmp_path / "ds" / "dataset.json"
    m = json.load(open(path))
    m["files"][1]["stored_sha256"] = "0" * 64
    path.write_text(json.dumps(m))
    with pytest.raises(ValueError, match="1 problem"):
        dataset_tool.run("info", _opts(dataset=str(tmp_path / "ds")))
    assert "checksum differs" in capsys.readouterr().out
    shard = tmp_path / "ds" / m["shards"][0]
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(ValueError, match="corrupt shard"):
        dataset_tool.run("info", _opts(dataset=str(tmp_path / "ds")))


# (arguments, what stderr must say): flag mistakes (UserError) and library errors (ValueError/OSError) alike
# end as one line "error: ..." and exit code 2.
EXIT_2_CASES = [
    (["create", "--source={tmp}", "--dest={tmp}/ds", "--shape=64x64x64"], ["--shape=64x64x64", "80x96x112"]),
    (["frobnicate"], ["create | info"]),
    (["info", "--dataset={tmp}/missing"], ["dataset folder not found"]),
    (["split", "--dataset={tmp}", "--output={tmp}/out", "--test_fraction=1.5"], ["--test_fraction=1.5"]),
]


@pytest.mark.parametrize("args, says", EXIT_2_CASES, ids=["bad-shape", "no-command", "no-dataset", "bad-fraction"])
def test_command_line_exit_codes(tmp_path, args, says):
    r = run_script("dataset_tool.py", *[a.format(tmp=tmp_path) for a in args], timeout=120)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: ")
    for text in says:
        assert text in r.stderr


# (flag values, the flag the UserError must name) for validation that happens before any work.
FLAG_CASES = [
    ("create", dict(input="in", output="out", workers=0), "--workers=0"),
    ("create", dict(output="out"), "--input is required"),
    ("create", dict(input="in", output="out", spacing="2,a"), "--spacing"),
    ("create", dict(input="in", output="out", shape="80x96x113"), "--shape=80x96x113"),
    ("create", dict(input="in", output="out", percentiles=["60", "40"]), "--percentiles"),
    ("create", dict(input="in", output="out", foreground_fraction=1.5), "--foreground_fraction"),
    ("create", dict(input="in", output="out", register_to="missing.nii.gz"), "--register_to"),
    ("create", dict(input="in", output="out", labels="missing.csv"), "--labels"),
    ("extract", dict(dataset="ds", output="out", indices="3-1"), "--indices"),
    ("split", dict(dataset="ds", output="out", test_fraction=0.0), "--test_fraction"),
    ("demo", dict(output="out", num_volumes=0), "--num_volumes=0"),
    ("info", dict(), "--dataset is required"),
]


@pytest.mark.parametrize("command, values, flag", FLAG_CASES)
def test_flag_mistakes_are_user_errors_naming_the_flag(tmp_path, monkeypatch, command, values, flag):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match=flag):
        dataset_tool.build_options(command, _opts(**values))


def test_existing_output_is_refused_at_the_command_line_for_every_writing_command(tmp_path):
    (tmp_path / "out").mkdir()
    values = dict(input="in", dataset="ds", output=str(tmp_path / "out"))
    for command in ("create", "extract", "split", "demo"):
        with pytest.raises(UserError, match="already exists; pass --overwrite"):
            dataset_tool.build_options(command, _opts(**values))
        assert dataset_tool.build_options(command, _opts(overwrite=True, **values)).output == str(tmp_path / "out")


def test_one_options_object_per_command(tmp_path, monkeypatch):
    monkeypatch.setenv("STYLEGAN3D_DATA", str(tmp_path / "data"))
    o = dataset_tool.build_options("create", _opts(input="scans", output=str(tmp_path / "ds")))
    assert o.command == "create" and o.preprocess.shape == [20, 24, 28] and o.preprocess.spacing == [4.0] * 3
    assert o.labels is None and o.workers == 1 and o.progress is False
    o = dataset_tool.build_options("extract", _opts(dataset="ds", output=str(tmp_path / "x"), indices="0-2,5"))
    assert o.command == "extract" and o.indices == [0, 1, 2, 5] and o.dtype == "float32"
    o = dataset_tool.build_options("demo", _opts(res="2mm"))
    assert o.output == str(tmp_path / "data" / "demo-2mm") and o.num_volumes is None
    assert set(dataset_tool.COMMANDS) == {"create", "info", "extract", "split", "demo"}


def test_input_discovery_folder_glob_and_mhd(tmp_path):
    from volumes.dataset_inputs import find_inputs

    scans = tmp_path / "scans"
    (scans / "sub").mkdir(parents=True)
    v = _head((20, 22, 24), 0)
    nib.save(nib.Nifti1Image(v, RAS4), str(scans / "a.nii.gz"))
    nib.save(nib.Nifti1Image(v, RAS4), str(scans / "sub" / "b.nii"))
    _write_sitk(scans / "sub" / "c.mhd", v, LPS4)  # writes c.mhd + c.raw: one input
    (scans / "notes.txt").write_text("not an image")
    paths, root = find_inputs(str(scans))
    assert [os.path.relpath(p, scans) for p in paths] == ["a.nii.gz", "sub/b.nii", "sub/c.mhd"]
    assert root == str(scans)
    paths, _ = find_inputs(str(scans / "**" / "*.nii*"))
    assert sorted(os.path.basename(p) for p in paths) == ["a.nii.gz", "b.nii"]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        find_inputs(str(tmp_path / "missing"))


def test_label_encoding_round_trips(tmp_path):
    from volumes.dataset_labels import LabelTable, decode_labels

    (tmp_path / "l.csv").write_text("path,site,grade,age\nx.nii.gz,A,1,30\ny.nii.gz,B,2,50\nz.nii.gz,A,2,\n")
    t = LabelTable(tmp_path / "l.csv", categorical=["site", "grade"], continuous=["age"])
    assert t.c_dim == 5 and t.filename_column == "path"
    c, subject = t.lookup(str(tmp_path / "y.nii.gz"), str(tmp_path))
    assert subject is None
    np.testing.assert_allclose(c, [0, 1, 0, 1, 1.0])  # site B, grade 2, age (50 - 40) / 10
    assert decode_labels(t.schema(), c) == {"site": "B", "grade": "2", "age": 50.0}
    with pytest.raises(ValueError, match="'age' is empty"):
        t.lookup(str(tmp_path / "z.nii.gz"), str(tmp_path))
    with pytest.raises(ValueError, match="no row"):
        t.lookup(str(tmp_path / "w.nii.gz"), str(tmp_path))


# A hand-edited manifest's covariates: a wrong layout is refused when the dataset is opened (naming the file);
# values that are not numbers are listed by `info` as such instead of crashing it.
_COVARIATE_LAYOUTS = [
    ({"covariates": ["age"]}, "'covariates' must map"),
    ({"covariates": {"age": "years"}}, "'covariates' must map"),
    ({"covariates": {"age": {"kind": "continuous"}}, "file_covariates": [1, 2]}, "record 0"),
]


def _with_covariates(path, described, values):
    from tests.utils import make_tiny_dataset

    make_tiny_dataset(path, num=3)
    m = json.load(open(path / "dataset.json"))
    m["covariates"] = described
    m["files"] = [{"index": i, "path": f"v{i}", "covariates": v} for i, v in enumerate(values)]
    json.dump(m, open(path / "dataset.json", "w"))


@pytest.mark.parametrize("change, message", _COVARIATE_LAYOUTS)
def test_a_manifest_with_covariates_laid_out_wrongly_is_refused(tmp_path, change, message):
    from dnnlib.errors import InputError
    from volumes.manifest import load_manifest

    values = [change.get("file_covariates", {"age": 30})] * 3
    _with_covariates(tmp_path / "ds", change["covariates"], values)
    with pytest.raises(InputError, match=message) as e:
        load_manifest(str(tmp_path / "ds"))
    assert "dataset.json" in str(e.value)


def test_info_lists_covariate_values_that_are_not_numbers(tmp_path):
    _with_covariates(tmp_path / "ds", {"age": {"kind": "continuous"}, "group": {"kind": "categorical"}},
                     [{"age": 30, "group": 0}, {"age": "thirty", "group": 1}, {"age": float("nan"), "group": 1}])
    r = run_script("dataset_tool.py", "info", f"--dataset={tmp_path / 'ds'}")
    assert "Traceback" not in r.stderr
    assert "age: 2 of 3 values are not finite numbers (e.g. 'thirty')" in r.stdout + r.stderr
    assert "group: 0: 1, 1: 2" in r.stdout + r.stderr
