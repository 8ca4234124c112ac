"""dataset_tool.py safety (issue 16): outputs that overlap an input, or are not ours, are refused with every file
left in place; label values are validated (non-finite, stray text, rows without a scan); oversized scans are
judged by their header before any data is read; SIGTERM and a full disk stop cleanly, leaving nothing behind."""

import errno
import gzip
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

import dataset_tool
from dnnlib.cli import run_main
from dnnlib.fileutil import OUTPUT_MARKER
from tests.utils import REPO, make_tiny_dataset
from volumes import records, work_pool
from volumes import volume_io as vio
from volumes.dataset_labels import LabelTable

AFFINE = np.array([[4.0, 0, 0, -50], [0, 4, 0, -60], [0, 0, 4, -70], [0, 0, 0, 1]])


def _head(seed, shape=(30, 34, 38)):
    rng = np.random.default_rng(seed)
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r2 = sum((g / 0.7) ** 2 for g in grid)
    return np.where(r2 < 1, 100 + 20 * rng.random(shape), 0).astype(np.float32)


def _scan(path, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(_head(seed), AFFINE), str(path))
    return path


def _opts(**kw):
    f = dataset_tool.defaults()
    f.update(spacing="4", shape="20x24x28", workers=1, progress=False)
    f.update(kw)
    return f


def _env(**extra):
    return dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="", **extra)


# TensorFlow's C++ start-up lines, printed before its logging is set up (TF_CPP_MIN_LOG_LEVEL cannot hide them).
_TF_STARTUP = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|[IWE]\d{4} [\d:. ]+\d+ \w+\.cc:\d+\])")


def _own_lines(stderr):
    return [line for line in stderr.strip().splitlines() if not _TF_STARTUP.match(line)]


def _tree(root):
    """Every file and folder under root with its size and modification time: what 'left in place' compares."""
    out = {}
    for d, subdirs, files in os.walk(root):
        for name in subdirs + files:
            p = os.path.join(d, name)
            st = os.lstat(p)
            out[os.path.relpath(p, root)] = (st.st_size if name in files else None, st.st_mtime_ns)
    return out


# ----------------------------------------------------------------------------------------------
# Outputs that overlap an input, or hold files we did not write.


def _project(tmp):
    """tmp/p/scans/{a,b}.nii.gz, a list file, labels, a template and someone's notes; tmp/ds, one of our datasets."""
    p = tmp / "p"
    _scan(p / "scans" / "a.nii.gz", 0)
    _scan(p / "scans" / "b.nii.gz", 1)
    _scan(p / "template.nii.gz", 2)
    _scan(tmp / "elsewhere" / "c.nii.gz", 3)
    (p / "list.txt").write_text("scans/a.nii.gz\nscans/b.nii.gz\n")
    (p / "far.txt").write_text(f"{tmp / 'elsewhere' / 'c.nii.gz'}\n")
    (p / "labels.csv").write_text("filename,age\na.nii.gz,30\nb.nii.gz,50\nc.nii.gz,40\n")
    (p / "notes.txt").write_text("not ours")
    (tmp / "home").mkdir()
    (tmp / "work").mkdir()
    make_tiny_dataset(str(tmp / "ds"), num=3)


