"""run_training.py front end: flags made from the option table, validated with one-line errors (exit 2); --summary;
option resolution in training/train_options.py with plain exceptions that name no flag."""

import os
import re

import pytest
from absl import flags

import run_training
from dnnlib import UserError
from tests.utils import make_tiny_dataset, run_script
from training.train_options import DEMO_MINUTES, OPTIONS, PRECISIONS, STRATEGIES, build_options


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    return make_tiny_dataset(str(tmp_path_factory.mktemp("data") / "tiny"), num=2)


def _script_flags():
    flag_values = flags.FlagValues()
    run_training.define_flags(flag_values)
    return flag_values


def test_flags_are_the_option_table():
    flag_values = _script_flags()
    table = {o.name: o for o in OPTIONS if o.flag}
    # --gpus (StyleGAN2-ADA's) chooses the visible devices before TensorFlow loads: not a training option.
    assert set(flag_values) == set(table) | set(run_training.CLI_ACTIONS) | {"gpus"}
    for name, option in table.items():
        flag = flag_values[name]
        assert flag.default == (list(option.default) if option.type is list else option.default), name
        assert flag.help.endswith(option.help), name  # an enum's help starts with its <choices>
        if option.choices:
            assert list(flag.parser.enum_values) == list(option.choices), name
    assert table["precision"].choices == tuple(PRECISIONS) and table["strategy"].choices == STRATEGIES
    # Every table entry is an option of build_options; the others are not flags.
    assert not {o.name for o in OPTIONS if not o.flag} & set(flag_values)
    with pytest.raises(TypeError, match="unknown options"):
        build_options(no_such_option=1)


def _flag_values(**overrides):
    values = {o.name: (list(o.default) if o.type is list else o.default) for o in OPTIONS if o.flag}
    values.update(overrides)
    return values


BAD_FLAGS = [
    (dict(batch=0), "--batch=0: must be a positive number"),
    (dict(collective_timeout=-1.0), "--collective_timeout=-1.0: must be"),
    (dict(kimg=-1.0), "--kimg=-1.0: must be a positive number"),
    (dict(kimg_per_tick=0.0), "--kimg_per_tick=0.0: must be a positive"),
    (dict(snap=-2), "--snap=-2: must be a positive"),
    (dict(max_minutes=float("nan")), "--max_minutes=nan: must be a positive"),
    (dict(samples=0), "--samples=0: must be a positive"),
    (dict(keep_checkpoints=0), "--keep_checkpoints=0: must be a positive"),
    (dict(metric_num=-1), "--metric_num=-1: must be a positive"),
    (dict(gamma=-1.0), r"--gamma=-1.0: must be >= 0"),
    (dict(r2_gamma=float("inf")), r"--r2_gamma=inf: must be >= 0"),
    (dict(data="/nonexistent/dataset"), "--data=/nonexistent/dataset: no such dataset directory"),
    (dict(strategy="multi_worker"), "--strategy=multi_worker needs the TF_CONFIG"),
    (dict(aug="sometimes"), "--aug=sometimes: choose one of ada, fixed, noaug"),
    (dict(aug="fixed", p=1.5), r"--p=1.5: must be in \[0, 1\]"),
    (dict(aug="ada", p=-0.1), r"--p=-0.1: must be in \[0, 1\]"),
    (dict(p=float("nan")), r"--p=nan: must be in \[0, 1\]"),
    (dict(aug="noaug", p=0.2), "--p=0.2: there is no augmentation probability with --aug=noaug"),
    (dict(target=1.0), r"--target=1.0: must be in \(0, 1\)"),
    (dict(target=0.0), r"--target=0.0: must be in \(0, 1\)"),
    (dict(augpipe="bq"), "--augpipe=bq: use distinct letters of bgcn"),
    (dict(augpipe="bb"), "--augpipe=bb: use distinct letters"),
    (dict(augpipe=""), "--augpipe=: use distinct letters"),
    (dict(ada_kimg=0.0), "--ada_kimg=0.0: must be a positive number"),
    (dict(ada_kimg=float("inf")), r"--ada_kimg=inf: must be a positive number \(finite\)"),
    (dict(kimg=float("inf")), r"--kimg=inf: must be a positive number \(finite\)"),
    (dict(kimg=float("nan")), "--kimg=nan: must be a positive number"),
    (dict(kimg_per_tick=float("inf")), r"--kimg_per_tick=inf: must be a positive number \(finite\)"),
]


