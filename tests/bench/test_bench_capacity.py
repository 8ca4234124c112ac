"""bench/bench_capacity.py: the widened generator makes the narrow one's volumes, and its rules per variable."""

import json
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bench import bench_capacity
from tests.utils import run_script
from training.configs import get_config
from training.networks import Generator


def test_widened_generator_makes_the_narrow_ones_volumes():
    tf.random.set_seed(3)
    kwargs = dict(get_config("demo-tiny").G_kwargs, c_dim=0, img_channels=1)
    narrow = Generator(**kwargs)
    for v in narrow.trainable_variables:  # trained-like weights: no zero biases, no unit styles
        v.assign(v + tf.random.normal(v.shape, stddev=0.3, seed=1))
    wide = Generator(**bench_capacity.wide_kwargs(kwargs, 16))
    assert sum(int(np.prod(v.shape)) for v in wide.trainable_variables) > \
        2 * sum(int(np.prod(v.shape)) for v in narrow.trainable_variables)
    z = tf.constant(np.random.RandomState(0).standard_normal([3, narrow.z_dim]), tf.float32)
    before = wide(z, None, noise_mode="const").numpy()
    bench_capacity.widen_generator(narrow, wide)
    want = narrow(z, None, noise_mode="const").numpy()
    got = wide(z, None, noise_mode="const").numpy()
    np.testing.assert_allclose(got, want, atol=2e-5)
    assert np.abs(before - want).max() > 0.1  # the check can fail: a fresh wide network makes other volumes


def test_a_widening_a_config_builds_is_recorded_under_its_name():
    demo = dict(get_config("demo").G_kwargs)
    assert bench_capacity.wide_config_name("demo", bench_capacity.wide_kwargs(demo, 128)) == "demo-wide"
    assert bench_capacity.wide_config_name("demo", bench_capacity.wide_kwargs(demo, 256)) is None
    tiny = dict(get_config("demo-tiny").G_kwargs)
    assert bench_capacity.wide_config_name("demo-tiny", bench_capacity.wide_kwargs(tiny, 16)) is None


# (path, narrow shape, wide shape, what the new parts must hold)
RULE_CASES = [
    (("synthesis", "blocks", 1, "conv0", "weight"), (3, 3, 3, 4, 2), (3, 3, 3, 8, 4), "zero-new-inputs"),
    (("synthesis", "blocks", 1, "torgb", "weight"), (1, 1, 1, 4, 1), (1, 1, 1, 8, 1), "torgb-gain"),
    (("synthesis", "blocks", 1, "conv0", "bias"), (2,), (4,), "fresh"),
    (("synthesis", "blocks", 0, "const"), (1, 2, 2, 2, 4), (1, 2, 2, 2, 8), "fresh"),
    (("mapping", "layers", 0, "weight"), (4, 4), (4, 4), "copy"),
]


@pytest.mark.parametrize("path, old_shape, new_shape, rule", RULE_CASES)
def test_widen_value_rules(path, old_shape, new_shape, rule):
    rng = np.random.RandomState(1)
    old, fresh = rng.standard_normal(old_shape), rng.standard_normal(new_shape)
    out = bench_capacity.widen_value(path, old, fresh)
    block = tuple(slice(0, n) for n in old_shape)
    if rule == "torgb-gain":
        np.testing.assert_allclose(out[block], old * np.sqrt(new_shape[3] / old_shape[3]))
    else:
        np.testing.assert_array_equal(out[block], old)
    if rule == "zero-new-inputs":
        assert np.all(out[..., old_shape[3]:, :old_shape[4]] == 0)
        np.testing.assert_array_equal(out[..., old_shape[4]:], fresh[..., old_shape[4]:])
    if rule == "fresh":
        rest = np.ones(new_shape, bool)
        rest[block] = False
        np.testing.assert_array_equal(out[rest], fresh[rest])


def test_a_folder_without_checkpoints_is_one_error_line_and_nothing_written(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "training_options.json").write_text('{"config": "demo-tiny"}')
    out = tmp_path / "out"
    p = run_script("bench/bench_capacity.py", "widen", f"--run={run}", f"--out={out}", timeout=300)
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "no intact checkpoint" in err[0], p.stderr
    assert not out.exists()


@pytest.fixture(scope="module")
def shipped_demo_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("narrow") / "run"
    shutil.copytree("pretrained/demo/run", run)
    return run


def test_widening_the_shipped_demo_run_gives_a_demo_wide_run_that_makes_its_volumes(shipped_demo_run, tmp_path):
    out = tmp_path / "out"
    p = run_script("bench/bench_capacity.py", "widen", f"--run={shipped_demo_run}", f"--out={out}", "--fmap=128",
                   timeout=600)
    assert p.returncode == 0, p.stderr
    (wide,) = list(out.iterdir())
    options = json.loads((wide / "training_options.json").read_text())
    assert options["config"] == "demo-wide" and options["cli_args"]["config"] == "demo-wide"
    record = json.loads((wide / "run.json").read_text())
    assert record["max_output_difference"] < 1e-4
    assert (wide / "dataset.json").read_bytes() == (shipped_demo_run / "dataset.json").read_bytes()
    assert sorted(f.name for f in (wide / "checkpoints").iterdir() if f.name.startswith("ckpt-5834."))


def test_a_widening_that_fails_after_making_its_run_folder_removes_it(shipped_demo_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(shipped_demo_run, run)
    (run / "dataset.json").unlink()
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("not the project's")
    p = run_script("bench/bench_capacity.py", "widen", f"--run={run}", f"--out={out}", timeout=600)
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and "dataset.json" in err[0], p.stderr
    assert sorted(f.name for f in out.iterdir()) == ["mine.txt"]
