"""dnnlib.cli.main through every front end: help exits 0, flag errors exit 2 with one line, StyleGAN2-ADA
spellings are accepted; dnnlib.tf_quiet keeps TensorFlow's start-up notices off stderr but real warnings on it."""

import os

import pytest

from dnnlib import cli, tf_quiet
from tests.utils import make_tiny_dataset, run_script
from volumes.folder_kind import folder_kind

FRONT_ENDS = ["run_training.py", "run_generator.py", "run_projector.py", "run_metrics.py", "run_latent.py",
              "dataset_tool.py"]


HELP = [(script, "--help") for script in FRONT_ENDS] + [("run_generator.py", "-h"), ("dataset_tool.py", "--helpfull")]


@pytest.mark.parametrize("script, help_flag", HELP, ids=[" ".join(h) for h in HELP])
def test_help_exits_0(script, help_flag):
    r = run_script(script, help_flag)
    assert r.returncode == 0, r.stderr[-1000:]
    assert f"python {script}" in r.stdout and "--" in r.stdout  # the usage, then the flags


# (script, arguments, phrase of the one error line): absl refuses these while parsing.
PARSE_ERRORS = [
    (script, args, phrase)
    for script in FRONT_ENDS
    for args, phrase in ((["--no_such_flag=1"], "no_such_flag"), (["--batch=abc"], "--batch=abc"))
    if not (script == "dataset_tool.py" and args == ["--batch=abc"])
] + [
    ("run_generator.py", ["generate", "--noise_mode=loud"], "--noise_mode=loud"),
    ("run_projector.py", ["--loss=l1"], "--loss=l1"),
    ("run_metrics.py", ["--feature_input=raw"], "--feature_input=raw"),
    ("run_training.py", ["--precision=fp8"], "--precision=fp8"),
    ("dataset_tool.py", ["info", "--workers=many"], "--workers=many"),
    ("dataset_tool.py", ["info", "--dtype=int4"], "--dtype=int4"),
]


@pytest.mark.parametrize("script, args, phrase", PARSE_ERRORS, ids=[f"{s} {' '.join(a)}" for s, a, _ in PARSE_ERRORS])
def test_flag_parse_errors_exit_2_with_one_line(script, args, phrase):
    r = run_script(script, *args)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error: ") and phrase in lines[0] and "FATAL" not in lines[0]


# StyleGAN2-ADA spellings: each run stops at a validation error that shows the value reached the canonical flag.
ALIASES = [
    ("run_generator.py", ["generate", "--seeds=1", "--trunc=abc"], "--psi=abc"),
    ("run_generator.py", ["generate", "--seeds=1", "--class=x"], "--class_idx=x"),
    ("run_generator.py", ["generate", "--seeds=1", "--noise-mode=loud"], "--noise_mode=loud"),
    ("run_generator.py", ["generate", "--latent={tmp}/none.npy"], "--projected_w={tmp}/none.npy: no such file"),
    ("run_generator.py", ["generate", "--projected-w={tmp}/none.npy"], "--projected_w={tmp}/none.npy"),
    ("run_generator.py", ["style-mix", "--row-seeds=1", "--col-seeds=x"], "--col_seeds='x'"),
    ("run_projector.py", ["--target_seeds=1", "--num-steps=0"], "--num_steps=0: must be at least 1"),
    ("run_projector.py", ["--target_seeds=1", "--class=x"], "--class_idx=x"),
    ("run_metrics.py", ["--trunc=abc"], "--psi=abc"),
    ("run_training.py", ["--cfg=no-such-config", "--summary"], "no-such-config"),
    ("run_training.py", ["--gpus=-1"], "--gpus=-1: must be >= 0"),
    ("run_training.py", ["--kimg-per-tick=0"], "--kimg_per_tick=0"),
    ("dataset_tool.py", ["split", "--dataset={tmp}", "--output={tmp}/o", "--test-fraction=2"], "--test_fraction=2"),
]


@pytest.mark.parametrize("script, args, phrase", ALIASES, ids=[f"{s} {' '.join(a)}" for s, a, _ in ALIASES])
def test_stylegan2_ada_spellings_reach_the_canonical_flag(tmp_path, script, args, phrase):
    common = {"run_generator.py": [f"--network={tmp_path}/net", f"--outdir={tmp_path}/out"],
              "run_projector.py": [f"--network={tmp_path}/net", f"--outdir={tmp_path}/out"],
              "run_metrics.py": [f"--network={tmp_path}", f"--data={tmp_path}"]}.get(script, [])
    r = run_script(script, *[a.format(tmp=tmp_path) for a in args], *common)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr[-2000:]
    assert phrase.format(tmp=tmp_path) in lines[0], lines[0]


