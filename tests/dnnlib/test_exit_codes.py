"""The one exit-code rule (dnnlib.cli.run_main): input errors -> one 'error:' line and exit 2; bugs -> traceback, 1."""

import errno
import os

import pytest

from dnnlib.cli import run_main
from dnnlib.errors import InputError, OutputConflict, UserError
from tests.utils import run_script


def _tf_error(name):
    """An exception class that looks like TensorFlow's (same name and module), without importing TensorFlow."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message

    return type(name, (Exception,), {"__module__": "tensorflow.python.framework.errors_impl", "__init__": __init__})


INPUT_ERROR_CASES = [
    (UserError("--psi=nan: must be a finite number"), "--psi=nan"),
    (InputError("data-00000.tfrecord.gz: corrupt record"), "corrupt record"),
    (OutputConflict("out holds files this project did not write (thesis.txt)"), "thesis.txt"),
    (OSError(errno.ENOSPC, "No space left on device", "ckpt-3"), "No space left"),
    (FileNotFoundError("scan.nii.gz: no such file"), "scan.nii.gz"),
    (_tf_error("DataLossError")("corrupted record at 12\n\tin shard data-00000"), "corrupted record at 12"),
    (_tf_error("ResourceExhaustedError")("ckpt-3_temp; No space left on device"), "No space left"),
]


@pytest.mark.parametrize("error,says", INPUT_ERROR_CASES, ids=[type(e).__name__ for e, _ in INPUT_ERROR_CASES])
def test_input_errors_print_one_line_and_exit_2(error, says, capsys):
    def main(argv):
        raise error

    with pytest.raises(SystemExit) as e:
        run_main(main)(["prog"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and says in err and len(err.strip().splitlines()) == 1


BUG_CASES = [ValueError("an internal shape mismatch"), TypeError("bad call"), KeyError("x"),
             _tf_error("InvalidArgumentError")("Incompatible shapes")]


@pytest.mark.parametrize("error", BUG_CASES, ids=[type(e).__name__ for e in BUG_CASES])
def test_bugs_keep_their_exception(error):
    def main(argv):
        raise error

    with pytest.raises(type(error)):
        run_main(main)(["prog"])


def test_a_deliberate_bug_in_a_command_exits_1_with_a_traceback(tmp_path):
    # run_generator.py with one of its functions monkeypatched to raise a plain ValueError, as a bug would.
    code = ("import sys\nimport run_generator as r\n"
            "def broken(argv, f=None):\n    raise ValueError('deliberate bug')\n"
            "r.build_options = broken\n"
            "from dnnlib.cli import main\n"
            f"sys.argv = ['run_generator.py', 'generate', '--network=demo', '--seeds=0', '--outdir={tmp_path}/o']\n"
            "main(r.main)\n")
    script = tmp_path / "patched.py"
    script.write_text(code)
    r = run_script(str(script))
    assert r.returncode == 1, r.stderr
    assert "Traceback" in r.stderr and "ValueError: deliberate bug" in r.stderr
    assert "error: deliberate bug" not in r.stderr
    assert not os.path.exists(tmp_path / "o")
