"""Two checkouts of this repository, the same short training run in each, interleaved: sec/kimg of the whole loop
(data, steps, EMA, ticks) and the ratio after/before, measured in one run of this script.

For a change that should not change speed (a refactor): runs alternate before, after, before, after, ... so that a
neighbour's load on a shared machine falls on both; each run's first tick (tracing) is left out, the rest of its
ticks give its sec/kimg (median), and the ratio is of the medians over the runs.

    git worktree add /tmp/before <commit>
    python -m bench.bench_checkouts --before=/tmp/before --after=. --data=<dataset> --pairs=2
"""

import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app, flags

from bench import common
from dnnlib import UserError
from dnnlib.cli import run_main

FLAGS = flags.FLAGS


def define_flags():
    """Defined when run as a script, not at import: tests import several bench modules into one process."""
    flags.DEFINE_string("before", None, "The checkout measured first in each pair (a repository root).")
    flags.DEFINE_string("after", ".", "The other checkout (a repository root).")
    flags.DEFINE_string("data", None, "A dataset folder both checkouts can read (dataset_tool.py create or demo).")
    flags.DEFINE_string("config", "demo", "Training config.")
    flags.DEFINE_integer("pairs", 2, "before/after pairs.")
    flags.DEFINE_float("kimg", 0.2, "Training length of each run (thousands of volumes).")
    flags.DEFINE_float("kimg_per_tick", 0.04, "Tick length: the unit of each sec/kimg figure.")

_TICK = re.compile(r"^tick\s+(\d+)\s+kimg\s+\S+\s+time\s+.*?sec/kimg\s+([\d.]+)", re.M)


def tick_rates(log_text):
    """sec/kimg of every tick after the first (which holds the tracing), from a training log."""
    ticks = [(int(t), float(r)) for t, r in _TICK.findall(log_text)]
    return [r for t, r in ticks if t > min(t for t, _ in ticks)] if ticks else []


def run_once(checkout, outdir):
    cmd = [sys.executable, "run_training.py", f"--data={os.path.abspath(FLAGS.data)}", f"--outdir={outdir}",
           f"--config={FLAGS.config}", f"--kimg={FLAGS.kimg}", f"--kimg_per_tick={FLAGS.kimg_per_tick}",
           "--snap=100000"]
    env = dict(os.environ, PYTHONPATH=os.path.abspath(checkout))
    t0 = time.time()
    p = subprocess.run(cmd, cwd=checkout, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{checkout}: training failed ({p.returncode}): {p.stderr[-2000:]}")
    rates = tick_rates(p.stdout + p.stderr)
    if not rates:
        raise RuntimeError(f"{checkout}: no tick lines after the first; raise --kimg")
    return statistics.median(rates), time.time() - t0


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {' '.join(argv[1:])}")
    for name in ("before", "after"):
        if not FLAGS[name].value or not os.path.isfile(os.path.join(FLAGS[name].value, "run_training.py")):
            raise UserError(f"--{name}={FLAGS[name].value}: not a checkout of this repository (no run_training.py)")
    if not FLAGS.data or not os.path.isfile(os.path.join(FLAGS.data, "dataset.json")):
        raise UserError(f"--data={FLAGS.data}: not a dataset folder (no dataset.json)")
    if FLAGS.pairs < 1:
        raise UserError(f"--pairs={FLAGS.pairs}: at least 1")
    print(common.machine_line(peak=False))
    print(common.load_line())
    rates = {"before": [], "after": []}
    with tempfile.TemporaryDirectory(prefix="bench-checkouts-") as tmp:
        for pair in range(FLAGS.pairs):
            for name in ("before", "after"):
                rate, wall = run_once(FLAGS[name].value, os.path.join(tmp, f"{name}-{pair}"))
                rates[name].append(rate)
                common.log(f"pair {pair}: {name:<6} {rate:7.1f} sec/kimg (run {wall:.0f} s)")
    before, after = statistics.median(rates["before"]), statistics.median(rates["after"])
    common.print_table([["before", FLAGS.before, before], ["after", FLAGS.after, after]],
                       ["checkout", "path", "sec/kimg (median)"])
    print(f"after/before = {after / before:.3f} (below 1: after is faster); {FLAGS.config}, {FLAGS.pairs} pair(s)")
    print(common.load_line())


if __name__ == "__main__":
    define_flags()
    app.run(run_main(main))
