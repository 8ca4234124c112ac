"""Check a GPU machine and print a markdown report to paste in an issue.

What it checks, on GPU:0 (or, on a machine without a GPU, on the CPU at --quick sizes, saying so at the top):
  - environment: TensorFlow, its CUDA/cuDNN build, the GPUs (name, compute capability, memory), TF32;
  - the paths the ops choose on this machine (the choice functions of dnnlib/ops, and make_strategy("auto"));
  - every kernel of dnnlib/ops against its NumPy reference (dnnlib/ops/*_ref.py), forward and gradients, in
    float32, float16 and bfloat16 and in float32 under XLA: max abs and relative error against a tolerance;
  - one training step of each config at batch 1 (bench/common.StepHarness, the real train step) per variant
    (fp32, mixed_fp16, mixed_bf16, each optionally +xla and +recompute): trace time, step time, sec/kimg, peak
    device memory, whether losses and gradients stayed finite.

    python -m bench.gpu_check                     # 2 mm and 1 mm paper configs, every variant (tens of minutes)
    python -m bench.gpu_check --quick             # small kernels and the demo-tiny config (minutes)
    python -m bench.gpu_check --configs=Gorig-Dres-3d-2mm-base567 --variants=fp32,mixed_fp16+xla --steps=5
    python -m bench.gpu_check --out=gpu_check.md  # also write the report to a file

The process exits 1 when a check fails (the report says which).
"""

import gc
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time

from absl import app, flags

from bench import common
from dnnlib import UserError
from dnnlib.cli import run_main

PAPER_CONFIGS = ["Gorig-Dres-3d-2mm-base567", "Gorig-Dres-3d-1mm-base567"]
QUICK_CONFIG = "demo-tiny"
DTYPES = ["float32", "float16", "bfloat16"]
VARIANTS = ["fp32", "mixed_fp16", "mixed_bf16", "fp32+xla", "mixed_fp16+xla", "mixed_bf16+xla", "fp32+recompute",
            "mixed_fp16+recompute"]
# Relative error (of the reference's largest magnitude) a kernel may show: a few units of the dtype's rounding
# over the sums of a small conv. TF32 (GPU float32 convs and matmuls on Ampere and later) rounds like float16.
TOLERANCE = {"float32": 1e-4, "tf32": 5e-2, "float16": 5e-2, "bfloat16": 1e-1}

FLAGS = flags.FLAGS


def define_flags():
    """The flags, defined only when run as a script: tests import this module beside others that define --out."""
    flags.DEFINE_list("configs", PAPER_CONFIGS, "Configs (training/configs.py names) of the training-step check "
                      f"(default with --quick or without a GPU: {QUICK_CONFIG}).")
    flags.DEFINE_list("variants", VARIANTS, "Training-step variants: a precision (fp32, mixed_fp16, mixed_bf16), "
                      "'+xla' for XLA-compiled steps, '+recompute' for run_training.py --recompute (memory).")
    flags.DEFINE_list("dtypes", DTYPES, "Kernel-check dtypes.")
    flags.DEFINE_bool("kernel_xla", True, "Also check the kernels in float32 compiled by XLA (jit_compile).")
    flags.DEFINE_integer("steps", 3, "Timed training steps per variant after one warm-up step (median).")
    flags.DEFINE_bool("quick", False, "Small kernel sizes, the demo-tiny config, one timed step (what runs on a "
                      "CPU).")
    flags.DEFINE_string("out", None, "Also write the report to this file.")


# ----------------------------------------------------------------------------------------------
# Environment.


def gpu_names():
    import tensorflow as tf

    return [d.name for d in tf.config.list_physical_devices("GPU")]


