"""Full training step: images/s, sec/kimg, FLOPs, fraction of the machine's forward-conv peak, breakdown.

For each config, the real step of training/train_step.py (Gmain, Dmain every step, Greg 1/G_reg_interval,
Dreg 1/D_reg_interval, averaged over the intervals) on random reals, and in the same process:
  - the analytic FLOPs (bench/flops.py) and achieved GFLOP/s;
  - "peak": forward tf.nn.conv3d GFLOP/s measured at every conv shape of the step; the time the step's
    convolutions (forward + input grad + filter grad + second-order terms) would take at forward speed;
    fraction of peak = that time / the step's time (1.0 = every conv gradient at forward speed, nothing else);
  - the same step with TensorFlow's own conv3d gradients (plain autodiff) and the ratio;
  - a breakdown (demo config), two ways: a profile (bench/op_profile.py: every phase under tf.profiler, op
    time attributed to resampling FIRs, bias/activation, modulation/demodulation or noise by the name
    scopes those ops set, lazy-weighted like the step), and ablations (the step re-traced with each part
    replaced by the cheapest op of the same shape; the time saved is its share: includes indirect effects,
    but is a difference of two noisy step times). Regularisers' share comes from the phase times; data
    input from the tf.data reader.

    python -m bench.bench_step --quick               # demo-tiny config only, one repeat (minutes)
    python -m bench.bench_step                       # + the 2 mm and 1 mm paper configs at batch 1 (long)
"""

import os
import statistics
import sys
import time

from absl import app, flags

from bench import common, flops, formulations, op_profile
from dnnlib import UserError
from dnnlib.cli import run_main
from dnnlib.ops import autotune

PAPER = ["Gorig-Dres-3d-2mm-base567", "Gorig-Dres-3d-1mm-base567"]

FLAGS = flags.FLAGS
flags.DEFINE_list("configs", ["demo", *PAPER], "Configs to measure (training/configs.py names).")
flags.DEFINE_bool("quick", False, "demo-tiny config only, one repeat (checks the script in minutes).")
flags.DEFINE_integer("paper_batch", 1, "Batch for the paper configs (one step each: minutes on a CPU).")
flags.DEFINE_integer("repeats", 3, "Timed repeats per phase for the demo-size configs (median).")
flags.DEFINE_bool("plain", True, "Also time the step with TensorFlow's own conv3d gradients (demo-size configs).")
flags.DEFINE_bool("plain_paper", False, "Also time plain autodiff at the paper configs (doubles their time).")
flags.DEFINE_bool("breakdown", True, "Ablation breakdown at the first demo-size config.")
flags.DEFINE_list("phases", ["all"], "Phases to time ('all' = every phase, lazy-averaged).")
flags.DEFINE_list("ablation_phases", ["Gmain", "Dmain"], "Phases re-timed per ablation ('all' = every phase).")
flags.DEFINE_integer("ablation_repeats", 7, "Interleaved with/without pairs per ablation (median difference).")
flags.DEFINE_integer("peak_repeats", 7, "Step runs, each followed by a re-timing of the peak convs, for the "
                     "interleaved fraction of peak (demo-size configs; median).")
flags.DEFINE_integer("profile_runs", 3, "Profiled runs per phase for the profile breakdown (0 = skip it).")
flags.DEFINE_bool("retune", True, "Autotune every op afresh in this run (decisions in a temporary file instead of "
                  "the user's cache), so the one-off tuning cost at first trace is measured.")
flags.DEFINE_integer("paper_pairs", 1, "Interleaved product/plain pairs at the paper configs (with --plain_paper).")
flags.DEFINE_string("dataset", None, "A dataset folder for the data-input rate (default: datasets/demo-demo if built).")


def _is_paper(name):
    return not name.startswith("demo")


# ----------------------------------------------------------------------------------------------
# Ablations: rebind the step's op names for the duration of a trace (formulations.substituted).


def _triple(v):
    return (int(v),) * 3 if isinstance(v, int) else tuple(int(a) for a in v)


