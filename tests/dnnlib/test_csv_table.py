"""dnnlib/csv_table.py: columns as CSV text, written atomically (no temporary left, the old file kept on failure)."""

import pytest

from dnnlib import csv_table, fileutil


def test_write_csv_writes_the_columns(tmp_path):
    path = tmp_path / "t.csv"
    assert csv_table.write_csv(path, {"i": [1, 2], "v": [0.5, 1 / 3]}) == path
    assert path.read_text() == "i,v\n1,0.5\n2,0.333333\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    csv_table.write_csv(path, {"i": [1]})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(fileutil.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        csv_table.write_csv(path, {"i": [2]})
    assert path.read_text() == "i\n1\n" and sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]