def _nvidia_smi():
    if not shutil.which("nvidia-smi"):
        return []
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def environment_section():
    import tensorflow as tf

    from dnnlib.ops import upfirdn_3d

    build = tf.sysconfig.get_build_info()
    lines = ["## Environment", "",
             f"- machine: {common.machine_line()}",
             f"- Python {platform.python_version()}, TensorFlow {tf.__version__} "
             f"(git {getattr(tf.version, 'GIT_VERSION', '?')})",
             f"- build: CUDA {build.get('cuda_version', '-')}, cuDNN {build.get('cudnn_version', '-')}, "
             f"cuda build {build.get('is_cuda_build', False)}, rocm build {build.get('is_rocm_build', False)}, "
             f"compute capabilities {', '.join(build.get('cuda_compute_capabilities', [])) or '-'}",
             f"- TF32 execution: {tf.config.experimental.tensor_float_32_execution_enabled()}",
             f"- C++ FIR kernel (CPU path): {'built' if upfirdn_3d.kernel_library() is not None else 'not built'}",
             f"- CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '(unset)')}", ""]
    gpus = tf.config.list_physical_devices("GPU")
    lines += ["### GPUs", ""]
    if gpus:
        lines += ["| # | device | name | compute capability |", "|---|---|---|---|"]
        for i, d in enumerate(gpus):
            details = tf.config.experimental.get_device_details(d)
            cc = details.get("compute_capability")
            lines.append(f"| {i} | {d.name} | {details.get('device_name', '?')} | "
                         f"{'.'.join(map(str, cc)) if cc else '?'} |")
        smi = _nvidia_smi()
        if smi:
            lines += ["", "nvidia-smi (index, name, memory, driver):", "", *[f"    {s}" for s in smi]]
    else:
        lines.append("none visible to TensorFlow")
    return lines + [""]


def paths_section(gpu):
    """What the ops' choice functions pick on this machine, and the strategy 'auto' builds."""
    from dnnlib.ops import conv3d, fused_bias_act, modulated_conv3d, upfirdn_3d
    from dnnlib.ops.custom_op_build import kernel_path

    same, none = ((1, 1),) * 3, ((0, 0),) * 3
    rows = [("conv3d 3x3x3", "any", conv3d.conv_path(gpu, (3, 3, 3), same)),
            ("conv3d 1x1x1", "any", conv3d.conv_path(gpu, (1, 1, 1), none))]
    for dtype in ("float32", "float16", "bfloat16"):
        rows.append(("FIR (upfirdn_3d)", dtype, kernel_path(dtype, gpu, _kernel_builds, xla=False, export=False)))
    rows += [("FIR (upfirdn_3d) under XLA", "any", kernel_path("float32", gpu, _kernel_builds, xla=True, export=False)),
             ("FIR (upfirdn_3d) in a SavedModel", "any",
              kernel_path("float32", gpu, _kernel_builds, xla=False, export=True)),
             ("upsample_conv_3d, small input", "any", upfirdn_3d.transposed_conv_path(gpu, 1000)),
             ("upsample_conv_3d, large input", "any",
              upfirdn_3d.transposed_conv_path(gpu, upfirdn_3d.POLYPHASE_MAX_ELEMENTS + 1))]
    per_sample = modulated_conv3d._PER_SAMPLE_MIN_VOXELS
    rows += [(f"modulated_conv3d, output >= {per_sample} voxels", "any",
              modulated_conv3d.modulation_path(1, per_sample)),
             (f"modulated_conv3d, output < {per_sample} voxels", "any",
              modulated_conv3d.modulation_path(1, per_sample - 1))]
    for dtype in ("float32", "float16", "bfloat16"):
        rows.append(("fused_bias_act lrelu gradient", dtype,
                     fused_bias_act.gradient_path("lrelu", 2**0.5, 0.2, dtype)))
    lines = ["## Paths chosen on this machine", "", "| op | dtype | path |", "|---|---|---|"]
    lines += [f"| {op} | {dt} | {p} |" for op, dt, p in rows]
    return lines + ["", f"- strategy auto: {_auto_strategy()}", ""]


def _kernel_builds():
    from dnnlib.ops import upfirdn_3d

    return upfirdn_3d.kernel_library() is not None


def _auto_strategy():
    from training.multi_worker import make_strategy

    try:
        s = make_strategy("auto")
    except (ValueError, RuntimeError) as e:
        return f"error: {e}"
    return f"{type(s).__name__}, {s.num_replicas_in_sync} replica(s)"


# ----------------------------------------------------------------------------------------------
# Kernels against their NumPy references.


