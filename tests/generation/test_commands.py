"""generation/commands.py: the command names load without TensorFlow; unknown commands are refused."""

import subprocess
import sys

import pytest

from generation import commands
from tests.utils import REPO


def test_commands_import_without_tensorflow():
    # run_generator.py validates its flags against COMMANDS before TensorFlow loads.
    code = "import sys, generation.commands; assert 'tensorflow' not in sys.modules, 'TensorFlow imported'"
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]


def test_unknown_command(tmp_path):
    with pytest.raises(ValueError, match="unknown command 'paint'"):
        commands.run(dict(command="paint", network="x", outdir=str(tmp_path / "o")))
    assert not (tmp_path / "o").exists()
