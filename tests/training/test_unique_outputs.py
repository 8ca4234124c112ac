"""Snapshot folders are named by step and never reused (the resumed run itself: tests/training/test_resume.py)."""

import pytest

from training import snapshot

# (step, cur_nimg, folders already there, the folder name expected)
NEW_SNAPSHOT_CASES = [
    (2, 4, [], "step00000002-kimg00000.004"),
    (1234, 12345678, [], "step00001234-kimg12345.678"),
    # A run killed after a snapshot and before its checkpoint, then resumed, writes the same step again.
    (6, 12, ["step00000006-kimg00000.012"], "step00000006-kimg00000.012-again1"),
    (6, 12, ["step00000006-kimg00000.012", "step00000006-kimg00000.012-again1"], "step00000006-kimg00000.012-again2"),
]


@pytest.mark.parametrize("step, nimg, existing, expected", NEW_SNAPSHOT_CASES)
def test_new_snapshot_dir_never_names_an_existing_folder(tmp_path, step, nimg, existing, expected):
    for name in existing:
        (tmp_path / name).mkdir()
    assert snapshot.new_snapshot_dir(str(tmp_path), step, nimg) == str(tmp_path / expected)


def test_write_snapshot_refuses_an_existing_folder(tmp_path):
    import numpy as np

    fakes = np.zeros([1, 4, 4, 4, 1], np.float32)
    path = snapshot.write_snapshot(str(tmp_path / "snap"), fakes, None, np.eye(4))
    with pytest.raises(FileExistsError):
        snapshot.write_snapshot(path, fakes, None, np.eye(4))