class KernelCase:
    """One kernel call: float64 inputs, the TF op, its NumPy reference, and which gradients to check.

    cast: inputs given to the op in the checked dtype (the others stay float32, as the networks pass them).
    exact_grads(inputs, dy) -> {name: reference gradient}; the other names in `grads` are checked by
    directional derivatives of the reference (central differences in float64: exact for inputs the op is
    linear in)."""

    def __init__(self, name, inputs, op, ref, cast, grads, exact_grads=None, path=None):
        self.name, self.inputs, self.op, self.ref, self.cast = name, inputs, op, ref, set(cast)
        self.grads, self.exact_grads, self.path = list(grads), exact_grads, path


def kernel_cases(quick, gpu):
    import numpy as np

    from dnnlib.ops import conv3d as C
    from dnnlib.ops import fused_bias_act_ref as BR
    from dnnlib.ops import modulated_conv3d as M
    from dnnlib.ops import modulated_conv3d_ref as MR
    from dnnlib.ops import upfirdn_3d as U
    from dnnlib.ops import upfirdn_3d_ref as UR
    from dnnlib.ops.conv3d_ref import conv3d_filter_grad_ref, conv3d_input_grad_ref, conv3d_ref
    from dnnlib.ops.custom_op_build import kernel_path
    from dnnlib.ops.fused_bias_act import fused_bias_act

    rng = np.random.default_rng(0)
    c = 3 if quick else 8
    shape = (5, 6, 7) if quick else (8, 10, 12)
    big = (16, 16, 32)  # 8192 voxels: modulated_conv3d's per-sample-weights path

    def normal(*s, scale=1.0):
        return rng.standard_normal(s) * scale

    f4, fa = [1, 3, 3, 1], [1.0, 2.5, 1.5]  # asymmetric taps catch a missing or extra flip

    def fir(dtype, xla):
        return "FIR " + kernel_path(dtype, gpu, _kernel_builds, xla=xla, export=False)

    def conv(k):
        pads = ((0, 0),) * 3 if k == 1 else ((1, 1),) * 3
        return lambda dtype, xla: C.conv_path(gpu, (k,) * 3, pads)

    cases = []
    for k in (3, 1):
        w_scale = 1 / np.sqrt(k**3 * c)
        cases.append(KernelCase(
            f"conv3d {k}x{k}x{k}", dict(x=normal(2, *shape, c), w=normal(k, k, k, c, c + 1, scale=w_scale)),
            op=lambda x, w: C.conv3d(x, w, "SAME"), ref=lambda x, w: conv3d_ref(x, w, "SAME"), cast="xw",
            grads="xw", exact_grads=lambda i, dy: dict(x=conv3d_input_grad_ref(i["x"].shape, i["w"], dy),
                                                       w=conv3d_filter_grad_ref(i["x"], dy, i["w"].shape[:3])),
            path=conv(k)))
    resample = dict(up=(2, 1, 2), down=(1, 2, 1), padding=(2, -1, 1, 2, 0, 1), gain=1.7)
    cases += [
        KernelCase("upfirdn_3d", dict(x=normal(2, *shape, c)), op=lambda x: U.upfirdn_3d(x, fa, **resample),
                   ref=lambda x: UR.upfirdn_3d_ref(x, fa, **resample), cast="x", grads="x", path=fir),
        KernelCase("upsample_3d", dict(x=normal(2, *shape, c)), op=lambda x: U.upsample_3d(x, f4, 2),
                   ref=lambda x: UR.upsample_3d_ref(x, f4, 2), cast="x", grads="x", path=fir),
        KernelCase("downsample_3d", dict(x=normal(2, 6, 8, 8, c)), op=lambda x: U.downsample_3d(x, f4, 2),
                   ref=lambda x: UR.downsample_3d_ref(x, f4, 2), cast="x", grads="x", path=fir),
    ]
    w3 = dict(x=normal(2, *shape, c), w=normal(3, 3, 3, c, c, scale=1 / np.sqrt(27 * c)))
    cases += [
        KernelCase("upsample_conv_3d", w3, op=lambda x, w: U.upsample_conv_3d(x, w, f4, 2),
                   ref=lambda x, w: UR.upsample_conv_3d_ref(x, w, f4, 2), cast="xw", grads="xw",
                   path=lambda dtype, xla: f"{U.transposed_conv_path(gpu, 2 * int(np.prod(shape)) * c)}, "
                                           f"{fir(dtype, xla)}"),
        KernelCase("conv_downsample_3d", dict(w3, x=normal(2, 6, 8, 8, c)),
                   op=lambda x, w: U.conv_downsample_3d(x, w, f4, 2),
                   ref=lambda x, w: UR.conv_downsample_3d_ref(x, w, f4, 2), cast="xw", grads="xw", path=fir),
    ]

    def fba_grads(i, dy):
        d1 = BR.fused_bias_act_ref(i["x"], i["b"], act="lrelu", clamp=1.5)[1]
        dx = dy * d1
        return dict(x=dx, b=dx.reshape(-1, dx.shape[-1]).sum(axis=0))

    # Pre-activations kept off the kink (0) and the clamp (1.5 / sqrt(2)): there a rounding of the input may
    # flip the derivative, which is no error of the op.
    b = normal(c, scale=0.3)
    z = normal(2, *shape, c) + b
    z = np.where(np.abs(z) < 0.1, z + 0.25, z)
    z = np.where(np.abs(z - 1.5 / np.sqrt(2)) < 0.1, z + 0.25, z)
    cases.append(KernelCase(
        "fused_bias_act lrelu, clamp", dict(x=z - b, b=b),
        op=lambda x, b: fused_bias_act(x, b, act="lrelu", clamp=1.5),
        ref=lambda x, b: BR.fused_bias_act_ref(x, b, act="lrelu", clamp=1.5)[0], cast="xb", grads="xb",
        exact_grads=fba_grads, path=lambda dtype, xla: "bias_act " + _grad_path(dtype)))

    def modconv(name, spatial, channels, up=None):
        inputs = dict(x=normal(2, *spatial, channels), weight=normal(3, 3, 3, channels, channels),
                      styles=1 + normal(2, channels, scale=0.3))
        voxels = int(np.prod(spatial)) * (int(np.prod(up)) if up else 1)

        def op(x, weight, styles):
            return M.modulated_conv3d(x, weight, styles, up=up, resample_filter=U.setup_filter(f4) if up else None,
                                      compute_dtype=x.dtype)

        return KernelCase(f"modulated_conv3d {name}", inputs, op=op,
                          ref=lambda x, weight, styles: MR.modulated_conv3d_ref(
                              x, weight, styles, up=up, resample_filter=U.setup_filter(f4) if up else None),
                          cast="x", grads=["x", "styles", "weight"],
                          path=lambda dtype, xla: M.modulation_path(2, voxels))

    cases += [modconv("small", shape, c), modconv("upsampling", shape, c, up=(2, 2, 2)),
              modconv("large", big, 2)]
    cases.append(KernelCase(
        "add_noise", dict(x=normal(2, *shape, c), noise=normal(1, *shape, 1), strength=np.array(0.3)),
        op=M.add_noise, ref=MR.add_noise_ref, cast=["x", "noise", "strength"], grads=["x", "noise", "strength"],
        exact_grads=lambda i, dy: dict(zip(("x", "noise", "strength"),
                                           MR.add_noise_grads_ref(i["x"], i["noise"], i["strength"], dy),
                                           strict=True)),
        path=lambda dtype, xla: "custom gradient"))
    return cases


