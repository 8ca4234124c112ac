"""training/run_files.py: what counts as a run folder."""

import pytest

from training.run_files import OPTIONS_NAME as RUN_OPTIONS_NAME
from training.run_files import is_run_dir


def _run(tmp_path):
    path = tmp_path / "00000-run"
    path.mkdir()
    (path / RUN_OPTIONS_NAME).write_text("{}")
    return path


def _without_options(tmp_path):
    path = tmp_path / "00001-run"
    (path / "checkpoints").mkdir(parents=True)
    return path


def _a_file(tmp_path):
    path = tmp_path / RUN_OPTIONS_NAME
    path.write_text("{}")
    return path


# (make the candidate, is it a run folder)
IS_RUN_CASES = [
    (_run, True),
    (lambda tmp_path: str(_run(tmp_path)), True),
    (_without_options, False),
    (_a_file, False),
    (lambda tmp_path: tmp_path / "missing", False),
    (lambda tmp_path: None, False),
    (lambda tmp_path: 3, False),
]


@pytest.mark.parametrize("make, expected", IS_RUN_CASES,
                         ids=["path", "str", "no-options", "file", "missing", "none", "int"])
def test_is_run_dir(tmp_path, make, expected):
    assert is_run_dir(make(tmp_path)) is expected
