"""dnnlib/option_table.py: one table per command gives its flags, defaults and help; every table (and the front
end built on it) imports without TensorFlow."""

import subprocess
import sys

import pytest
from absl import flags

from dnnlib.option_table import Option, default_value, defaults, define_flags, option_key, pick
from tests.utils import REPO

TABLE = (
    Option("name", str, None, "A name."),
    Option("count", int, 3, "How many."),
    Option("rate", float, 0.5, "How fast.", key="learning_rate"),
    Option("fast", bool, True, "Go fast."),
    Option("items", list, ("a", "b"), "Items."),
    Option("mode", str, "x", "A mode.", choices=("x", "y")),
    Option("hidden", int, 7, "Set from code.", flag=False),
)

# module of each command's option table -> the front end whose flags come from it
TABLES = {
    "training.train_options": "run_training",
    "generation.projection_options": "run_projector",
    "generation.generate_options": "run_generator",
    "generation.latent_stats.options": "run_latent",
    "metrics.metric_options": "run_metrics",
    "volumes.dataset_options": "dataset_tool",
}


def test_flags_come_from_the_table():
    fv = flags.FlagValues()
    define_flags(TABLE, fv)
    assert set(fv) == {o.name for o in TABLE if o.flag}
    for o in TABLE:
        if o.flag:
            assert fv[o.name].default == default_value(o) and fv[o.name].help.endswith(o.help), o.name
    assert list(fv["mode"].parser.enum_values) == ["x", "y"]
    assert fv["items"].default == ["a", "b"]
    with pytest.raises(flags.IllegalFlagValueError):
        fv(["prog", "--mode=z"])


def test_defaults_by_flag_or_by_key():
    assert defaults(TABLE) == dict(name=None, count=3, rate=0.5, fast=True, items=["a", "b"], mode="x", hidden=7)
    assert "learning_rate" in defaults(TABLE, by_key=True) and "rate" not in defaults(TABLE, by_key=True)
    assert option_key(TABLE[2]) == "learning_rate" and option_key(TABLE[1]) == "count"


def test_pick_takes_the_rows_themselves():
    count, rate = pick(TABLE, "count", "rate", help_prefix="sub: ")
    assert count._replace(help=TABLE[1].help) == TABLE[1] and count.help == "sub: How many."
    assert rate.key == "learning_rate"
    with pytest.raises(KeyError, match="nope"):
        pick(TABLE, "nope")


@pytest.mark.parametrize("module", sorted(TABLES))
def test_table_and_its_front_end_import_without_tensorflow(module):
    # Flag mistakes are reported before TensorFlow loads: neither a table nor its front end may import it, and
    # every flag of the table is defined by the front end with the table's default.
    script = TABLES[module]
    code = (f"import sys, {module} as t\n"
            "assert 'tensorflow' not in sys.modules, 'the table imported TensorFlow'\n"
            f"import {script} as s\n"
            "assert 'tensorflow' not in sys.modules, 'the front end imported TensorFlow'\n"
            "from absl import flags\n"
            "from dnnlib.option_table import default_value\n"
            "fv = flags.FLAGS\n"
            "if not any(o.name in fv for o in t.OPTIONS):\n"
            "    fv = flags.FlagValues(); s.define_flags(fv)\n"
            "for o in t.OPTIONS:\n"
            "    assert (o.name in fv) == o.flag, o.name\n"
            "    assert not o.flag or fv[o.name].default == default_value(o), o.name\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