# (arguments, what stderr must name besides "error: "): each exits 2 and changes nothing on disk.
OVERLAP_CASES = [
    (["create", "--source={t}/p/scans", "--dest={t}/p", "--overwrite"], ["{t}/p ", "contains", "{t}/p/scans"]),
    (["create", "--source={t}/p/scans", "--dest={t}/p/scans", "--overwrite"], ["{t}/p/scans is the input"]),
    (["create", "--source={t}/p/scans", "--dest={t}/p/scans/ds"], ["lies inside the input {t}/p/scans"]),
    (["create", "--source={t}/p/scans/*.nii.gz", "--dest={t}/p/scans/ds"], ["lies inside the input {t}/p/scans"]),
    (["create", "--source={t}/p/list.txt", "--dest={t}/p/scans", "--overwrite"], ["{t}/p/scans/a.nii.gz"]),
    (["create", "--source={t}/p/far.txt", "--dest={t}/elsewhere", "--overwrite"], ["{t}/elsewhere/c.nii.gz"]),
    (["create", "--source={t}/elsewhere", "--dest={t}/p", "--labels={t}/p/labels.csv", "--overwrite"],
     ["contains the input {t}/p/labels.csv"]),
    (["create", "--source={t}/elsewhere", "--dest={t}/p", "--register_to={t}/p/template.nii.gz", "--overwrite"],
     ["contains the input {t}/p/template.nii.gz"]),
    (["create", "--source={t}/elsewhere", "--dest={t}/p", "--overwrite"], ["did not write", "notes.txt"]),
    (["extract", "--dataset={t}/ds", "--output={t}/ds", "--overwrite"], ["{t}/ds is the input {t}/ds"]),
    (["extract", "--dataset={t}/ds", "--output={t}", "--overwrite"], ["contains the input {t}/ds"]),
    (["split", "--dataset={t}/ds", "--output={t}/ds/split"], ["lies inside the input {t}/ds"]),
    (["split", "--dataset={t}/ds", "--output={t}/p", "--overwrite"], ["did not write"]),
    (["demo", "--output={t}/home", "--overwrite"], ["the home folder"]),
    (["demo", "--output=.", "--overwrite"], ["the current folder"]),
]
OVERLAP_IDS = ["dest-holds-source", "dest-is-source", "dest-in-source", "dest-in-glob-folder", "list-files",
               "list-file-elsewhere", "labels", "template", "not-ours", "extract-onto-dataset",
               "extract-around-dataset", "split-into-dataset", "split-not-ours", "home", "cwd"]


@pytest.mark.parametrize("args, says", OVERLAP_CASES, ids=OVERLAP_IDS)
def test_dangerous_outputs_exit_2_and_leave_every_file_in_place(tmp_path, args, says):
    _project(tmp_path)
    before = _tree(tmp_path)
    # Run from a folder of its own, with a home folder of its own: "." and $HOME are outputs to refuse.
    r = subprocess.run([sys.executable, os.path.join(REPO, "dataset_tool.py"), *[a.format(t=tmp_path) for a in args]],
                       cwd=tmp_path / "work", env=_env(HOME=str(tmp_path / "home")), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and r.stderr.startswith("error: "), r.stderr
    for text in says:
        assert text.format(t=tmp_path) in r.stderr
    assert _tree(tmp_path) == before


def test_overwriting_our_own_earlier_outputs_still_works(tmp_path):
    _project(tmp_path)
    src = dict(input=str(tmp_path / "p" / "scans"), output=str(tmp_path / "out"))
    for _ in range(2):  # a dataset we made carries the marker
        assert dataset_tool.run("create", _opts(overwrite=True, **src)) == 0
        assert os.path.isfile(tmp_path / "out" / OUTPUT_MARKER)
    # Without its record, a folder holding our dataset.json is not known to be ours: never replaced.
    record = (tmp_path / "out" / OUTPUT_MARKER).read_bytes()
    os.remove(tmp_path / "out" / OUTPUT_MARKER)
    with pytest.raises(ValueError, match="did not write"):
        dataset_tool.run("create", _opts(overwrite=True, **src))
    (tmp_path / "out" / OUTPUT_MARKER).write_bytes(record)
    assert dataset_tool.run("create", _opts(overwrite=True, **src)) == 0
    for _ in range(2):
        assert dataset_tool.run("extract", _opts(dataset=str(tmp_path / "out"), output=str(tmp_path / "nii"),
                                                 overwrite=True)) == 0
        assert dataset_tool.run("split", _opts(dataset=str(tmp_path / "out"), output=str(tmp_path / "split"),
                                               overwrite=True, test_fraction=0.5)) == 0
    assert len([n for n in os.listdir(tmp_path / "nii") if n.endswith(".nii.gz")]) == 2
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".tmp")]


