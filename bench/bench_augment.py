"""Cost of the ADA pipeline (training/augment.py) as a share of the training step.

The real step of training/train_step.py (bench/common.StepHarness: every phase, lazy-weighted) is timed without
augmentation and with each pipeline, interleaved in rounds (so a drifting load cancels), at a given
p. At p = 1 every transform runs on every sample (the upper bound); at small p the resampling is skipped for the
batches where no sample drew a geometric transform. On a loaded machine the difference of two step times is
noisy, so the pipeline is also timed alone: per step, three draws and passes of one batch (Gmain's fakes,
Dmain's fakes and reals), each forward and backward (an upper bound: Dmain needs no gradient through it; Dreg's
second-order pass every 16 steps is left out), divided by the step time without augmentation, in wall time and
in process CPU time (the latter stays readable when the machine is loaded several times over).

    python -m bench.bench_augment                         # demo config, bgc and bgcn at p = 1 and p = 0.2
    python -m bench.bench_augment --variants=product,tf_ops   # the C++ resampling against the TF-ops gather
    python -m bench.bench_augment --quick                 # demo-tiny, one repeat (checks the script)

--variants: product (the pipeline as training runs it), tf_ops (the resampling as TensorFlow ops, as without a
compiler) and the resampling formulations of bench/formulations.py (RESAMPLINGS). Every variant's step is timed in
the same rounds as the step without augmentation (base, then each variant), and the share is the median over the
rounds of (variant - base) / variant.
"""

import statistics
import time

from absl import app, flags

from bench import common
from dnnlib import UserError
from dnnlib.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "demo", "Training config (training/configs.py name).")
flags.DEFINE_list("augpipes", ["bgc", "bgcn"], "Pipelines to time (letters of training/augment.py GROUPS).")
flags.DEFINE_list("p", ["1.0", "0.2"], "Augmentation probabilities to time.")
flags.DEFINE_integer("repeats", 5, "Interleaved with/without pairs per pipeline (median).")
flags.DEFINE_bool("quick", False, "demo-tiny config, one repeat.")
flags.DEFINE_list("variants", ["product"], "Pipeline variants: product, tf_ops, or bench/formulations.py "
                  "RESAMPLINGS names.")


def _pipeline_alone(cfg, spacing, spec, p, repeats, variant=None):
    """Seconds per training step spent in the pipeline alone: 3 x (draw + forward + backward) of one batch."""
    import contextlib

    import tensorflow as tf

    from training.augment import AugmentPipe

    B = int(cfg.batch_size)
    pipe = AugmentPipe(cfg.img_shape, spacing, augpipe=spec, p=p)
    x = tf.random.stateless_uniform([B, *cfg.img_shape, 1], seed=[1, 2], minval=-1, maxval=1)

    @tf.function
    def three_passes():
        total = 0.0
        for _ in range(3):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.reduce_sum(pipe(x, pipe.draw_list(B)))
            total += tf.reduce_sum(tape.gradient(y, x))
        return total

    with variant() if variant else contextlib.nullcontext():  # the variant is baked in when traced (warm-up)
        wall = common.time_fn(lambda: three_passes().numpy(), warmup=1, repeats=repeats)
    # CPU seconds as well: on a machine loaded several times over its cores, wall-time differences are mostly noise.
    return wall, common.time_fn(lambda: three_passes().numpy(), warmup=0, repeats=repeats, clock=time.process_time)


def _step_cpu_seconds(h, repeats):
    """Median process CPU seconds of one training step of harness h (each phase weighted like the step)."""
    return statistics.median(
        [sum(common.time_fn(lambda p=p: h.run(p), warmup=0, repeats=1, clock=time.process_time) * h.weight(p)
             for p in h.phases) for _ in range(max(1, repeats))])


def main(argv):
    from bench.formulations import augment_variant
    from training.augment import AugmentPipe, parse_augpipe
    from training.configs import get_config

    del argv
    try:
        ps = [float(v) for v in FLAGS.p]
    except ValueError:
        raise UserError(f"--p: not a list of numbers: {','.join(FLAGS.p)}") from None
    for spec in FLAGS.augpipes:
        try:
            parse_augpipe(spec)
        except ValueError as e:
            raise UserError(f"--augpipes: {e}") from None
    try:
        variants = [(v, augment_variant(v)) for v in FLAGS.variants]
    except ValueError as e:
        raise UserError(f"--variants: {e}") from None
    name = "demo-tiny" if FLAGS.quick else FLAGS.config
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    print(common.machine_line())
    cfg = get_config(name)
    spacing = cfg.spacing_mm or [1.0, 1.0, 1.0]
    common.log(f"== {name}: batch {cfg.batch_size}, image {tuple(cfg.img_shape)}, spacing {spacing} mm")
    base = common.StepHarness(get_config(name))
    base.time_phases(warmup=1, repeats=1, progress=False)  # traced and warm before the pairs
    base_step = base.step_seconds(base.phases)
    base_cpu = _step_cpu_seconds(base, repeats)
    rows = []
    for spec in FLAGS.augpipes:
        for p in ps:
            harnesses = []
            for vname, variant in variants:
                h = common.StepHarness(get_config(name), variant=variant)
                # The loss and the step read the pipe when they are traced: attach it before the first trace.
                h.loss.augment_pipe = AugmentPipe(cfg.img_shape, spacing, augpipe=spec, p=p)
                common.log(f"  tracing the step with augpipe {spec}, p {p:g}, {vname} ...")
                h.time_phases(warmup=1, repeats=1, progress=False)
                harnesses.append(h)
            t_base, t_aug, shares = _interleaved(base, harnesses, repeats)
            for (vname, variant), t, share in zip(variants, t_aug, shares, strict=True):
                alone, alone_cpu = _pipeline_alone(cfg, spacing, spec, p, repeats=max(3, repeats), variant=variant)
                rows.append([spec, p, vname, t_base, t, share, alone, alone / base_step, alone_cpu,
                             alone_cpu / base_cpu])
                common.log(f"  {spec} p={p:g} {vname}: {t_base:.3f} s -> {t:.3f} s per step, share {share:.1%}")
            del harnesses
    print()
    print(f"{name}, batch {cfg.batch_size}: training step (every phase, lazy-weighted) without / with augmentation; "
          f"median of {repeats} interleaved rounds; {common.load_line()}")
    common.print_table(rows, ["augpipe", "p", "variant", "step s (noaug)", "step s (aug)", "share (rounds)",
                              "pipeline alone s", "share (alone / noaug step)", "alone CPU s",
                              f"share (CPU: alone / noaug step {base_cpu:.3g} s)"])


def _interleaved(base, harnesses, repeats):
    """Rounds of (base, each harness) steps: median base seconds, median seconds and median share per harness."""
    for h in [base, *harnesses]:  # untimed: the first run after switching graphs can take seconds longer
        h.step_seconds(h.phases)
    tb, ts, shares = [], [[] for _ in harnesses], [[] for _ in harnesses]
    for _ in range(max(1, repeats)):
        b = base.step_seconds(base.phases)
        tb.append(b)
        for i, h in enumerate(harnesses):
            t = h.step_seconds(h.phases)
            ts[i].append(t)
            shares[i].append((t - b) / t)
    return (statistics.median(tb), [statistics.median(t) for t in ts], [statistics.median(s) for s in shares])


if __name__ == "__main__":
    app.run(run_main(main))
