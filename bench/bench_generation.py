"""Generation throughput (volumes/s) and projector speed (steps/s), measured in one run.

  TF_CPP_MIN_LOG_LEVEL=2 python -m bench.bench_generation
  TF_CPP_MIN_LOG_LEVEL=2 python -m bench.bench_generation --paper_config=   # skip the 2 mm paper config

Networks are randomly initialised (speed does not depend on the weights). Each timing follows a warm-up call
that traces the tf.function, so the figures are steady-state; the trace time is printed separately.
"""

import os
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("demo_config", "demo", "Demo config for generation and projector timings.")
flags.DEFINE_string("paper_config", "Gorig-Dres-3d-2mm-base567", "Paper config (batch 1); empty to skip.")
flags.DEFINE_integer("demo_batch", 4, "Batch size of demo generation.")
flags.DEFINE_integer("demo_volumes", 16, "Volumes generated for the demo timing.")
flags.DEFINE_integer("paper_volumes", 3, "Volumes generated for the paper-config timing (batch 1).")
flags.DEFINE_integer("proj_steps", 20, "Projector steps timed (after one warm-up step).")
flags.DEFINE_integer("proj_batch", 1, "Targets per projector batch.")


def time_generation(config, batch, num):
    import numpy as np

    from generation import sampling as generation
    from generation.runner import Runner
    from training import configs

    G, _ = configs.build_networks(configs.get_config(config))
    runner = Runner(G, batch_size=batch)
    t0 = time.perf_counter()
    generation.generate(runner, list(range(batch)), psi=0.7, noise_mode="random")  # trace
    trace = time.perf_counter() - t0
    t0 = time.perf_counter()
    vols = generation.generate(runner, list(range(100, 100 + num)), psi=0.7, noise_mode="random")
    dt = time.perf_counter() - t0
    assert vols.shape[0] == num and np.all(np.isfinite(vols))
    return dict(config=config, shape="x".join(map(str, G.img_shape)), batch=batch, volumes=num, seconds=dt,
                vol_per_s=num / dt, trace_s=trace)


def time_projector(config, steps, batch):
    import numpy as np

    from generation import projector
    from generation import sampling as generation
    from generation.runner import Runner
    from training import configs

    G, _ = configs.build_networks(configs.get_config(config))
    runner = Runner(G, batch_size=batch)
    targets = generation.generate(runner, list(range(batch)), noise_mode="const")
    stats = projector.w_statistics(G, 1000)
    t0 = time.perf_counter()
    p = projector.Projector(G, targets, opts=dict(num_steps=1), w_stats=stats)
    p.run()  # trace + one step
    trace = time.perf_counter() - t0
    p.opts.num_steps = steps
    t0 = time.perf_counter()
    res = p.run()
    dt = time.perf_counter() - t0
    assert np.all(np.isfinite(res.volumes))
    return dict(config=config, batch=batch, steps=steps, seconds=dt, steps_per_s=steps / dt, trace_s=trace)


def main(_):
    import platform

    import psutil
    import tensorflow as tf

    print(f"# {time.strftime('%Y-%m-%d %H:%M:%S %Z')}  {platform.node()}  {platform.processor() or platform.machine()}"
          f"  cores={psutil.cpu_count(logical=True)}  load={os.getloadavg()[0]:.1f}  tf={tf.__version__}")
    rows = [time_generation(FLAGS.demo_config, FLAGS.demo_batch, FLAGS.demo_volumes)]
    if FLAGS.paper_config:
        rows.append(time_generation(FLAGS.paper_config, 1, FLAGS.paper_volumes))
    for r in rows:
        print(f"generate  {r['config']:<28} {r['shape']:>12} batch {r['batch']}: {r['volumes']} volumes in "
              f"{r['seconds']:.2f} s = {r['vol_per_s']:.3f} volumes/s  ({1 / r['vol_per_s']:.3f} s/volume; "
              f"trace {r['trace_s']:.1f} s)")
    if len(rows) == 2:
        print(f"ratio     demo / paper volumes/s: {rows[0]['vol_per_s'] / rows[1]['vol_per_s']:.1f}x")
    p = time_projector(FLAGS.demo_config, FLAGS.proj_steps, FLAGS.proj_batch)
    print(f"project   {p['config']:<28} batch {p['batch']}: {p['steps']} steps in {p['seconds']:.2f} s = "
          f"{p['steps_per_s']:.2f} steps/s; a 1000-step projection ~ {1000 / p['steps_per_s'] / 60:.1f} min "
          f"(trace {p['trace_s']:.1f} s)")


if __name__ == "__main__":
    app.run(main)