# ----------------------------------------------------------------------------------------------
# Label values.


# (CSV text, LabelTable keyword arguments, what the ValueError must say): refused when the table is read.
BAD_LABEL_CASES = [
    ("filename,age\na.nii.gz,30\nb.nii.gz,nan\n", {}, ["row 3", "'age'", "'nan' is not a finite number"]),
    ("filename,age\na.nii.gz,inf\nb.nii.gz,50\n", {}, ["row 2", "'age'", "'inf' is not a finite number"]),
    ("filename,age\na.nii.gz,30\nb.nii.gz,-Infinity\n", dict(continuous=["age"]), ["row 3", "not a finite"]),
    ("filename,age\na.nii.gz,30\nb.nii.gz,50\nc.nii.gz,n/a\n", {}, ["row 4", "'age'", "'n/a' is text"]),
    ("filename,age\na.nii.gz,30\nb.nii.gz,fifty\n", dict(continuous=["age"]), ["row 3", "'fifty' is not a number"]),
    ("filename,sex\na.nii.gz,M\nb.nii.gz,F\nc.nii.gz,1\n", {}, ["row 4", "'sex'", "'1' is a number"]),
]


BAD_LABEL_IDS = ["nan", "inf", "-Infinity-named", "stray-text", "text-in-named-continuous", "stray-number"]


@pytest.mark.parametrize("text, kwargs, says", BAD_LABEL_CASES, ids=BAD_LABEL_IDS)
def test_bad_label_values_are_refused_naming_row_and_column(tmp_path, text, kwargs, says):
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(ValueError) as e:
        LabelTable(tmp_path / "l.csv", **kwargs)
    for s in says:
        assert s in str(e.value)
    assert str(tmp_path / "l.csv") in str(e.value)


def test_named_missing_values_skip_their_scan_and_named_categories_keep_any_text(tmp_path):
    (tmp_path / "l.csv").write_text("filename,site,age\na.nii.gz,A,30\nb.nii.gz,B,n/a\nc.nii.gz,A,50\n")
    t = LabelTable(tmp_path / "l.csv", missing_values=["n/a"])
    assert [(c["name"], c["type"]) for c in t.columns] == [("site", "categorical"), ("age", "continuous")]
    assert t.columns[0]["categories"] == ["A", "B"] and t.columns[1]["mean"] == 40.0
    with pytest.raises(ValueError, match=r"label 'age' is missing \('n/a'\)"):
        t.lookup(str(tmp_path / "b.nii.gz"), str(tmp_path))
    (tmp_path / "l.csv").write_text("filename,site,age\na.nii.gz,A,30\nb.nii.gz,7,40\n")
    t = LabelTable(tmp_path / "l.csv", categorical=["site"], continuous=["age"])
    assert t.columns[0]["categories"] == ["7", "A"]


def _labelled_scans(tmp, rows):
    scans = tmp / "scans"
    for n in range(3):
        _scan(scans / f"s{n}.nii.gz", n)
    (tmp / "labels.csv").write_text("filename,sex,age\n" + "".join(f"{r}\n" for r in rows))
    return scans


