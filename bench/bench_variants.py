"""Implementation variants of the full training step, side by side in one run (same process, same shapes).

Each variant re-traces the real step (training/train_step.py) and reports the lazy-averaged step time,
its ratio to the default and the fraction of the forward-conv peak measured at the step's shapes:
  default          the product ops as they choose on this host (dnnlib/ops), float32, no XLA
  plain autodiff   plain TensorFlow throughout (bench/formulations.py plain_tensorflow)
  filter grad=...  conv3d's other filter-gradient formulations (bench/formulations.py FILTER_GRADS)
  xla              TrainSteps(xla=True): jit_compile on each phase's objective + gradients
  FIR as TF ops    the FIR as three depthwise-conv passes of TensorFlow ops instead of the C++ kernel
  fused modconv    grouped conv with per-sample weights (XLA-compiled grouped conv on CPU), +/- xla
  bfloat16         G and D compute dtype bfloat16 (mapping, styles, D epilogue stay float32)
  gain multiply    the activation gain as a multiply over each layer's output (not folded into the weights)
  autodiff noise   noise injection as x + noise * strength with TensorFlow's gradient (not ops add_noise)
  both             the two above together: the non-conv parts before they were trimmed
  modulate activations  G's modulation as x*s before and y*d after a batched conv at every resolution
                   (not per-sample modulated weights at large volumes, dnnlib/ops/modulated_conv3d.py)
  per-sample everywhere  per-sample modulated weights at every resolution, small ones too
  per-sample in Greg  per-sample weights in the path-length forward too (not modulation_of_activations)
With --profile, each variant's phases also run under tf.profiler (bench/op_profile.py): op seconds per
averaged step and the non-conv share (FIR, bias + activation, modulation, noise), less noisy than times.

    python -m bench.bench_variants --quick
    python -m bench.bench_variants --config demo --repeats 3
"""

import contextlib
import os
import sys
import traceback

from absl import app, flags

from bench import common, flops, formulations, op_profile
from dnnlib import UserError
from dnnlib.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "demo", "Config to measure (training/configs.py name).")
flags.DEFINE_integer("batch", None, "Batch (default: the config's).")
flags.DEFINE_integer("repeats", 3, "Timed repeats per phase (median) after one warm-up.")
flags.DEFINE_bool("quick", False, "demo-tiny config, one timed repeat per phase (checks the script).")
flags.DEFINE_list("phases", ["Gmain", "Dmain"], "Phases to time per variant ('all' = every phase, lazy-averaged); "
                  "the main phases are most of a step and halve the tracing time.")
flags.DEFINE_list("only", None, "Run only these variants (names as printed, comma-separated).")
flags.DEFINE_integer("profile", 0, "Profiled runs per phase per variant (0 = no profile columns).")


def gain_multiply():
    """Layers pass their gain to fused_bias_act (a multiply over the output) instead of folding it."""
    from dnnlib.ops.fused_bias_act import default_gain, fused_bias_act
    from training import networks

    def unfolded(x, b=None, axis=-1, act="linear", alpha=None, gain=None, clamp=None):
        # Same op structure as before the folding: a multiply in every layer, so never a gain of exactly 1
        # (the resnet sqrt(0.5) is left out, which changes no op).
        g = default_gain(act) * (1 + 1e-7)
        return fused_bias_act(x, b, axis=axis, act=act, alpha=alpha, gain=g, clamp=clamp)

    return common.patched(networks, _output_gain=lambda act, gain: 1.0, fused_bias_act=unfolded)


def autodiff_noise():
    return formulations.substituted(add_noise=lambda x, noise, strength: x + noise * strength)


def modulate_activations():
    from dnnlib.ops.modulated_conv3d import modulation_of_activations

    return modulation_of_activations()


def per_sample_everywhere():
    return formulations.substituted(modulated_conv3d=formulations.modulated_conv3d_per_sample)


def per_sample_in_greg():
    return formulations.substituted(modulation_of_activations=contextlib.nullcontext)


def fused_modconv():
    return formulations.substituted(modulated_conv3d=formulations.modulated_conv3d_grouped)


@contextlib.contextmanager
def untrimmed():
    with gain_multiply(), autodiff_noise():
        yield