def _up_nearest(x, up):
    import tensorflow as tf

    ud, uh, uw = _triple(up)
    _, d, h, w, c = x.shape
    y = tf.reshape(x, [-1, d, 1, h, 1, w, 1, c])
    y = tf.broadcast_to(y, [tf.shape(x)[0], d, ud, h, uh, w, uw, c])
    return tf.reshape(y, [-1, d * ud, h * uh, w * uw, c])


def _no_fir_patches():
    """Resampling without the FIR filter: same convs, nearest/strided resampling."""
    from dnnlib.ops import upfirdn_3d

    def upsample_3d(x, f, up=2, padding=0, gain=1):
        return _up_nearest(x, up)

    def downsample_3d(x, f, down=2, padding=0, gain=1):
        # Decimation as reshape + Slice (gradient: a Pad); a strided slice would add TF's slow StridedSliceGrad.
        import tensorflow as tf

        d3 = _triple(down)
        _, d, h, w, c = x.shape
        if d % d3[0] or h % d3[1] or w % d3[2]:
            return x[:, ::d3[0], ::d3[1], ::d3[2], :]
        q = [d // d3[0], h // d3[1], w // d3[2]]
        y = tf.reshape(x, [-1, q[0], d3[0], q[1], d3[1], q[2], d3[2], c])
        y = tf.slice(y, [0] * 8, [-1, q[0], 1, q[1], 1, q[2], 1, c])
        return tf.reshape(y, [-1, *q, c])

    # The fused resampling convs keep their fast conv paths (polyphase, custom gradients) with a 1-tap
    # filter, so only the FIR passes disappear (TF's strided/transposed conv3d would add their slow gradients).
    def upsample_conv_3d(x, w, f, up=2, padding=0):
        return upfirdn_3d.upsample_conv_3d(x, w, [1], up=up)

    def conv_downsample_3d(x, w, f, down=2, padding=0):
        return upfirdn_3d.conv_downsample_3d(x, w, [1], down=down)

    return dict(upsample_3d=upsample_3d, downsample_3d=downsample_3d, upsample_conv_3d=upsample_conv_3d,
                conv_downsample_3d=conv_downsample_3d)


def _no_bias_act_patches():
    def fused_bias_act(x, b=None, axis=-1, act="linear", alpha=None, gain=None, clamp=None):
        return x

    return dict(fused_bias_act=fused_bias_act)


def _no_modulation_patches():
    """Modulated conv as a plain conv; the batch-mean style scales the weight so styles stay connected.

    Where the step convolves sample by sample (dnnlib/ops/modulated_conv3d.py) so does this, with the shared
    weight: a batched conv there would change the convs' own cost, not remove the modulation's."""
    import tensorflow as tf

    from dnnlib.ops import modulated_conv3d as M

    def modulated_conv3d(x, weight, styles, demodulate=True, up=None, resample_filter=None,
                         compute_dtype=tf.float32, gain=1.0):
        s = tf.reduce_mean(tf.cast(styles, tf.float32), axis=0)
        w = tf.cast(weight, tf.float32) * s[:, None] * gain
        up = up if up is not None and max(up) > 1 else None
        if M._per_sample_weights(x, up):
            n = x.shape[0]
            return M._per_sample_modulated_conv3d(x, w, tf.ones([n, w.shape[3]]), None, up, resample_filter,
                                                  compute_dtype)
        return M._conv(x, tf.cast(w, compute_dtype), up, resample_filter)

    return dict(modulated_conv3d=modulated_conv3d)


ABLATIONS = {
    "FIR resampling (upfirdn)": _no_fir_patches,
    "bias + activation": _no_bias_act_patches,
    "modulation/demodulation": _no_modulation_patches,
    "noise inputs": None,  # config change: use_noise=False
}


# ----------------------------------------------------------------------------------------------


def measure_config(name, quick):
    from training.configs import get_config

    paper = _is_paper(name)
    cfg = get_config(name)
    batch = FLAGS.paper_batch if paper else cfg.batch_size
    warmup, repeats = (0, 1) if paper else (1, 1 if quick else FLAGS.repeats)
    common.log(f"== {name}: batch {batch}, image {tuple(cfg.img_shape)} ({'one step per phase' if paper else ''}"
               f"{'' if paper else f'warm-up {warmup}, median of {repeats}'})")
    h = common.StepHarness(cfg, batch=batch)
    per_phase = flops.phase_flops(h.cfg, batch)
    for p in h.phases:  # Gboth / Dboth (regularisers every step, the paper configs): main + reg in one phase
        if p not in per_phase:
            per_phase[p] = sum(per_phase.get(p[0] + part, 0.0) for part in ("main", "reg"))
    step_fl = flops.step_flops(h.cfg, batch)
    conv_fl = flops.step_flops(h.cfg, batch, convs_only=True)
    common.log(f"  analytic: {step_fl / 1e9:.1f} GFLOP per averaged step ({conv_fl / step_fl:.1%} in convs)")
    phases = None if FLAGS.phases == ["all"] else FLAGS.phases
    tuned_before = autotune.stats()
    phase_t, step_t = h.time_phases(warmup=warmup, repeats=repeats, phases=phases)
    tuned = {k: v - tuned_before[k] for k, v in autotune.stats().items()}
    common.log("  forward-conv peak at the step's shapes ...")
    work = flops.conv_work(h.cfg, batch, phases=phases)
    peaks = common.PeakConvs(work, batch)
    peak_t, rates = peaks.seconds(repeats=1 if paper or quick else 2, warmup=1, progress=True)
    if phases is not None:  # only the timed phases count
        per_phase = {p: f for p, f in per_phase.items() if p in phase_t}
        step_fl = sum(f * h.weight(p) for p, f in per_phase.items())
        conv_fl = sum(work.values())
    res = dict(name=name, batch=batch, tuned=tuned, paths=path_counts(), phase_t=phase_t, step_t=step_t,
               step_fl=step_fl, conv_fl=conv_fl, per_phase=per_phase, peak_t=peak_t, rates=rates, harness=h,
               weights={p: h.weight(p) for p in h.phases})
    if not paper:
        common.log("  fraction of peak, the peak convs timed right after each step ...")
        res["peak_fractions"] = common.interleaved_peak_fraction(h, list(phase_t), peaks,
                                                                  repeats=1 if quick else FLAGS.peak_repeats)
    if FLAGS.plain and (not paper or FLAGS.plain_paper):
        common.log("  plain autodiff (TensorFlow's conv3d gradients) ...")
        hp = common.StepHarness(get_config(name), batch=batch, variant=formulations.plain_tensorflow)
        res["plain_phase_t"], res["plain_step_t"] = hp.time_phases(warmup=warmup, repeats=repeats, phases=phases)
        # Load drifts over minutes on a shared machine: re-time both interleaved, the ratio to trust.
        common.log("  product vs plain, interleaved ...")
        res["paired"] = common.paired_seconds(h, hp, list(phase_t), repeats=FLAGS.paper_pairs if paper else repeats)[:2]
        del hp
    return res


def path_counts():
    """{op: {path: shapes}} over the autotuner's decisions so far (this run's, with --retune)."""
    counts = {}
    for key, entry in autotune.decisions().items():
        op = key.split("|", 1)[0]
        counts.setdefault(op, {}).setdefault(entry["path"], 0)
        counts[op][entry["path"]] += 1
    return counts


def print_config(r):
    B, st = r["batch"], r["step_t"]
    print(f"\n### {r['name']} (batch {B})")
    print(f"autotuning at first trace: {r['tuned']['decisions']} decisions in {r['tuned']['seconds']:.1f} s (one-off, "
          f"cached); paths chosen so far: " + "; ".join(
              f"{op} " + ", ".join(f"{p} {n}" for p, n in sorted(c.items())) for op, c in sorted(r["paths"].items())))
    rows = []
    for p, t in r["phase_t"].items():
        fl = r["per_phase"][p]
        plain = r.get("plain_phase_t", {}).get(p)
        rows.append([p, f"1/{round(1 / r['weights'][p])}" if r["weights"][p] < 1 else "1", t, fl / 1e9, fl / t / 1e9,
                     "-" if plain is None else plain, "-" if plain is None else plain / t])
    rows.append(["step", "avg", st, r["step_fl"] / 1e9, r["step_fl"] / st / 1e9,
                 r.get("plain_step_t", "-"), r["plain_step_t"] / st if "plain_step_t" in r else "-"])
    common.print_table(rows, ["phase", "runs/step", "sec", "GFLOP", "GFLOP/s", "plain sec", "plain/product"])
    ips = B / st
    print(f"images/s {ips:.3f}   sec/kimg {1000 / ips:,.0f}   achieved {r['step_fl'] / st / 1e9:.1f} GFLOP/s")
    avg_rate = r["conv_fl"] / r["peak_t"] / 1e9
    print(f"forward-conv peak at the step's shapes: {avg_rate:.1f} GFLOP/s (work-weighted; "
          f"{min(r['rates'].values()):.1f}-{max(r['rates'].values()):.1f} per shape)")
    print(f"fraction of peak: {r['peak_t'] / st:.1%}  (step convs at forward speed would take {r['peak_t']:.3f}s "
          f"of the {st:.3f}s step; goal >= 50%)")
    if "peak_fractions" in r:
        fr = r["peak_fractions"]
        print(f"fraction of peak, peak re-timed right after each step run: {statistics.median(fr):.1%} "
              f"(median of {len(fr)}; {min(fr):.1%}-{max(fr):.1%}): the figure to trust, the host drifts over minutes")
    if "paired" in r:
        tf_, tp = r["paired"]
        print(f"interleaved product/plain re-timing: product {tf_:.3f}s, plain {tp:.3f}s: product/plain speed "
              f"{tp / tf_:.2f}x (fraction of peak {r['peak_t'] / tf_:.1%} product, {r['peak_t'] / tp:.1%} plain)")
    if "plain_step_t" in r:
        print(f"plain autodiff step {r['plain_step_t']:.3f}s: product path is {r['plain_step_t'] / st:.2f}x faster; "
              f"plain reaches {r['peak_t'] / r['plain_step_t']:.1%} of peak")


def profile_breakdown(name, base, quick):
    """Share of the step's op time in each non-conv part, from the profiler (phases lazy-weighted)."""
    hb = base["harness"]
    runs = 1 if quick else FLAGS.profile_runs
    common.log(f"  profile: {runs} run(s) per phase under tf.profiler ...")
    parts = op_profile.step_parts(hb, list(base["phase_t"]), runs=runs)
    total = sum(parts.values())
    rows = [[part, parts.get(part, 0.0), parts.get(part, 0.0) / total] for part in [*op_profile.PARTS, op_profile.REST]]
    print(f"\n### Profile breakdown at {name} (batch {base['batch']}): op time per averaged step, {runs} profiled "
          f"run(s) per phase; {total:.3f} op-seconds for a {base['step_t']:.3f} s step (two inter-op threads)")
    common.print_table(rows, ["part", "op sec", "share of op time"])
    print(f"non-conv parts by profile: {op_profile.non_conv_share(parts):.1%} of the step's op time (goal < 15%)")


def breakdown(name, base, quick):
    """Share of the step in each non-conv part, by ablation (same process, same shapes)."""
    from training.configs import get_config

    repeats = 1 if quick else FLAGS.ablation_repeats
    full_t, hb = base["step_t"], base["harness"]
    phases = hb.phases if FLAGS.ablation_phases == ["all"] else [p for p in hb.phases if p in FLAGS.ablation_phases]
    rows = []
    for label, make in ABLATIONS.items():
        common.log(f"  ablation: without {label} ...")
        cfg = get_config(name)
        patches = {}
        if make is None:
            cfg.G_kwargs.synthesis_kwargs.use_noise = False
        else:
            patches = make()
        with formulations.substituted(**patches):
            h = common.StepHarness(cfg, batch=base["batch"])
            h.time_phases(warmup=0, repeats=1, progress=False, phases=phases)  # trace + warm up
        # Interleaved with the unablated step (already traced), so load drift cancels in the difference.
        tb, ta, saved = common.paired_seconds(hb, h, phases, repeats=repeats)
        # The share is taken against the step as fast as it ran in these same pairs (the host's speed drifts
        # between the phase timing and the ablations): the re-timed phases' share of the step
        # from the phase timing, scaled to their paired time tb.
        window_step = tb * full_t / sum(base["phase_t"][p] * base["weights"][p] for p in phases)
        common.log(f"    {'+'.join(phases)}: with {tb:.3f}s, without {ta:.3f}s, median saving {saved:.3f}s "
                   f"= {saved / window_step:.1%} of the step ({window_step:.3f}s in this window)")
        rows.append([label, window_step, saved, saved / window_step])
        del h
    reg = sum(t * base["weights"][p] for p, t in base["phase_t"].items() if p.endswith("reg"))
    rows.append(["regularisers (Greg, Dreg amortised)", full_t, reg, reg / full_t])
    peak = base["peak_t"]
    rows.append(["convs at forward speed (ideal)", "-", peak, peak / full_t])
    timed = "+".join(phases) + " re-timed, interleaved with the full step" + (
        "" if len(phases) == len(hb.phases) else " (savings in other phases not counted: lower bounds)")
    print(f"\n### Breakdown at {name} (batch {base['batch']}); step {full_t:.3f}s; ablations: {timed}")
    common.print_table(rows, ["part removed", "step sec (window)", "sec saved", "share of step"])
    parts = sum(r[3] for r in rows[:len(ABLATIONS)])
    print(f"non-conv parts measured by ablation: {parts:.1%} of the step (goal < 15%); convs at forward speed "
          f"{peak / full_t:.1%}; the rest ({1 - parts - peak / full_t:.1%}) is conv gradients slower than forward "
          f"speed, optimiser and glue")


def data_input(name, base):
    from volumes.dataset_reader import make_dataset
    from volumes.demo_data import data_root
    from volumes.manifest import load_manifest

    path = FLAGS.dataset or os.path.join(data_root(), "demo-demo")
    try:
        manifest = load_manifest(path)
    except (ValueError, OSError) as e:  # load_manifest: a missing or invalid dataset
        print(f"\ndata input: skipped ({e}); pass --dataset")
        return
    if list(manifest.shape) != list(base["harness"].G.img_shape):
        print(f"\ndata input: skipped ({path} is {manifest.shape}, the config trains {base['harness'].G.img_shape})")
        return
    ds = iter(make_dataset(path, batch_size=base["batch"], shuffle=True, repeat=True))
    next(ds)
    n, t0 = 10, time.perf_counter()
    for _ in range(n):
        next(ds)[0].numpy()
    t = (time.perf_counter() - t0) / n
    print(f"\ndata input ({path}): {t * 1000:.1f} ms per batch of {base['batch']} ({base['batch'] / t:.1f} volumes/s) "
          f"vs step consumption {base['batch'] / base['step_t']:.1f} volumes/s: {t / base['step_t']:.1%} of a step "
          f"if not overlapped")


def main(argv):
    del argv
    names = ["demo-tiny"] if FLAGS.quick else FLAGS.configs
    from training.configs import CONFIGS

    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        raise UserError(f"--configs: unknown {unknown}; choose from {', '.join(CONFIGS)}")
    if FLAGS.paper_batch < 1 or FLAGS.repeats < 1:
        raise UserError("--paper_batch and --repeats must be >= 1")
    print(f"bench_step | {common.machine_line()}")
    print(f"command: python -m bench.bench_step {' '.join(sys.argv[1:])}")
    if FLAGS.retune:  # this run's own decisions file beside the user's, removed at the end
        retune_file = os.path.join(os.path.dirname(autotune.cache_path()), f"bench_step-{os.getpid()}.json")
        autotune.cache_path = lambda: retune_file
        autotune.reset()
    print(f"autotuning {'on' if autotune.enabled() else 'off (fixed defaults)'}"
          f"{', afresh in this run' if FLAGS.retune and autotune.enabled() else ''}; "
          f"forced: {autotune.forced_paths() or 'none'}")
    results = []
    for name in names:
        r = measure_config(name, FLAGS.quick)
        print_config(r)
        if FLAGS.breakdown and not _is_paper(name) and not any(not _is_paper(x["name"]) for x in results):
            if FLAGS.profile_runs > 0:
                profile_breakdown(name, r, FLAGS.quick)
            breakdown(name, r, FLAGS.quick)
            data_input(name, r)
        r.pop("harness")
        results.append(r)
        print(f"({common.load_line()})", flush=True)
    if FLAGS.retune and os.path.exists(retune_file):
        os.remove(retune_file)
    print(f"\ndone | {common.load_line()}")


if __name__ == "__main__":
    app.run(run_main(main))