def test_statistics_and_categories_come_only_from_rows_of_converted_scans(tmp_path):
    from volumes.manifest import load_manifest

    rows = ["s0.nii.gz,F,20", "s1.nii.gz,M,30", "s2.nii.gz,F,40", "gone1.nii.gz,X,90", "gone2.nii.gz,Y,95"]
    scans = _labelled_scans(tmp_path, rows)
    (scans / "s2.nii.gz").write_bytes(b"\x00garbage" * 50)  # matched to a row, but fails to convert
    logged = []
    from volumes.dataset_create import create_dataset
    from volumes.dataset_inputs import find_inputs

    opts = dataset_tool.build_options("create", _opts(input=str(scans), output=str(tmp_path / "ds")))
    inputs, root = find_inputs(str(scans))
    create_dataset(inputs, str(tmp_path / "ds"), opts.preprocess, root=root, workers=1, verbose=False,
                   labels=LabelTable(tmp_path / "labels.csv"), log=logged.append)
    m = load_manifest(tmp_path / "ds")
    sex, age = m.labels.columns
    assert sex["categories"] == ["F", "M"]  # not X, Y (rows without a scan) nor anything from s2
    assert age["mean"] == 25.0 and age["std"] == 5.0 and m.labels.c_dim == 3
    assert any("2 of 5 rows" in line and "gone1.nii.gz" in line for line in logged)
    assert m.num_volumes == 2 and "unreadable" in m.skipped[0]["reason"]
    by_index = {f["index"]: os.path.basename(f["path"]) for f in m.files}
    expected = {"s0.nii.gz": [1, 0, -1], "s1.nii.gz": [0, 1, 1]}
    for rec in records.iterate_records(tmp_path / "ds", m):
        np.testing.assert_allclose(rec.label, expected[by_index[rec.index]], atol=1e-6)
        np.testing.assert_allclose(m.files[rec.index]["label"], expected[by_index[rec.index]], atol=1e-6)
    dataset_tool.run("info", _opts(dataset=str(tmp_path / "ds")))


def test_info_refuses_non_finite_labels(tmp_path, capsys):
    from volumes.manifest import load_manifest

    scans = _labelled_scans(tmp_path, ["s0.nii.gz,F,20", "s1.nii.gz,M,30", "s2.nii.gz,F,40"])
    dataset_tool.run("create", _opts(input=str(scans), output=str(tmp_path / "ds"),
                                     labels=str(tmp_path / "labels.csv")))
    m = load_manifest(tmp_path / "ds")
    shard = tmp_path / "ds" / m.shards[0]
    recs = list(records.iterate_records(tmp_path / "ds", m))
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(shard), tf.io.TFRecordOptions(compression_type="GZIP")) as w:
        for rec in recs:  # what an older version wrote for a 'nan' in the CSV
            label = [np.nan, rec.label[1], rec.label[2]] if rec.index == 1 else rec.label
            w.write(records.serialize_example(rec.stored.reshape(rec.shape), rec.index, label))
    with pytest.raises(ValueError, match="1 problem"):
        dataset_tool.run("info", _opts(dataset=str(tmp_path / "ds")))
    assert "label holds non-finite values" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------
# Oversized scans are judged by their header; workers are bounded by memory.


def _nifti_header(shape, dtype=np.uint8):
    hdr = nib.Nifti1Header()
    hdr.set_data_shape(shape)
    hdr.set_data_dtype(dtype)
    hdr.set_qform(AFFINE, code=1)
    hdr.set_sform(AFFINE, code=1)
    hdr["vox_offset"] = 352
    return hdr.binaryblock + b"\x00" * 4


def _gzip_bomb(path, shape):
    """A small .nii.gz whose header declares `shape` and whose data (all zeros) compresses to almost nothing."""
    chunk = b"\x00" * (1 << 22)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(_nifti_header(shape))
        left = int(np.prod(shape))
        while left > 0:
            f.write(chunk[: min(left, len(chunk))])
            left -= len(chunk)


def _limit_memory():
    # Room for Python and TensorFlow, far too little for a 4000^3 volume; a reader that ignores the header fails.
    resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))


_TIMED_READS = """
import sys, time
from volumes import volume_io
for path in sys.argv[2:]:
    t0 = time.perf_counter()
    try:
        volume_io.read_volume(path, max_voxels=int(sys.argv[1]))
        print("read", path)
    except ValueError as e:
        print(f"{time.perf_counter() - t0:.3f}", e)
"""


