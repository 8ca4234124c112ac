"""dnnlib.logging_util.Logger: what is printed reaches both the console and the run's log file."""

import sys

import pytest

from dnnlib.logging_util import Logger


def test_stdout_and_stderr_go_to_the_console_and_the_log(tmp_path, capsys):
    path = tmp_path / "log.txt"
    with Logger(str(path)) as log:
        assert sys.stdout is log and sys.stderr is log
        print("hello")
        print("oops", file=sys.stderr)
        log.write("")  # nothing to write: nothing happens
    assert sys.stdout is not log and sys.stderr is not log
    assert path.read_text() == "hello\noops\n"
    console = capsys.readouterr()
    assert console.out + console.err == "hello\noops\n"


# (file mode, text already in the log, expected log afterwards)
MODE_CASES = [("a", "earlier\n", "earlier\nnew\n"), ("w", "earlier\n", "new\n")]


@pytest.mark.parametrize("mode, before, after", MODE_CASES, ids=["append", "truncate"])
def test_file_mode(tmp_path, capsys, mode, before, after):
    path = tmp_path / "log.txt"
    path.write_text(before)
    with Logger(str(path), file_mode=mode):
        print("new")
    assert path.read_text() == after


def test_nested_loggers_restore_in_order(tmp_path, capsys):
    console = sys.stdout
    outer = Logger(str(tmp_path / "outer.txt"))
    inner = Logger(str(tmp_path / "inner.txt"))
    print("both")
    inner.close()
    assert sys.stdout is outer
    print("outer only")
    outer.close()
    assert sys.stdout is console
    assert (tmp_path / "inner.txt").read_text() == "both\n"
    assert (tmp_path / "outer.txt").read_text() == "both\nouter only\n"
