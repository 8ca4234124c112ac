"""The one output rule (dnnlib.fileutil): the final move never replaces what appeared meanwhile, and --overwrite
replaces only what the record of the command that wrote it lists, unchanged. Folders and single files alike."""

import json
import os
import subprocess
import sys

import pytest

from dnnlib import fileutil
from dnnlib.errors import OutputConflict
from dnnlib.fileutil import OUTPUT_MARKER, atomic_output_dir, atomic_output_file
from tests.utils import REPO


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def _second_writer(code, *args):
    """Another process (a user's shell, a second run) acting on the file system while our output is open."""
    subprocess.run([sys.executable, "-c", code, *map(str, args)], check=True, env=dict(os.environ, PYTHONPATH=REPO))


MAKE_THESIS = ("import os, sys; os.makedirs(sys.argv[1], exist_ok=True); "
               "open(os.path.join(sys.argv[1], 'thesis.txt'), 'w').write('precious')")


def _our_output(path, files=("a.nii.gz",)):
    with atomic_output_dir(path) as tmp:
        for name in files:
            with open(os.path.join(tmp, name), "w") as f:
                f.write(name)


@pytest.fixture(params=["renameat2", "fallback"])
def rename_path(request, monkeypatch):
    """Both ways of the no-replace move: renameat2(RENAME_NOREPLACE) and the rename/link fallback."""
    if request.param == "fallback":
        monkeypatch.setattr(fileutil, "_renameat2", lambda: None)
    return request.param


def test_folder_that_appears_while_we_write_is_never_replaced(tmp_path, rename_path):
    out = tmp_path / "X"
    with pytest.raises(OutputConflict, match="appeared"):
        with atomic_output_dir(out) as tmp:
            open(os.path.join(tmp, "seed0000.nii.gz"), "w").write("volume")
            _second_writer(MAKE_THESIS, out)
    assert (out / "thesis.txt").read_text() == "precious"
    assert os.listdir(out) == ["thesis.txt"]
    assert os.listdir(tmp_path) == ["X"]  # our temporary folder is gone


def test_file_that_appears_at_a_folder_output_is_never_replaced(tmp_path, rename_path):
    out = tmp_path / "X"
    with pytest.raises(OutputConflict):
        with atomic_output_dir(out):
            _second_writer("import sys; open(sys.argv[1], 'w').write('precious')", out)
    assert out.read_text() == "precious"


def test_overwrite_refuses_a_user_file_added_while_we_write(tmp_path, rename_path):
    out = tmp_path / "X"
    _our_output(out)
    with pytest.raises(OutputConflict, match="thesis.txt"):
        with atomic_output_dir(out, overwrite=True) as tmp:
            open(os.path.join(tmp, "new.nii.gz"), "w").write("new")
            _second_writer(MAKE_THESIS, out)
    assert _tree(out) == sorted([OUTPUT_MARKER, "a.nii.gz", "thesis.txt"])
    assert (out / "thesis.txt").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == ["X"]


def test_two_runs_into_one_outdir_never_replace_each_other(tmp_path, rename_path):
    out = tmp_path / "X"
    with pytest.raises(OutputConflict):
        with atomic_output_dir(out) as tmp:
            open(os.path.join(tmp, "mine.txt"), "w").write("first")
            _second_writer("import sys; from dnnlib.fileutil import atomic_output_dir\n"
                           "with atomic_output_dir(sys.argv[1]) as t: open(t + '/theirs.txt', 'w').write('2')", out)
    assert _tree(out) == sorted([OUTPUT_MARKER, "theirs.txt"])


def test_our_output_is_replaced_with_overwrite(tmp_path, rename_path):
    out = tmp_path / "X"
    _our_output(out)
    os.makedirs(tmp_path / "keep")
    with atomic_output_dir(out, overwrite=True) as tmp:
        os.makedirs(os.path.join(tmp, "sub"))
        open(os.path.join(tmp, "sub", "b.png"), "w").write("b")
    assert _tree(out) == sorted([OUTPUT_MARKER, "sub/b.png"])
    with atomic_output_dir(out, overwrite=True) as tmp:  # its record lists the subfolder and its file
        open(os.path.join(tmp, "c.txt"), "w").write("c")
    assert _tree(out) == sorted([OUTPUT_MARKER, "c.txt"])
    assert sorted(os.listdir(tmp_path)) == ["X", "keep"]


# Folders that only look like ours: each is refused with --overwrite, and notes.txt stays.
FORGED = {
    "unknown generation.json": {"generation.json": json.dumps({"other": "tool"})},
    "unknown projection.json": {"projection.json": json.dumps({"other": "tool"})},
    "copied dataset.json": {"dataset.json": json.dumps({"format": "stylegan3d-tfrecord-v1"})},
    "marker of another tool": {OUTPUT_MARKER: json.dumps({"other": "tool"})},
    "empty record of ours": {OUTPUT_MARKER: json.dumps({"writer": "stylegan3d-tf2", "entries": {}})},
    "record with a wrong size": {OUTPUT_MARKER: json.dumps({"writer": "stylegan3d-tf2",
                                                            "entries": {"notes.txt": [1, 0]}})},
}


