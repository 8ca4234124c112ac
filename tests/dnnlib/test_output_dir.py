"""dnnlib.fileutil.check_output_dir / atomic_output_dir: an output never replaces what this project did not write."""

import json
import os
import subprocess
import sys

import pytest

from dnnlib.fileutil import OUTPUT_MARKER, atomic_output_dir, check_output_dir
from tests.utils import REPO


def _tree(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


@pytest.fixture()
def layout(tmp_path):
    """A user's project folder: scans, a run with a checkpoint, an unrelated notes file."""
    (tmp_path / "p" / "scans").mkdir(parents=True)
    (tmp_path / "p" / "scans" / "a.nii.gz").write_bytes(b"scan")
    (tmp_path / "p" / "notes.txt").write_text("keep me")
    (tmp_path / "results" / "00003-x" / "checkpoints").mkdir(parents=True)
    (tmp_path / "results" / "00003-x" / "training_options.json").write_text("{}")
    return tmp_path


# (output, inputs, expected message part): each is refused whatever the overwrite setting, and nothing moves.
OVERLAP_CASES = [
    ("p", ["p/scans"], "contains the input"),
    ("p/scans", ["p/scans"], "is the input"),
    ("p/scans/out", ["p/scans"], "lies inside the input"),
    ("results", ["results/00003-x"], "contains the input"),
    ("p", ["p/scans/a.nii.gz"], "contains the input"),
]


@pytest.mark.parametrize("output,inputs,message", OVERLAP_CASES)
@pytest.mark.parametrize("overwrite", [False, True])
def test_output_overlapping_an_input_is_refused(layout, output, inputs, message, overwrite):
    before = _tree(layout)
    with pytest.raises(ValueError, match=message):
        with atomic_output_dir(layout / output, overwrite=overwrite, inputs=[layout / i for i in inputs]):
            raise AssertionError("must not be reached")
    assert _tree(layout) == before


def test_root_home_and_current_folder_are_refused(layout, monkeypatch):
    monkeypatch.setenv("HOME", str(layout / "p"))
    monkeypatch.chdir(layout / "results")
    for path, what in [(os.sep, "root"), (layout / "p", "home"), (layout / "results", "current")]:
        with pytest.raises(ValueError, match=what):
            check_output_dir(path, overwrite=True)


def test_overwrite_never_replaces_a_folder_we_did_not_write(layout):
    before = _tree(layout)
    with pytest.raises(ValueError, match="notes.txt"):
        with atomic_output_dir(layout / "p", overwrite=True):
            pass
    assert _tree(layout) == before


def test_existing_output_needs_overwrite(layout):
    (layout / "out").mkdir()
    (layout / "out" / OUTPUT_MARKER).write_text("{}")
    with pytest.raises(FileExistsError, match="already exists"):
        check_output_dir(layout / "out")


def test_our_own_output_is_replaced_and_marked(layout):
    with atomic_output_dir(layout / "out") as tmp:
        (open(os.path.join(tmp, "a.txt"), "w")).write("1")
    assert os.path.isfile(layout / "out" / OUTPUT_MARKER)
    with atomic_output_dir(layout / "out", overwrite=True) as tmp:
        (open(os.path.join(tmp, "b.txt"), "w")).write("2")
    assert _tree(layout / "out") == sorted([OUTPUT_MARKER, "b.txt"])
    # An empty folder may be filled; a folder merely holding a file of a familiar name is not ours.
    (layout / "empty").mkdir()
    check_output_dir(layout / "empty", overwrite=True)
    (layout / "foreign").mkdir()
    (layout / "foreign" / "dataset.json").write_text(json.dumps({"format": "someone-else"}))
    with pytest.raises(ValueError, match="did not write"):
        check_output_dir(layout / "foreign", overwrite=True)


def test_temporary_folder_of_a_killed_run_is_removed(layout):
    # A child process opens an output, then dies by SIGKILL inside it.
    code = ("import os, signal, sys; from dnnlib.fileutil import atomic_output_dir\n"
            "with atomic_output_dir(sys.argv[1]):\n    os.kill(os.getpid(), signal.SIGKILL)\n")
    env = dict(os.environ, PYTHONPATH=REPO)
    proc = subprocess.run([sys.executable, "-c", code, str(layout / "out")], env=env)
    assert proc.returncode != 0
    stale = [e for e in os.listdir(layout) if e.startswith(".tmp-out-")]
    assert len(stale) == 1
    with atomic_output_dir(layout / "out"):
        pass
    assert not [e for e in os.listdir(layout) if e.startswith(".tmp-out-")]
    assert os.path.isdir(layout / "out")
