"""dnnlib.run_dir: run folders numbered like StyleGAN2's."""

import os

import pytest

from dnnlib.run_dir import next_run_dir

# (names already in outdir, desc, expected new name)
NUMBERING_CASES = [
    ([], "demo", "00000-demo"),
    (["00000-a", "00001-b"], "c", "00002-c"),
    (["00007-x", "00002-y"], "z", "00008-z"),  # one above the largest, gaps are not filled
    (["notes.txt", "abc-1", "00003"], "z", "00000-z"),  # only NNNNN-... names count
    (["00004-file.txt"], "z", "00005-z"),  # files with a run-like name count too
    ([], "paper 1mm/fid:50k", "00000-paper_1mm_fid_50k"),  # unsafe characters become '_'
]


@pytest.mark.parametrize("existing, desc, expected", NUMBERING_CASES)
def test_next_run_dir_numbering(tmp_path, existing, desc, expected):
    outdir = tmp_path / "results"
    outdir.mkdir()
    for name in existing:
        if "." in name:
            (outdir / name).write_text("")
        else:
            (outdir / name).mkdir()
    path = next_run_dir(str(outdir), desc)
    assert path == os.path.join(str(outdir), expected) and os.path.isdir(path)


def test_next_run_dir_makes_outdir_and_counts_up(tmp_path):
    outdir = str(tmp_path / "new" / "results")
    first = next_run_dir(outdir, "a")
    second = next_run_dir(outdir, "a")
    assert os.path.basename(first) == "00000-a" and os.path.basename(second) == "00001-a"