@pytest.mark.parametrize("files", FORGED.values(), ids=FORGED.keys())
def test_overwrite_refuses_a_folder_that_merely_looks_like_ours(tmp_path, files):
    out = tmp_path / "X"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for name, text in files.items():
        (out / name).write_text(text)
    before = _tree(tmp_path)
    with pytest.raises(OutputConflict, match="notes.txt"):
        with atomic_output_dir(out, overwrite=True):
            raise AssertionError("must not be reached")
    assert _tree(tmp_path) == before


def test_overwrite_refuses_a_real_output_with_a_user_file_or_an_edit(tmp_path):
    out = tmp_path / "X"
    _our_output(out)
    (out / "notes.txt").write_text("added by the user")
    with pytest.raises(OutputConflict, match="notes.txt"):
        fileutil.check_output_dir(out, overwrite=True)
    os.remove(out / "notes.txt")
    fileutil.check_output_dir(out, overwrite=True)  # back to what its record lists
    with open(out / "a.nii.gz", "a") as f:
        f.write("edited")
    with pytest.raises(OutputConflict, match="a.nii.gz"):
        fileutil.check_output_dir(out, overwrite=True)
    # A record copied from another output does not make this one ours either.
    _our_output(tmp_path / "Y", ("b.txt",))
    (tmp_path / "Z").mkdir()
    (tmp_path / "Z" / "b.txt").write_text("user data")
    (tmp_path / "Z" / OUTPUT_MARKER).write_bytes((tmp_path / "Y" / OUTPUT_MARKER).read_bytes())
    with pytest.raises(OutputConflict, match="b.txt"):
        fileutil.check_output_dir(tmp_path / "Z", overwrite=True)


def _write(path, text, overwrite=False, inputs=()):
    with atomic_output_file(path, overwrite, inputs) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


def test_single_file_rule(tmp_path, rename_path):
    out = tmp_path / "results.json"
    _write(out, "1")
    with pytest.raises(FileExistsError):
        _write(out, "2")
    _write(out, "3", overwrite=True)  # ours, recorded in the folder's record
    assert out.read_text() == "3"
    (tmp_path / "user.json").write_text("user")
    with pytest.raises(OutputConflict, match="did not write"):
        _write(tmp_path / "user.json", "x", overwrite=True)
    out.write_text("edited by the user")
    with pytest.raises(OutputConflict):
        _write(out, "4", overwrite=True)
    assert out.read_text() == "edited by the user"
    # A file that appears while we write is never replaced.
    with pytest.raises(OutputConflict, match="appeared"):
        _write_with_intruder(tmp_path / "late.json")
    assert (tmp_path / "late.json").read_text() == "precious"
    assert sorted(os.listdir(tmp_path)) == sorted([OUTPUT_MARKER, "late.json", "results.json", "user.json"])


def _write_with_intruder(path):
    with atomic_output_file(path) as tmp:
        open(tmp, "w").write("ours")
        _second_writer("import sys; open(sys.argv[1], 'w').write('precious')", path)


def test_file_output_inside_or_onto_an_input_is_refused(tmp_path):
    ds = tmp_path / "DS"
    ds.mkdir()
    (ds / "dataset.json").write_text("{}")
    for target in (ds / "dataset.json", ds / "new.json"):
        with pytest.raises(OutputConflict, match="input"):
            _write(target, "x", overwrite=True, inputs=[ds])
    assert os.listdir(ds) == ["dataset.json"] and (ds / "dataset.json").read_text() == "{}"


def test_interrupt_between_moving_aside_and_moving_in_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "X"
    _our_output(out)
    real = fileutil.rename_noreplace
    calls = []

    def interrupted(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the new output moving in: SIGTERM arrives (SigtermInterrupt is a KeyboardInterrupt)
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(fileutil, "rename_noreplace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        with atomic_output_dir(out, overwrite=True) as tmp:
            open(os.path.join(tmp, "new.txt"), "w").write("new")
    assert _tree(out) == sorted([OUTPUT_MARKER, "a.nii.gz"])
    assert os.listdir(tmp_path) == ["X"]


_WRITE_FILES = """
import os, sys
from dnnlib.fileutil import write_output_file
folder, tag, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    write_output_file(os.path.join(folder, f"{tag}-{i:03d}.txt"), f"{tag} {i}")
"""


def test_files_written_into_one_folder_by_concurrent_commands_are_all_recorded(tmp_path):
    """Four commands add files to one folder at once: every file is in the folder's record (none lost to another
    command's update of the record), so --overwrite may replace each of them later."""
    folder = tmp_path / "shared"
    folder.mkdir()
    env = dict(os.environ, PYTHONPATH=REPO)
    procs = [subprocess.Popen([sys.executable, "-c", _WRITE_FILES, str(folder), f"w{k}", "40"], env=env)
             for k in range(4)]
    assert [p.wait(timeout=300) for p in procs] == [0] * 4
    written = sorted(n for n in os.listdir(folder) if n != OUTPUT_MARKER)
    assert len(written) == 160
    assert sorted(json.load(open(folder / OUTPUT_MARKER))["entries"]) == written
    assert fileutil.foreign_entries(str(folder)) == []