def _grad_path(dtype):
    from dnnlib.ops import fused_bias_act

    return fused_bias_act.gradient_path("lrelu", 2**0.5, 0.2, dtype)


def _quantized(a, dtype):
    """a rounded to dtype, as float64: the reference sees exactly the op's inputs."""
    import numpy as np
    import tensorflow as tf

    return tf.cast(tf.cast(tf.constant(np.asarray(a, np.float64)), dtype), tf.float64).numpy()


def _errors(got, want):
    """(max abs error, max abs error / max |reference|)."""
    import numpy as np

    err = float(np.max(np.abs(np.asarray(got, np.float64) - want))) if np.size(want) else 0.0
    scale = float(np.max(np.abs(want))) if np.size(want) else 0.0
    return err, err / scale if scale > 0 else err


def check_kernel(case, dtype, xla, device, directions=3):
    """{'forward': (abs, rel), 'd<input>': (abs, rel), ...}: the op on `device` against the reference."""
    import numpy as np
    import tensorflow as tf

    names = list(case.inputs)
    inputs = {n: _quantized(a, dtype if n in case.cast else "float32") for n, a in case.inputs.items()}
    want = case.ref(**inputs)
    rng = np.random.default_rng(1)
    dy = _quantized(rng.standard_normal(want.shape), dtype)

    def run(*args):
        ins = dict(zip(names, args, strict=True))
        with tf.GradientTape() as tape:
            for n in case.grads:
                tape.watch(ins[n])
            y = tf.cast(case.op(**ins), tf.float32)
            loss = tf.reduce_sum(y * tf.constant(dy, tf.float32))
        grads = tape.gradient(loss, [ins[n] for n in case.grads])
        return [y] + [tf.cast(g, tf.float32) for g in grads]

    args = [tf.constant(inputs[n], dtype if n in case.cast else tf.float32) for n in names]
    with tf.device(device):
        out = [t.numpy().astype(np.float64) for t in tf.function(run, jit_compile=xla)(*args)]
    result = {"forward": _errors(out[0], want)}
    exact = case.exact_grads(inputs, dy) if case.exact_grads else {}
    for n, g in zip(case.grads, out[1:], strict=True):
        if n in exact:
            result[f"d{n}"] = _errors(g, exact[n])
            continue
        # <grad, u> against the reference's directional derivative (dy . (ref(x + h u) - ref(x - h u)) / 2h).
        got, ref = [], []
        for _ in range(directions):
            u = rng.standard_normal(inputs[n].shape)
            h = 1e-4 * max(1.0, float(np.sqrt(np.mean(inputs[n] ** 2))))
            plus = case.ref(**dict(inputs, **{n: inputs[n] + h * u}))
            minus = case.ref(**dict(inputs, **{n: inputs[n] - h * u}))
            ref.append(float(np.sum(dy * (plus - minus)) / (2 * h)))
            got.append(float(np.sum(g * u)))
        err = max(abs(a - b) for a, b in zip(got, ref, strict=True))
        result[f"d{n}"] = (err, err / max(float(np.sqrt(np.mean(np.square(ref)))), 1e-30))
    return result