@pytest.mark.parametrize("overrides,message", BAD_FLAGS)
def test_bad_flag_values_are_refused_naming_the_flag(monkeypatch, overrides, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(UserError, match=message):
        run_training.validate_flags(_flag_values(**overrides))


def test_good_flag_values_pass(tiny_data):
    run_training.validate_flags(_flag_values())
    run_training.validate_flags(_flag_values(data=tiny_data, batch=4, kimg=0.5, gamma=0.0, r2_gamma=2.0, snap=1))
    run_training.validate_flags(_flag_values(aug="fixed", p=0.0, target=0.9, augpipe="NCGB", ada_kimg=0.5))
    run_training.validate_flags(_flag_values(aug="ada", p=1.0, augpipe="b"))
    run_training.validate_flags(_flag_values(max_minutes=float("inf")))  # no time limit


def test_bad_flags_exit_2_with_one_line(tmp_path):
    proc = run_script("run_training.py", f"--data={tmp_path / 'missing'}", f"--outdir={tmp_path / 'out'}")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith("error: --data=")
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(tmp_path / "out")
    proc = run_script("run_training.py", "positional")
    assert proc.returncode == 2 and "unexpected arguments" in proc.stderr


# Errors found by the library (plain exceptions) still end the CLI with one line and exit 2.
LIBRARY_ERRORS = [
    (["--config=demo"], r"error: config demo makes \(40, 48, 56\) volumes but dataset .* holds \(20, 24, 28\)"),
    (["--config=demo-tiny", "--batch=3"], "error: batch 3 is not divisible by the path-length batch shrink 2"),
    (["--config=nope"], "error: unknown config 'nope'"),
    (["--config=demo-tiny", "--metrics=no_such_metric"], "error: --metrics: unknown metric"),
    (["--config=demo-tiny", "--metrics=fid_3d"], "error: --metric_feature_network: fid_3d needs"),
]


@pytest.mark.parametrize("args,message", LIBRARY_ERRORS)
def test_library_errors_exit_2_with_one_line(tmp_path, tiny_data, args, message):
    proc = run_script("run_training.py", f"--data={tiny_data}", f"--outdir={tmp_path / 'out'}", *args)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert re.match(message, last), last
    assert not os.path.exists(tmp_path / "out")


def test_resume_of_nothing_exits_2(tmp_path):
    proc = run_script("run_training.py", f"--resume={tmp_path / 'nothing'}", f"--outdir={tmp_path / 'out'}")
    assert proc.returncode == 2 and "not a run directory or a checkpoint prefix" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_summary_prints_layers_and_totals():
    proc = run_script("run_training.py", "--config=demo-tiny", "--summary")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Generator" in proc.stdout and "Discriminator" in proc.stdout
    assert "demo-tiny: G " in proc.stdout and "trainable parameters" in proc.stdout


def test_options_resolution(tiny_data):
    opts = build_options(data=tiny_data, config="demo-tiny", gamma=3.5, batch=4, kimg=2, precision="mixed_bf16",
                         lazy_reg=False)
    assert opts.loss_kwargs.r1_gamma == 3.5 and opts.batch_size == 4 and opts.total_kimg == 2.0
    assert opts.G_kwargs.synthesis_kwargs.compute_dtype == "bfloat16" and opts.D_kwargs.compute_dtype == "bfloat16"
    assert opts.loss_kwargs.G_reg_interval == 0 and opts.loss_kwargs.D_reg_interval == 0
    assert opts.G_kwargs.c_dim == 0 and opts.img_shape == [20, 24, 28]
    assert opts.max_minutes is None  # the time budget applies to the no-flag demo only
    opts = build_options(data=tiny_data, config="demo-tiny", metrics=["fid_3d"], metric_feature_network="/x/net.keras",
                         metric_feature_layer="pool")
    assert opts.metric_kwargs == {"feature_network": "/x/net.keras", "feature_layer": "pool"}


@pytest.mark.parametrize("config", ["demo", "demo-wide"])
def test_cpu_demo_configs_get_the_time_budget_without_kimg(tmp_path, config):
    data = make_tiny_dataset(str(tmp_path / "demo-shaped"), num=2, shape=(40, 48, 56), spacing=4.0)
    opts = build_options(data=data, config=config)
    assert opts.max_minutes == DEMO_MINUTES and opts.aug == "ada"
    assert build_options(data=data, config=config, kimg=1).max_minutes is None
    assert build_options(data=data, config=config, max_minutes=3).max_minutes == 3.0


BAD_OPTIONS = [
    (dict(batch=3), ValueError, "batch 3 is not divisible by the path-length batch shrink 2"),
    (dict(config="nope"), ValueError, "unknown config 'nope'"),
    (dict(config="demo"), ValueError, r"config demo makes \(40, 48, 56\) volumes but dataset .* holds"),
    (dict(precision="fp8"), ValueError, "unknown precision 'fp8'"),
    # Metrics that need a feature network fail at start-up, not at the first snapshot.
    (dict(metrics=["fid_3d"]), ValueError, "fid_3d needs a 3D feature network"),
    (dict(metrics=["no_such_metric"]), ValueError, "unknown metric"),
    (dict(resume="/nonexistent/run"), FileNotFoundError, "not a run directory or a checkpoint prefix"),
    (dict(data="/nonexistent/dataset"), FileNotFoundError, "dataset folder not found"),
]


@pytest.mark.parametrize("overrides,error,message", BAD_OPTIONS)
def test_bad_options_raise_plain_errors_naming_no_flag(tiny_data, overrides, error, message):
    args = dict(data=tiny_data, config="demo-tiny")
    args.update(overrides)
    with pytest.raises(error, match=message) as info:
        build_options(**args)
    assert "--" not in str(info.value) and not isinstance(info.value, UserError)


def test_sigterm_checkpoints_and_exits_143_for_requeueing(tiny_data, tmp_path):
    """A scheduler's SIGTERM: the step finishes, a checkpoint is written, and the exit status says 'not done'."""
    import signal
    import subprocess
    import sys

    from tests.utils import REPO
    from training.checkpoints import latest_intact_checkpoint

    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    cmd = [sys.executable, os.path.join(REPO, "run_training.py"), f"--data={tiny_data}", "--config=demo-tiny",
           "--kimg=100", "--kimg_per_tick=0.004", "--snap=1000", "--batch=2", f"--outdir={tmp_path}"]
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("tick 1 "):
                proc.send_signal(signal.SIGTERM)
                break
        out = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    (run,) = os.listdir(tmp_path)
    assert "stopped by SIGTERM" in out and latest_intact_checkpoint(os.path.join(tmp_path, run, "checkpoints"))


# (CUDA_VISIBLE_DEVICES before, --gpus, after).
GPU_CASES = [(None, 2, "0,1"), ("3,5,7", 2, "3,5"), (None, 0, ""), ("4", 1, "4")]


@pytest.mark.parametrize("before, n, after", GPU_CASES)
def test_gpus_flag_restricts_the_visible_devices(before, n, after):
    env = {} if before is None else {"CUDA_VISIBLE_DEVICES": before}
    run_training.restrict_gpus(n, env)
    assert env["CUDA_VISIBLE_DEVICES"] == after


def test_gpus_flag_refuses_more_than_visible():
    with pytest.raises(UserError, match="--gpus=3: only 1 GPU"):
        run_training.restrict_gpus(3, {"CUDA_VISIBLE_DEVICES": "0"})


# (step seconds per phase, phases with their intervals, images, batch, expected seconds).
PROJECTIONS = [
    ({"Gmain": 1.0, "Dmain": 2.0}, [("Gmain", 1), ("Dmain", 1)], 100, 10, 30.0),
    ({"Gmain": 1.0, "Greg": 4.0}, [("Gmain", 1), ("Greg", 4)], 100, 10, 10 + 4.0 * 3),  # Greg on steps 0, 4, 8
    ({"Gmain": 0.5}, [("Gmain", 1)], 101, 10, 0.5 * 11),  # a last, partial batch is a step too
]


@pytest.mark.parametrize("seconds, phases, nimg, batch, want", PROJECTIONS)
def test_dry_run_projects_the_whole_run(seconds, phases, nimg, batch, want):
    from training.training_loop import projected_training_seconds

    assert projected_training_seconds(seconds, phases, nimg, batch) == pytest.approx(want)


def test_run_summary_is_short_and_names_what_matters():
    from dnnlib import EasyDict
    from training.training_loop import run_summary

    opts = EasyDict(config="demo-tiny", data="/d/tiny", total_kimg=0.5, batch_size=4, precision="fp32")
    record = EasyDict(num_replicas=2, devices=["/gpu:0", "/gpu:1"], run_dir="results/00003-x")
    text = run_summary(opts, record, EasyDict(num_volumes=6, shape=[20, 24, 28], spacing=[8.0, 8.0, 8.0]))
    assert len(text.splitlines()) <= 6
    for part in ("demo-tiny", "/d/tiny", "6 volumes", "20x24x28", "0.5 kimg", "batch 4", "/gpu:1", "00003-x"):
        assert part in text, part