# (argv, defined flags, aliases, expected argv).
REWRITES = [
    (["p", "--num-steps=3"], {"num_steps"}, {}, ["p", "--num_steps=3"]),
    (["p", "--num-steps", "3"], {"num_steps"}, {}, ["p", "--num_steps", "3"]),
    (["p", "-num-steps=3"], {"num_steps"}, {}, ["p", "-num_steps=3"]),
    (["p", "--no-save-frames"], {"save_frames"}, {}, ["p", "--nosave_frames"]),
    (["p", "--no_overwrite"], {"overwrite"}, {}, ["p", "--nooverwrite"]),
    (["p", "--noise-mode=const"], {"noise_mode"}, {}, ["p", "--noise_mode=const"]),
    (["p", "--cfg=demo"], {"config"}, {"cfg": "config"}, ["p", "--config=demo"]),
    (["p", "--trunc", "0.7"], {"psi"}, {"trunc": "psi"}, ["p", "--psi", "0.7"]),
    (["p", "-h"], {"psi"}, {}, ["p", "--help"]),
    (["p", "generate", "--seeds=-3"], {"seeds"}, {}, ["p", "generate", "--seeds=-3"]),
    (["p", "--", "--num-steps=3"], {"num_steps"}, {}, ["p", "--", "--num-steps=3"]),
    (["p", "--unknown-flag=1"], {"num_steps"}, {}, ["p", "--unknown-flag=1"]),  # absl reports it, as typed
]


@pytest.mark.parametrize("argv, names, aliases, expected", REWRITES, ids=[" ".join(r[0][1:]) for r in REWRITES])
def test_apply_aliases(argv, names, aliases, expected):
    assert cli.apply_aliases(argv, names, aliases) == expected


def test_folder_hints(tmp_path):
    make_tiny_dataset(tmp_path / "ds", num=2)
    scans = tmp_path / "scans" / "sub-01"
    scans.mkdir(parents=True)
    (scans / "t1.nii.gz").write_bytes(b"")
    with pytest.raises(cli.UserError, match="this is a dataset.*did you mean --data"):
        cli.check_network_flag(str(tmp_path / "ds"), folder_kind(str(tmp_path / "ds")))
    with pytest.raises(cli.UserError, match="holds scans, not a dataset: create one with dataset_tool.py create"):
        cli.check_data_flag(str(tmp_path / "scans"), folder_kind(str(tmp_path / "scans")))
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    with pytest.raises(cli.UserError, match="did you mean --network"):
        cli.check_data_flag(str(tmp_path / "run"), folder_kind(str(tmp_path / "run")))
    cli.check_network_flag(str(tmp_path / "run"), folder_kind(str(tmp_path / "run")))
    cli.check_data_flag(str(tmp_path / "ds"), folder_kind(str(tmp_path / "ds")))


def test_dataset_as_network_is_refused_by_the_front_end(tmp_path):
    ds = make_tiny_dataset(tmp_path / "ds", num=2)
    r = run_script("run_generator.py", "generate", f"--network={ds}", f"--outdir={tmp_path}/o", "--seeds=1")
    assert r.returncode == 2 and "did you mean --data?" in r.stderr


NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795980067.008010    8147 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders.",
    "I0000 00:00:1795980067.008322    8147 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1795980069.979696    8147 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed "
    "call to cuInit: UNKNOWN ERROR (303)",
    "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
    "compiler flags.",
]
REAL = [
    "W0000 00:00:1795980067.1 8147 gpu_device.cc:2344] Cannot dlopen some GPU libraries.",
    "UserWarning: something the user must see",
]


def test_filtered_stderr_fd_drops_notices_and_keeps_warnings(capfd):
    with tf_quiet.filtered_stderr_fd():
        os.write(2, "\n".join(NOISE[:2] + REAL[:1] + NOISE[2:] + REAL[1:]).encode() + b"\n")
    err = capfd.readouterr().err
    assert err.splitlines() == REAL
    assert all(tf_quiet.is_noise(n) for n in NOISE) and not any(tf_quiet.is_noise(r) for r in REAL)


def test_tensorflow_start_up_is_quiet():
    # Even with every C++ log level on: the notices come before TensorFlow reads its log settings.
    r = run_script("run_training.py", "--cfg=demo-tiny", "--summary", env={"TF_CPP_MIN_LOG_LEVEL": "0"})
    assert r.returncode == 0 and "demo-tiny: G" in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("values, expected", [(None, None), (["1", " -2.5", "3e-1"], [1.0, -2.5, 0.3]), ([], [])])
def test_label_values_become_floats(values, expected):
    assert cli.parse_label(values) == expected


@pytest.mark.parametrize("values, message", [(["1", "a"], "--label=1,a: expected comma-separated numbers"),
                                             (["nan"], "--label=nan: every value must be a finite number"),
                                             (["1", "-inf"], "--label=1,-inf: every value must be a finite number")])
def test_label_values_that_are_not_finite_numbers_are_refused(values, message):
    with pytest.raises(cli.UserError, match=message):
        cli.parse_label(values)
