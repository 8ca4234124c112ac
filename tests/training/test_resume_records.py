"""Resume keeps the record of every run: other data is refused unless allowed, and earlier records are kept."""

import json
import os

import pytest

from tests.utils import make_tiny_dataset, tiny_options

ARGS = dict(kimg_per_tick=0.004, snap=1, samples=1, data_shuffle=False)


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    from training.training_loop import training_loop

    tmp = tmp_path_factory.mktemp("records")
    data = make_tiny_dataset(str(tmp / "data"), num=4, seed=0)
    result = training_loop(tiny_options(tmp, data, kimg=0.004, **ARGS))
    return tmp, data, result.run_dir


def _read(path):
    with open(path) as f:
        return json.load(f)


def test_resume_on_other_data_is_refused_and_nothing_is_rewritten(first_run):
    from training.training_loop import training_loop

    tmp, _, run_dir = first_run
    other = make_tiny_dataset(str(tmp / "other"), num=5, seed=1)
    before = {name: open(os.path.join(run_dir, name)).read() for name in ("training_options.json", "dataset.json")}
    with pytest.raises(ValueError, match="other data"):
        training_loop(tiny_options(tmp, other, kimg=0.008, resume=run_dir, **ARGS))
    for name, text in before.items():
        assert open(os.path.join(run_dir, name)).read() == text
    assert not os.path.exists(os.path.join(run_dir, "dataset.1.json"))


def test_allowed_data_change_keeps_the_first_records(first_run):
    from training.training_loop import training_loop

    tmp, data, run_dir = first_run
    first_options = _read(os.path.join(run_dir, "training_options.json"))
    first_dataset = _read(os.path.join(run_dir, "dataset.json"))
    other = make_tiny_dataset(str(tmp / "other2"), num=3, seed=2)
    training_loop(tiny_options(tmp, other, kimg=0.008, resume=run_dir, allow_data_change=True, **ARGS))
    assert _read(os.path.join(run_dir, "training_options.1.json")) == first_options
    assert _read(os.path.join(run_dir, "dataset.1.json")) == first_dataset
    assert _read(os.path.join(run_dir, "dataset.json"))["num_volumes"] == 3
    assert _read(os.path.join(run_dir, "training_options.json"))["data"] == other
