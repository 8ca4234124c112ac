"""Ordered parallel map over worker processes, with a one-line progress bar.

Workers are started with "spawn": the parent has usually imported TensorFlow (to write TFRecords),
and forking a process that runs TensorFlow threads can deadlock. Each worker runs one SimpleITK
thread, since the processes already use every core.
"""

import concurrent.futures
import multiprocessing
import os
import signal
import sys
import time

_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def default_workers():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def available_memory():
    """Bytes of memory this process can still use: MemAvailable, capped by a cgroup (v2) limit (a batch job's
    allocation) when there is one; None when unknown."""
    avail = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        with open("/sys/fs/cgroup/memory.current") as f:
            used = int(f.read().strip())
        if limit != "max":
            room = max(int(limit) - used, 0)
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def memory_bounded_workers(workers, bytes_per_worker, available=None):
    """At most `workers` (None: default_workers()), and no more than the available memory holds at
    bytes_per_worker each (at least 1): too many workers would swap or be killed by the OOM killer mid-run."""
    workers = default_workers() if workers is None else int(workers)
    available = available_memory() if available is None else available
    if available is None or bytes_per_worker <= 0:
        return max(1, workers)
    return max(1, min(workers, int(available // bytes_per_worker)))


def _init_worker(initializer, initargs):
    # Ctrl-C reaches every process of the terminal's group, and a scheduler's SIGTERM every process of the job; the
    # parent alone stops the pool (pending items cancelled, running ones finish), so workers neither print a
    # traceback each nor die under the executor, whose clean-up of dead workers races with that cancelling
    # (Python 3.11: InvalidStateError in its management thread, seen in tests/volumes/test_safety.py).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked since imap_ordered started this worker
    try:
        import SimpleITK as sitk

        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    except ImportError:
        pass
    if initializer is not None:
        initializer(*initargs)


def imap_ordered(fn, items, workers=None, initializer=None, initargs=(), chunksize=1):
    """Yield fn(item) in input order, computed by `workers` processes (inline when workers == 1)."""
    items = list(items)
    workers = min(default_workers() if workers is None else int(workers), max(len(items), 1))
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for item in items:
            yield fn(item)
        return
    executor = concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                                      initializer=_init_worker, initargs=(initializer, initargs))
    # The workers start (inside map) with SIGINT and SIGTERM blocked, inherited from this thread, until
    # _init_worker ignores them: a signal to the whole group during their start-up (importing takes seconds)
    # cannot kill them either. CPython starts its resource tracker the same way.
    blocked = hasattr(signal, "pthread_sigmask")
    try:
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if blocked else None
        try:
            results = executor.map(fn, items, chunksize=chunksize)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        yield from results
    finally:
        # Pending items are cancelled, running ones finish. Not multiprocessing.Pool: a SIGTERM sent to the whole
        # process group (a scheduler's) can kill a worker while it holds the task queue's lock, and
        # Pool.terminate() then waits for that lock forever; the executor notices dead workers.
        executor.shutdown(wait=True, cancel_futures=True)


class Progress:
    """A progress line '[#####-----] done/total  rate vol/s  ETA' on stderr (or `stream`).

    Redrawn in place on a terminal; elsewhere (a log file) one line per tenth of the work and one at the end.
    """

    def __init__(self, total, label="", enabled=True, stream=None, width=30):
        self.total, self.label, self.width = int(total), label, width
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.done = 0
        self.start = time.time()
        self._last = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._tenths_logged = 0

    def update(self, n=1):
        self.done += n
        now = time.time()
        if self.enabled and (now - self._last > 0.2 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def rate(self):
        return self.done / max(time.time() - self.start, 1e-9)

    def _draw(self, now):
        frac = self.done / max(self.total, 1)
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        rate = self.done / max(now - self.start, 1e-9)
        eta = (self.total - self.done) / rate if rate > 0 else 0
        line = f"{self.label}[{bar}] {self.done}/{self.total}  {rate:.2f} vol/s  ETA {eta:.0f}s"
        if self._tty:
            self.stream.write("\r" + line + ("\n" if self.done >= self.total else ""))
        elif self.done >= self.total or int(frac * 10) > self._tenths_logged:
            # Tenths crossed, not multiples of total // 10: updates by a batch of n can step over those.
            self._tenths_logged = int(frac * 10)
            self.stream.write(line + "\n")
        self.stream.flush()
