"""Cost of the ADA pipeline (training/augment.py) as a share of the training step.

The real step of training/train_step.py (bench/common.StepHarness: every phase, lazy-weighted) is timed without
augmentation and with each pipeline, interleaved (common.paired_seconds, so a drifting load cancels), at a given
p. At p = 1 every transform runs on every sample (the upper bound); at small p the resampling is skipped for the
batches where no sample drew a geometric transform. On a loaded machine the difference of two step times is
noisy, so the pipeline is also timed alone: per step, three draws and passes of one batch (Gmain's fakes,
Dmain's fakes and reals), each forward and backward (an upper bound: Dmain needs no gradient through it; Dreg's
second-order pass every 16 steps is left out), divided by the step time without augmentation.

    python -m bench.bench_augment                         # demo config, bgc and bgcn at p = 1 and p = 0.2
    python -m bench.bench_augment --quick                 # demo-tiny, one repeat (checks the script)
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from dnnlib import UserError  # noqa: E402
from dnnlib.cli import run_main  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("config", "demo", "Training config (training/configs.py name).")
flags.DEFINE_list("augpipes", ["bgc", "bgcn"], "Pipelines to time (letters of training/augment.py GROUPS).")
flags.DEFINE_list("p", ["1.0", "0.2"], "Augmentation probabilities to time.")
flags.DEFINE_integer("repeats", 5, "Interleaved with/without pairs per pipeline (median).")
flags.DEFINE_bool("quick", False, "demo-tiny config, one repeat.")


def _pipeline_alone(cfg, spacing, spec, p, repeats):
    """Seconds per training step spent in the pipeline alone: 3 x (draw + forward + backward) of one batch."""
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

    return common.time_fn(lambda: three_passes().numpy(), warmup=1, repeats=repeats)


def main(argv):
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
    name = "demo-tiny" if FLAGS.quick else FLAGS.config
    repeats = 1 if FLAGS.quick else FLAGS.repeats
    print(common.machine_line())
    cfg = get_config(name)
    spacing = cfg.spacing_mm or [1.0, 1.0, 1.0]
    common.log(f"== {name}: batch {cfg.batch_size}, image {tuple(cfg.img_shape)}, spacing {spacing} mm")
    base = common.StepHarness(get_config(name))
    base.time_phases(warmup=1, repeats=1, progress=False)  # traced and warm before the pairs
    base_step = base.step_seconds(base.phases)
    rows = []
    for spec in FLAGS.augpipes:
        for p in ps:
            h = common.StepHarness(get_config(name))
            # The loss and the step read the pipe when they are traced: attach it before the first trace.
            h.loss.augment_pipe = AugmentPipe(cfg.img_shape, spacing, augpipe=spec, p=p)
            common.log(f"  tracing the step with augpipe {spec}, p {p:g} ...")
            h.time_phases(warmup=1, repeats=1, progress=False)
            t_base, t_aug, _ = common.paired_seconds(base, h, h.phases, repeats=repeats)
            alone = _pipeline_alone(cfg, spacing, spec, p, repeats=max(3, repeats))
            rows.append([spec, p, t_base, t_aug, (t_aug - t_base) / t_aug, alone, alone / base_step])
            common.log(f"  {spec} p={p:g}: {t_base:.3f} s -> {t_aug:.3f} s per step")
            del h
    print()
    print(f"{name}, batch {cfg.batch_size}: training step (every phase, lazy-weighted) without / with augmentation; "
          f"median of {repeats} interleaved pairs; {common.load_line()}")
    common.print_table(rows, ["augpipe", "p", "step s (noaug)", "step s (aug)", "share (paired steps)",
                              "pipeline alone s", "share (alone / noaug step)"])


if __name__ == "__main__":
    app.run(run_main(main))
