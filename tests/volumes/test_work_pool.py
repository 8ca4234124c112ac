"""work_pool: results come back in input order (inline and from worker processes), a worker's exception reaches
the caller, the initializer runs in every worker, and Progress writes its line."""

import io
import time

import numpy as np
import pytest

from volumes import work_pool

_STATE = {}


def _init(offset):
    _STATE["offset"] = offset


def _slow_shift(x):
    time.sleep(0.02 * (x % 3))  # uneven work, so results finish out of order across workers
    return x + _STATE.get("offset", 0)


def _fail_on_three(x):
    if x == 3:
        raise ValueError(f"item {x} is bad")
    return x


ITEMS = [int(v) for v in np.random.default_rng(0).permutation(12)]


@pytest.mark.parametrize("workers", [1, 2])
def test_results_keep_input_order_and_see_the_initializer(workers):
    out = list(work_pool.imap_ordered(_slow_shift, ITEMS, workers=workers, initializer=_init, initargs=(100,)))
    assert out == [x + 100 for x in ITEMS]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_workers_exception_reaches_the_caller(workers):
    results = work_pool.imap_ordered(_fail_on_three, range(6), workers=workers)
    assert [next(results) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(ValueError, match="item 3 is bad"):
        next(results)
    results.close()


def test_no_items_and_default_workers():
    assert list(work_pool.imap_ordered(_slow_shift, [], workers=4)) == []
    assert work_pool.default_workers() >= 1


class _Terminal(io.StringIO):
    def isatty(self):
        return True


# (stream, enabled, what the output must be): a log gets whole lines, a terminal one line redrawn with '\r'.
PROGRESS_CASES = [
    (io.StringIO, True, lambda text: "\r" not in text and text.count("\n") >= 2 and text.endswith("\n")),
    (_Terminal, True, lambda text: text.startswith("\r") and text.endswith("\n") and text.count("\n") == 1),
    (io.StringIO, False, lambda text: text == ""),
]


@pytest.mark.parametrize("stream_type, enabled, check", PROGRESS_CASES, ids=["log", "terminal", "disabled"])
def test_progress_line(stream_type, enabled, check):
    stream = stream_type()
    progress = work_pool.Progress(10, label="create ", enabled=enabled, stream=stream)
    for _ in range(10):
        progress.update()
    text = stream.getvalue()
    assert check(text)
    if enabled:
        last = text.splitlines()[-1]  # splitlines also splits at '\r'
        assert last.startswith("create [" + "#" * 30 + "] 10/10 ") and "vol/s" in last and "ETA 0s" in last
    assert progress.done == 10 and progress.rate() > 0