def test_oversized_scans_are_skipped_from_their_header_under_a_memory_limit(tmp_path):
    scans = tmp_path / "scans"
    _scan(scans / "good.nii.gz")
    _gzip_bomb(scans / "bomb.nii.gz", (512, 512, 512))
    (scans / "huge.nii").write_bytes(_nifti_header((4000, 4000, 4000)))
    assert os.path.getsize(scans / "bomb.nii.gz") < 1 << 20
    env = _env()
    limit = str(256**3)
    r = subprocess.run([sys.executable, "-c", _TIMED_READS, limit, str(scans / "bomb.nii.gz"), str(scans / "huge.nii")],
                       env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2
    for line in lines:
        seconds, reason = line.split(" ", 1)
        assert "too large" in reason and float(seconds) < 1.0, line
    r = subprocess.run([sys.executable, os.path.join(REPO, "dataset_tool.py"), "create", f"--source={scans}",
                        f"--dest={tmp_path / 'ds'}", "--spacing=4", "--shape=20x24x28", f"--max_voxels={limit}",
                        "--workers=1", "--noprogress"],
                       env=env, capture_output=True, text=True, timeout=300, preexec_fn=_limit_memory)
    assert r.returncode == 0, r.stderr
    m = json.load(open(tmp_path / "ds" / "dataset.json"))
    assert m["num_volumes"] == 1
    reasons = {os.path.basename(s["path"]): s["reason"] for s in m["skipped"]}
    assert set(reasons) == {"bomb.nii.gz", "huge.nii"}
    assert all("too large" in text for text in reasons.values())
    assert "64000000000 voxels" in reasons["huge.nii"]


def test_the_default_voxel_limit_refuses_a_huge_header(tmp_path):
    (tmp_path / "huge.nii").write_bytes(_nifti_header((4000, 4000, 4000)))
    with pytest.raises(ValueError, match="too large"):
        vio.read_volume(tmp_path / "huge.nii", max_voxels=vio.DEFAULT_MAX_VOXELS)
    assert dataset_tool.defaults().max_voxels == 512**3


# (requested workers, bytes per worker, available bytes, workers used)
WORKER_CASES = [(8, 2 << 30, 5 << 30, 2), (8, 2 << 30, 1 << 30, 1), (2, 1 << 30, 64 << 30, 2), (3, 1, 0, 1)]


@pytest.mark.parametrize("requested, per_worker, available, expected", WORKER_CASES)
def test_workers_are_bounded_by_available_memory(requested, per_worker, available, expected):
    assert work_pool.memory_bounded_workers(requested, per_worker, available) == expected


def test_create_uses_fewer_workers_when_memory_is_short(tmp_path, monkeypatch):
    from volumes.dataset_create import BYTES_PER_VOXEL, create_dataset

    for n in range(2):
        _scan(tmp_path / "scans" / f"s{n}.nii.gz", n)
    max_voxels = 100_000  # above the scans' 30x34x38
    monkeypatch.setattr(work_pool, "available_memory", lambda: BYTES_PER_VOXEL * max_voxels + 1)
    logged = []
    opts = dataset_tool.build_options("create", _opts(input="x", output=str(tmp_path / "ds"))).preprocess
    m = create_dataset(sorted(str(p) for p in (tmp_path / "scans").iterdir()), str(tmp_path / "ds"), opts,
                       workers=2, verbose=False, max_voxels=max_voxels, log=logged.append)
    assert m["num_volumes"] == 2 and any("1 worker(s)" in line for line in logged)


# ----------------------------------------------------------------------------------------------
# SIGTERM and a full disk.


def test_sigterm_becomes_an_interrupt_that_run_main_reports(capsys):
    from dnnlib.cli import SIGTERM_EXIT, SigtermInterrupt, sigterm_as_keyboard_interrupt

    before = signal.getsignal(signal.SIGTERM)

    def main(argv):
        with sigterm_as_keyboard_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler interrupts this

    with pytest.raises(SystemExit) as e:
        run_main(main)(["tool"])
    assert e.value.code == SIGTERM_EXIT == 143
    assert capsys.readouterr().err == "error: stopped by SIGTERM\n"
    assert signal.getsignal(signal.SIGTERM) == before
    assert issubclass(SigtermInterrupt, KeyboardInterrupt) and not issubclass(SigtermInterrupt, Exception)


@pytest.mark.parametrize("to_group", [False, True], ids=["parent", "process-group"])
def test_sigterm_during_create_stops_cleanly(tmp_path, to_group):
    scan = _scan(tmp_path / "scans" / "a.nii.gz")
    # Many copies of one scan: enough work that the signal surely arrives mid-run.
    (tmp_path / "list.txt").write_text(f"{scan}\n" * 3000)
    env = _env(PYTHONFAULTHANDLER="1")
    proc = subprocess.Popen(
        [sys.executable, os.path.join(REPO, "dataset_tool.py"), "create", f"--source={tmp_path / 'list.txt'}",
         f"--dest={tmp_path / 'ds'}", "--spacing=4", "--shape=20x24x28", "--workers=2", "--noprogress"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 120

        def records_written():  # the workers are up (past their start-up) and records reach the file
            return any(f.stat().st_size > 0 for f in tmp_path.glob(".tmp-ds-*/*.tfrecord*"))

        while not records_written():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)
        assert proc.poll() is None, "create finished before the signal; give it more work"
        if to_group:
            os.killpg(proc.pid, signal.SIGTERM)
        else:
            proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # a hang: SIGABRT makes the child's faulthandler print every thread
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=60)
            pytest.fail("no exit 120 s after SIGTERM; the stacks at SIGABRT:\n" + err[-8000:])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 143, err
    assert _own_lines(err) == ["error: stopped by SIGTERM"], err  # and no worker tracebacks
    assert sorted(os.listdir(tmp_path)) == ["list.txt", "scans"]  # no output, no temporary folder


class _FullDiskWriter:
    """Stands in for tf.io.TFRecordWriter on a disk that fills up at the second record."""

    def __init__(self, path, options=None):
        self.path, self.count = path, 0
        open(path, "wb").close()

    def write(self, data):
        import tensorflow as tf

        self.count += 1
        if self.count > 1:
            raise tf.errors.ResourceExhaustedError(None, None, f"{self.path}; No space left on device")

    def close(self):
        pass


def _full_disk_in_shards(monkeypatch):
    import tensorflow as tf

    monkeypatch.setattr(tf.io, "TFRecordWriter", _FullDiskWriter)


def _full_disk_in_manifest(monkeypatch):
    import volumes.dataset_create as dc

    def fail(path, manifest):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), os.path.join(path, "dataset.json"))

    monkeypatch.setattr(dc, "write_manifest", fail)


