"""bench/gpu_check.py on this CPU-only machine: the quick report has every section, the kernels pass against their
references, a training step runs, and a bad flag is one error line."""

import re

import numpy as np
import pytest

from bench import gpu_check
from dnnlib import UserError
from tests.utils import run_script

SECTIONS = ["# 3D-StyleGAN GPU check", "**No GPU visible to TensorFlow", "**Summary:", "## Environment",
            "### GPUs", "## Paths chosen on this machine", "## Kernels against their NumPy references",
            "## Training steps (batch 1)"]


def _rows(report, section):
    """The table rows (lists of cells) under a '## section' heading."""
    body = report.split(section, 1)[1].split("\n## ", 1)[0]
    rows = [ln for ln in body.splitlines() if ln.startswith("| ") and not ln.startswith("|---")]
    return [[c.strip() for c in r.strip("|").split("|")] for r in rows[1:]]


def test_quick_report_on_cpu(tmp_path):
    # What `python -m bench.gpu_check --quick --configs=demo-tiny` prints here, with one dtype and one variant
    # (every kernel, one training step, with --recompute as GPU users check its memory) to keep the test short.
    out = tmp_path / "report.md"
    p = run_script("bench/gpu_check.py", "--quick", "--configs=demo-tiny", "--variants=fp32+recompute",
                   "--dtypes=float32", "--nokernel_xla", f"--out={out}", timeout=300)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-2000:]
    report = out.read_text()
    assert report in p.stdout
    for section in SECTIONS:
        assert section in report, section
    kernels = _rows(report, "## Kernels against their NumPy references")
    names = {r[0] for r in kernels}
    assert {"conv3d 3x3x3", "conv3d 1x1x1", "upfirdn_3d", "upsample_conv_3d", "conv_downsample_3d",
            "fused_bias_act lrelu, clamp", "modulated_conv3d small", "modulated_conv3d large", "add_noise"} <= names
    assert all(r[1] == "float32" and r[-1] == "PASS" for r in kernels), kernels
    paths = {(r[0], r[1]): r[2] for r in _rows(report, "## Paths chosen on this machine")}
    assert paths[("conv3d 3x3x3", "any")] == "fast_grad" and paths[("FIR (upfirdn_3d)", "bfloat16")] == "tf_ops"
    (step,) = _rows(report, "## Training steps (batch 1)")
    assert step[:2] == ["demo-tiny", "fp32+recompute"] and step[-1] == "PASS"
    assert float(step[4]) == pytest.approx(float(step[3]) * 1000, rel=0.01)  # sec/kimg at batch 1
    assert re.search(r"kernels (\d+)/\1 PASS, training steps 1/1 PASS", report)


def test_a_bad_flag_is_one_error_line():
    p = run_script("bench/gpu_check.py", "--variants=fp32,fp8", timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines()[-1].startswith("error: --variants: unknown variant 'fp8'")


GOOD = dict(configs=["demo-tiny"], variants=["fp32"], dtypes=["float32"], steps=3, quick=False, have_gpu=True)


@pytest.mark.parametrize("change,message", [
    (dict(configs=["nope"]), "--configs"), (dict(variants=["fp32+tpu"]), "--variants"),
    (dict(dtypes=["float8"]), "--dtypes"), (dict(steps=0), "--steps")])
def test_bad_values_name_their_flag(change, message):
    with pytest.raises(UserError, match=f"^{message}"):
        gpu_check.resolve_options(**dict(GOOD, **change))


# (quick, GPU, --configs given, --steps given) -> (configs, steps, quick): without a GPU everything is --quick.
RESOLVE_CASES = [
    (False, True, False, False, gpu_check.PAPER_CONFIGS, 3, False),
    (True, True, False, False, ["demo-tiny"], 1, True),
    (False, False, False, False, ["demo-tiny"], 1, True),
    (False, False, True, True, ["Gorig-Dres-3d-2mm-base567"], 3, True),
]


@pytest.mark.parametrize("quick,gpu,configs_given,steps_given,configs,steps,quick_out", RESOLVE_CASES)
def test_resolve_options(quick, gpu, configs_given, steps_given, configs, steps, quick_out):
    given = ["Gorig-Dres-3d-2mm-base567"] if configs_given else gpu_check.PAPER_CONFIGS
    got = gpu_check.resolve_options(given, ["fp32"], ["float32"], 3, quick, gpu, configs_given=configs_given,
                                    steps_given=steps_given)
    assert (got[0], got[3], got[4]) == (configs, steps, quick_out)


def test_errors_compare_against_the_reference_scale():
    want = np.array([[1.0, -4.0], [2.0, 0.5]])
    got = want + np.array([[0.0, 0.02], [-0.01, 0.0]])
    assert gpu_check._errors(got, want) == pytest.approx((0.02, 0.005))
    assert gpu_check.parse_variant("mixed_bf16+xla") == ("mixed_bf16", True, False)
    assert gpu_check.parse_variant("fp32") == ("fp32", False, False)
    assert gpu_check.parse_variant("mixed_fp16+xla+recompute") == ("mixed_fp16", True, True)
    with pytest.raises(ValueError, match="unknown variant"):
        gpu_check.parse_variant("fp32+tpu")


def test_a_wrong_kernel_fails_its_check():
    # The check must be able to fail: a conv whose kernel is flipped is compared with the true reference.
    import tensorflow as tf

    from dnnlib.ops.conv3d import conv3d

    case = next(c for c in gpu_check.kernel_cases(quick=True, gpu=False) if c.name == "conv3d 3x3x3")
    case.op = lambda x, w: conv3d(x, tf.reverse(w, [0]), "SAME")
    res = gpu_check.check_kernel(case, "float32", False, "/CPU:0")
    assert res["forward"][1] > 0.1 and res["dw"][1] > 0.1