def kernel_section(quick, gpu, device, dtypes, kernel_xla):
    """(markdown lines, number of failures)."""
    import tensorflow as tf

    tf32 = gpu and tf.config.experimental.tensor_float_32_execution_enabled()
    runs = [(dt, False) for dt in dtypes] + ([("float32", True)] if kernel_xla else [])
    lines = ["## Kernels against their NumPy references", "",
             f"On {device}. Errors are max |op - reference| and that over max |reference| (\"rel\"); gradients "
             "without a closed-form reference are checked as directional derivatives of the reference. "
             + ("float32 tolerance is TF32's (TF32 is on). " if tf32 else ""), "",
             "| kernel | dtype | path | forward abs / rel | worst gradient abs / rel | tol (rel) | result |",
             "|---|---|---|---|---|---|---|"]
    failures = 0
    cases = kernel_cases(quick, gpu)
    for i, case in enumerate(cases):
        common.log(f"kernel {i + 1}/{len(cases)}: {case.name}")
        for dtype, xla in runs:
            label = dtype + (" XLA" if xla else "")
            tol = TOLERANCE["tf32" if (tf32 and dtype == "float32") else dtype]
            path = case.path(dtype, xla) if case.path else "-"
            try:
                res = check_kernel(case, dtype, xla, device)
            except Exception as e:  # a kernel that does not run in this dtype here is a finding, not a crash
                failures += 1
                lines.append(f"| {case.name} | {label} | {path} | ERROR | {_short(e)} | {tol:g} | ERROR |")
                continue
            grads = {k: v for k, v in res.items() if k != "forward"}
            worst = max(grads, key=lambda k: grads[k][1]) if grads else None
            ok = all(rel <= tol for _, rel in res.values())
            failures += not ok
            fwd = "{:.2g} / {:.2g}".format(*res["forward"])
            grad = f"{worst}: {grads[worst][0]:.2g} / {grads[worst][1]:.2g}" if worst else "-"
            lines.append(f"| {case.name} | {label} | {path} | {fwd} | {grad} | {tol:g} | "
                         f"{'PASS' if ok else 'FAIL'} |")
    return lines + [""], failures