def _variants():
    """name -> (harness kwargs, config edit fn or None, context manager factory or None)."""
    def bf16(cfg):
        cfg.G_kwargs.synthesis_kwargs.compute_dtype = "bfloat16"
        cfg.D_kwargs.compute_dtype = "bfloat16"

    return {
        "default": ({}, None, None),
        "plain autodiff": ({}, None, formulations.plain_tensorflow),
        "filter grad=slices": ({}, None, lambda: formulations.filter_gradient("slices")),
        "filter grad=batch_channels": ({}, None, lambda: formulations.filter_gradient("batch_channels")),
        "xla": ({"xla": True}, None, None),
        "FIR as TF ops": ({}, None, formulations.fir_as_tf_ops),
        "fused modconv": ({}, None, fused_modconv),
        "fused modconv + xla": ({"xla": True}, None, fused_modconv),
        "bfloat16": ({}, bf16, None),
        "gain multiply": ({}, None, gain_multiply),
        "autodiff noise": ({}, None, autodiff_noise),
        "both": ({}, None, untrimmed),
        "modulate activations": ({}, None, modulate_activations),
        "per-sample everywhere": ({}, None, per_sample_everywhere),
        "per-sample in Greg": ({}, None, per_sample_in_greg),
    }


def main(argv):
    del argv
    from training.configs import get_config

    config = "demo-tiny" if FLAGS.quick else FLAGS.config
    cfg0 = get_config(config)
    batch = FLAGS.batch or cfg0.batch_size
    variants = _variants()
    names = FLAGS.only or list(variants)
    bad = [n for n in names if n not in variants]
    if bad:
        raise UserError(f"--only: unknown variants {bad}; choose from {', '.join(variants)}")
    if "default" not in names:
        names = ["default", *names]
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    print(f"bench_variants | {common.machine_line()}")
    print(f"command: python -m bench.bench_variants {' '.join(sys.argv[1:])}")
    cfg_b = common.paper_batch_overrides(get_config(config), batch)
    step_fl = flops.step_flops(cfg_b, batch)
    common.log(f"{config} batch {batch}: {step_fl / 1e9:.2f} GFLOP per averaged step; forward-conv peak ...")
    # 'frac of peak' compares like with like: the timed phases' convs at forward speed.
    timed = None if FLAGS.phases == ["all"] else FLAGS.phases
    peak_t, _ = common.peak_conv_time(flops.conv_work(cfg_b, batch, phases=timed), batch, repeats=2, progress=False)
    common.log(f"convs of the timed phases at forward speed: {peak_t:.3f}s")

    rows, base_h = [], None
    for name in names:
        kwargs, edit, ctx = variants[name]
        common.log(f"variant: {name}")
        cfg = get_config(config)
        if edit:
            edit(cfg)
        try:
            h = common.StepHarness(cfg, batch=batch, variant=ctx, xla=kwargs.get("xla", False))
            phases = h.phases if FLAGS.phases == ["all"] else [p for p in h.phases if p in FLAGS.phases]
            phase_t, t = h.time_phases(warmup=1, repeats=1, progress=False, phases=phases)
        except Exception as e:  # a variant this build cannot run is a result, not a crash
            msg = str(e).strip().splitlines()[0][:100] if str(e).strip() else type(e).__name__
            common.log(f"  failed: {type(e).__name__}: {msg}")
            if os.environ.get("BENCH_DEBUG"):
                traceback.print_exc()
            rows.append([name, "failed", "-", "-", *(["-", "-"] if FLAGS.profile > 0 else []),
                         f"{type(e).__name__}: {msg}"])
            continue
        if base_h is None:
            base_h, speed = h, 1.0
        else:
            # Interleave with the default (already traced): the ratio of medians over alternating runs.
            tb, t, _ = common.paired_seconds(base_h, h, phases, repeats=repeats)
            speed = tb / t
        common.log(f"  {'+'.join(phases)} {t:.3f}s, speed vs default {speed:.2f}x")
        prof = []
        if FLAGS.profile > 0:
            parts = op_profile.step_parts(h, phases, runs=FLAGS.profile)
            prof = [sum(parts.values()), f"{op_profile.non_conv_share(parts):.1%}"]
            common.log(f"  profile: {prof[0]:.3f} op-s, non-conv {prof[1]}")
        rows.append([name, t, speed, "-" if t == 0 else f"{peak_t / t:.1%}", *prof,
                     " ".join(f"{p}={v:.3f}" for p, v in phase_t.items())])
    what = "lazy-averaged step" if FLAGS.phases == ["all"] else "+".join(FLAGS.phases) + " only"
    print(f"\n### Variants at {config}, batch {batch} ({what}; median of {repeats}); "
          f"'frac of peak' = convs of a whole averaged step at forward speed / this time")
    prof_cols = ["op sec (profile)", "non-conv share"] if FLAGS.profile > 0 else []
    common.print_table(rows, ["variant", "sec (paired median)", "speed vs default", "frac of peak", *prof_cols,
                              "phases sec (first timing)"])
    print(f"\ndone | {common.load_line()}")


if __name__ == "__main__":
    app.run(run_main(main))