# (how the disk fills up, workers): each must end as exit 2 with one line, nothing left behind.
DISK_FULL_CASES = [(_full_disk_in_shards, 1), (_full_disk_in_shards, 2), (_full_disk_in_manifest, 1)]


@pytest.mark.parametrize("fill, workers", DISK_FULL_CASES, ids=["shard", "shard-pool", "manifest"])
def test_disk_full_during_create_exits_2_with_one_line_and_leaves_nothing(tmp_path, monkeypatch, capsys, fill,
                                                                          workers):
    for n in range(4):
        _scan(tmp_path / "scans" / f"s{n}.nii.gz", n)
    fill(monkeypatch)
    opts = _opts(input=str(tmp_path / "scans"), output=str(tmp_path / "ds"), workers=workers)
    with pytest.raises(SystemExit) as e:
        run_main(lambda argv: dataset_tool.run("create", opts))(["dataset_tool.py"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("error: ") and "No space left" in err, err
    assert sorted(os.listdir(tmp_path)) == ["scans"]


def test_overwrite_refuses_our_extract_output_once_a_user_file_is_added(tmp_path):
    _project(tmp_path)
    ds = str(tmp_path / "ds")  # made by _project
    nii = tmp_path / "nii"
    assert dataset_tool.run("extract", _opts(dataset=ds, output=str(nii))) == 0
    (nii / "notes.txt").write_text("my reading of the volumes")
    with pytest.raises(ValueError, match="notes.txt"):
        dataset_tool.run("extract", _opts(dataset=ds, output=str(nii), overwrite=True))
    assert (nii / "notes.txt").read_text() == "my reading of the volumes"