def _short(e):
    """An exception as one table cell: its type and the last line of its message (a traced function's error
    ends with the original one)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    return f"{type(e).__name__}: {lines[-1][:160] if lines else ''}".replace("|", "/")


# ----------------------------------------------------------------------------------------------
# Training steps.


def parse_variant(text):
    """'mixed_fp16+xla+recompute' -> ('mixed_fp16', True, True): a precision, then optional '+xla', '+recompute'."""
    from training.train_options import PRECISIONS

    precision, *extras = text.strip().split("+")
    if precision not in PRECISIONS or not set(extras) <= {"xla", "recompute"} or len(set(extras)) < len(extras):
        raise ValueError(f"unknown variant {text!r}: expected a precision ({', '.join(PRECISIONS)}), "
                         "optionally followed by '+xla' and/or '+recompute'")
    return precision, "xla" in extras, "recompute" in extras


def _reset_peak(device):
    import tensorflow as tf

    if device.startswith("/GPU"):
        tf.config.experimental.reset_memory_stats(device.lstrip("/"))


def _peak_gib(device):
    import tensorflow as tf

    if device.startswith("/GPU"):
        return tf.config.experimental.get_memory_info(device.lstrip("/"))["peak"] / common.GIB
    return common.peak_rss_bytes() / common.GIB


def measure_step(config, precision, xla, steps, device, recompute=False):
    """One variant: {'trace', 'seconds', 'sec_per_kimg', 'peak_gib', 'loss_finite', 'grads_finite'}."""
    import tensorflow as tf

    from training.configs import get_config

    with tf.device(device):
        _reset_peak(device)
        h = common.StepHarness(get_config(config), batch=1, xla=xla, precision=precision, recompute=recompute)
        t0 = time.perf_counter()
        for phase in h.phases:
            try:
                h.trace(phase)
            except Exception as e:
                raise RuntimeError(f"tracing {phase}: {_short(e)}") from e
        trace = time.perf_counter() - t0
        outs = [h.run(phase) for phase in h.phases]  # warm-up (cuDNN autotuning, XLA compile)
        times = [h.step_seconds(h.phases) for _ in range(max(1, steps))]
        peak = _peak_gib(device)
    seconds = statistics.median(times)
    result = dict(trace=trace, seconds=seconds, sec_per_kimg=seconds / h.batch * 1000, peak_gib=peak,
                  loss_finite=all(o.get("loss_finite", 1.0) > 0 for o in outs),
                  grads_finite=all(o.get("grads_finite", 1.0) > 0 for o in outs))
    del h
    gc.collect()
    return result


def step_section(configs, variants, steps, device):
    """(markdown lines, number of failures)."""
    mem = "peak GPU memory GiB" if device.startswith("/GPU") else "peak RSS GiB (process, cumulative)"
    lines = ["## Training steps (batch 1)", "",
             f"On {device}, one optimiser step of each phase per step (lazy regularisers weighted by their interval), "
             f"median of {steps} after a warm-up step. Gradients that overflow in mixed_fp16 are expected in "
             "the first steps (the dynamic loss scale starts high) and are skipped, as in training.", "",
             f"| config | variant | trace s | step s | sec/kimg | {mem} | losses finite | grads finite | result |",
             "|---|---|---|---|---|---|---|---|---|"]
    failures = 0
    for config in configs:
        for variant in variants:
            precision, xla, recompute = parse_variant(variant)
            common.log(f"step {config} {variant} ...")
            try:
                r = measure_step(config, precision, xla, steps, device, recompute)
            except Exception as e:  # out of memory or an op missing for a dtype: report it, go on
                failures += 1
                lines.append(f"| {config} | {variant} | ERROR | {_short(e)} | | | | | ERROR |")
                gc.collect()
                continue
            ok = r["loss_finite"] and (r["grads_finite"] or precision == "mixed_fp16")
            failures += not ok
            lines.append(f"| {config} | {variant} | {r['trace']:.1f} | {r['seconds']:.3g} | "
                         f"{r['sec_per_kimg']:.4g} | {r['peak_gib']:.2f} | {r['loss_finite']} | "
                         f"{r['grads_finite']} | {'PASS' if ok else 'FAIL'} |")
    return lines + [""], failures


# ----------------------------------------------------------------------------------------------


def build_report(configs, variants, dtypes, kernel_xla, steps, quick):
    """The markdown report (str) and the number of failed checks."""
    gpus = gpu_names()
    gpu = bool(gpus)
    device = "/GPU:0" if gpu else "/CPU:0"
    head = ["# 3D-StyleGAN GPU check", "",
            f"command: `python -m bench.gpu_check {' '.join(sys.argv[1:])}`", ""]
    if not gpu:
        head += ["**No GPU visible to TensorFlow: the checks below ran on the CPU at --quick sizes.**", ""]
    env = environment_section()
    common.log("paths ...")
    paths = paths_section(gpu)
    kernels, kernel_fail = kernel_section(quick, gpu, device, dtypes, kernel_xla)
    step_lines, step_fail = step_section(configs, variants, steps, device)
    n_kernel = sum(1 for ln in kernels if ln.endswith(("| PASS |", "| FAIL |", "| ERROR |")))
    n_step = sum(1 for ln in step_lines if ln.endswith(("| PASS |", "| FAIL |", "| ERROR |")))
    summary = [f"**Summary: kernels {n_kernel - kernel_fail}/{n_kernel} PASS, training steps "
               f"{n_step - step_fail}/{n_step} PASS.**", ""]
    report = "\n".join(head + summary + env + paths + kernels + step_lines + [f"done | {common.load_line()}"])
    return report + "\n", kernel_fail + step_fail


def resolve_options(configs, variants, dtypes, steps, quick, have_gpu, configs_given=True, steps_given=True):
    """The checks to run as (configs, variants, dtypes, steps, quick); UserError naming the flag for a bad value.
    Without a GPU the checks run at --quick sizes; --quick without --configs checks the demo-tiny config and,
    without --steps, times one step."""
    from training.configs import CONFIGS

    quick = quick or not have_gpu
    configs = list(configs) if (configs_given or not quick) else [QUICK_CONFIG]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        raise UserError(f"--configs: unknown config(s) {', '.join(unknown)}; see training/configs.py")
    for v in variants:
        try:
            parse_variant(v)
        except ValueError as e:
            raise UserError(f"--variants: {e}") from None
    bad = [d for d in dtypes if d not in DTYPES]
    if bad:
        raise UserError(f"--dtypes: unknown dtype(s) {', '.join(bad)}; choose from {', '.join(DTYPES)}")
    if steps < 1:
        raise UserError(f"--steps must be at least 1, got {steps}")
    return configs, list(variants), list(dtypes), (1 if quick and not steps_given else int(steps)), quick


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments {argv[1:]}; every option is a --flag")
    configs, variants, dtypes, steps, quick = resolve_options(
        FLAGS.configs, FLAGS.variants, FLAGS.dtypes, FLAGS.steps, FLAGS.quick, bool(gpu_names()),
        configs_given=FLAGS["configs"].present, steps_given=FLAGS["steps"].present)
    report, failures = build_report(configs, variants, dtypes, FLAGS.kernel_xla, steps, quick)
    print("\n----- report (paste from here) -----\n")
    print(report, flush=True)
    if FLAGS.out:
        from dnnlib.fileutil import atomic_write_text

        atomic_write_text(FLAGS.out, report)
    return 1 if failures else 0


if __name__ == "__main__":
    define_flags()
    app.run(run_main(main))
