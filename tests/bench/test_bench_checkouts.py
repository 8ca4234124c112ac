"""bench/bench_checkouts.py: the tick lines it reads and what it refuses."""

import pytest

from bench import bench_checkouts
from tests.utils import run_script

TICK = ("tick {t:<4d} kimg {k:<8.3f} time 1m 02s    sec/tick 12.0   sec/kimg {r:<7.1f} maintenance 0.1   "
        "peak_mem 1.7GB  skipped 0  D/loss 1.0")

# (log lines, sec/kimg of the ticks after the first)
RATE_CASES = [
    ([TICK.format(t=0, k=0.04, r=900.0), TICK.format(t=1, k=0.08, r=300.0), TICK.format(t=2, k=0.12, r=310.5)],
     [300.0, 310.5]),
    (["Training for 0.2 kimg", TICK.format(t=7, k=0.04, r=50.0), "snapshot x", TICK.format(t=8, k=0.08, r=40.0)],
     [40.0]),  # a resumed run's first tick is its own first, whatever its number
    ([TICK.format(t=0, k=0.04, r=900.0)], []),
    (["no ticks at all"], []),
]


@pytest.mark.parametrize("lines, expected", RATE_CASES)
def test_tick_rates_leave_out_the_first_tick(lines, expected):
    assert bench_checkouts.tick_rates("\n".join(lines) + "\n") == expected


@pytest.mark.parametrize("args, flag", [(["--before=/nonexistent"], "--before"),
                                        (["--before=.", "--data=/nonexistent"], "--data")])
def test_bad_flags_are_one_error_line(args, flag):
    p = run_script("bench/bench_checkouts.py", *args, timeout=120)
    assert p.returncode == 2, p.stderr
    err = [line for line in p.stderr.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and flag in err[0], p.stderr
