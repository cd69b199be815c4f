"""Measuring time and peak memory: the one place the Hard cases page, ``bench/run.py`` and the tests use.

Timing (:func:`time_call`): warm-up calls that are not counted, then repeats; the median and the spread
(fastest and slowest repeat) — one call is never a measurement: on a shared machine it can be twice the
next size's time.

Peak memory, by the tool each device offers:

- :func:`cpu_peak_bytes` — PyTorch's CPU allocator, every allocation and free recorded by ``torch.profiler``;
- :func:`cuda_peak_bytes` — the CUDA allocator's peak (``torch.cuda.max_memory_allocated``);
- :func:`child_peak_growth_mib` — the kernel's peak resident memory (VmHWM) of a fresh process.

``torch.profiler``, the CUDA peak counters and the VmHWM mark are **process-wide**: two profilers at once
crash the process (SIGSEGV), and two peaks reset at once read each other's memory. So every such tool is
used only while holding :data:`EXCLUSIVE` (:meth:`Exclusive.hold`), a process-wide re-entrant lock that
also says whether a measurement is waiting, so a page can show it. :func:`child_peak_growth_mib` needs no
lock: its measurement runs in its own process.

Pure library code (no streamlit).
"""

from __future__ import annotations

import functools
import gc
import os
import resource
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .errors import AttnvizError

# ------------------------------------------------------------------------------ one at a time


class MeasurementBusy(AttnvizError):
    """Another measurement held the process-wide measuring tools for longer than the caller would wait."""


class Exclusive:
    """A process-wide, re-entrant lock for process-wide measuring tools, with its queue visible.

    ``with EXCLUSIVE.hold(on_wait=...) as slot:`` — ``on_wait(n_ahead)`` is called once, before blocking,
    when another thread holds the lock; ``slot.waited_s`` is how long this thread waited.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._guard = threading.Lock()
        self._holder: int | None = None
        self._depth = 0
        self._waiting = 0

    def busy(self) -> bool:
        """True while some thread holds the lock."""
        return self._holder is not None

    def waiting(self) -> int:
        """Threads waiting for the lock now."""
        return self._waiting

    @contextmanager
    def hold(self, on_wait: Callable[[int], None] | None = None, timeout: float | None = None,
             clock: Callable[[], float] = time.monotonic) -> Iterator["Slot"]:
        t0 = clock()
        got = self._lock.acquire(blocking=False)
        if not got:
            with self._guard:
                self._waiting += 1
                ahead = self._waiting
            try:
                if on_wait is not None:
                    on_wait(ahead)
                got = self._lock.acquire(timeout=-1 if timeout is None else max(0.0, timeout))
            finally:
                with self._guard:
                    self._waiting -= 1
            if not got:
                raise MeasurementBusy("Another measurement is still running on this server: press the button "
                                      "again in a minute.")
        try:
            self._holder = threading.get_ident()
            self._depth += 1
            yield Slot(clock() - t0)
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._holder = None
            self._lock.release()


@dataclass(frozen=True)
class Slot:
    waited_s: float  # seconds spent waiting for another measurement to finish


#: the one lock every process-wide measuring tool is used under
EXCLUSIVE = Exclusive()

# ------------------------------------------------------------------------------------------ timing


def no_sync() -> None:
    pass


def sync_for(device) -> Callable[[], None]:
    """What to call before and after a timed call on ``device`` so queued GPU work is counted."""
    if str(device).startswith("cuda"):
        import torch

        return lambda: torch.cuda.synchronize(device)
    return no_sync


def timed(fn: Callable[[], object], sync: Callable[[], None] = no_sync,
          clock: Callable[[], float] = time.perf_counter) -> float:
    """Seconds of one call (``sync`` before and after, so queued GPU work is counted)."""
    sync()
    t0 = clock()
    out = fn()
    sync()
    seconds = clock() - t0
    del out
    return seconds


@dataclass(frozen=True)
class Timing:
    """The repeats of one timed call: ``median`` is the measurement, ``low``/``high`` its spread."""

    samples: tuple[float, ...]
    warmup: int

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def repeats(self) -> int:
        return len(self.samples)


def time_call(fn: Callable[[], object], repeats: int = 5, warmup: int = 1, sync: Callable[[], None] = no_sync,
              clock: Callable[[], float] = time.perf_counter, budget_s: float | None = None,
              min_repeats: int = 1, collect: bool = True) -> Timing:
    """``warmup`` untimed calls, then ``min_repeats`` to ``repeats`` timed ones: a repeat beyond
    ``min_repeats`` starts only if, at the pace so far, it ends within ``budget_s`` seconds of the start
    (warm-up included)."""
    start = clock()
    for _ in range(warmup):
        out = fn()
        del out
    sync()
    if collect:
        gc.collect()
    samples: list[float] = []
    for _ in range(max(1, repeats)):
        if (len(samples) >= max(1, min_repeats) and budget_s is not None
                and clock() - start + statistics.median(samples) > budget_s):
            break
        samples.append(timed(fn, sync, clock))
    return Timing(tuple(samples), warmup)


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 1, sync: Callable[[], None] = no_sync) -> float:
    """Median seconds over ``repeats`` calls after ``warmup`` untimed calls."""
    return time_call(fn, repeats, warmup, sync).median


def paired(baseline: Callable[[], object], candidate: Callable[[], object], repeats: int, warmup: int = 1,
           sync: Callable[[], None] = no_sync) -> dict:
    """Interleaved repeats (A B, B A, A B, ...) of a baseline and a candidate.

    Returns the median seconds of each and ``ratio``, the median of the per-pair ratios
    candidate / baseline (a burst of load from another process then spoils one pair, not the median).
    """
    for _ in range(warmup):
        baseline()
        candidate()
    gc.collect()
    base, cand, ratios = [], [], []
    for i in range(max(1, repeats)):
        if i % 2 == 0:
            b = timed(baseline, sync)
            c = timed(candidate, sync)
        else:
            c = timed(candidate, sync)
            b = timed(baseline, sync)
        base.append(b)
        cand.append(c)
        ratios.append(c / b)
    return {"baseline": statistics.median(base), "candidate": statistics.median(cand),
            "ratio": statistics.median(ratios), "best_ratio": min(cand) / min(base)}


# ------------------------------------------------------------------------------------ peak memory

_TAG = "attnviz_memory::"


def cpu_peak_bytes(jobs: Sequence[tuple[object, Callable[[], object]]], time_left: float | None = None,
                   clock: Callable[[], float] = time.perf_counter, on_wait=None) -> dict:
    """Peak bytes held by PyTorch's CPU allocator during each job, measured, not estimated.

    ``jobs``: ``(name, zero-argument callable)``. All run in one ``torch.profiler`` session with
    ``profile_memory=True`` (under :data:`EXCLUSIVE`); every allocation and free made by the calling thread
    inside a job's ``record_function`` range is replayed in time order and the highest running total is
    its peak (other threads' allocations — other sessions — are not counted). Jobs that would start more
    than ``time_left`` seconds after the profiler has started are skipped (absent from the result).
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    names = []
    with EXCLUSIVE.hold(on_wait=on_wait):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            deadline = None if time_left is None else clock() + time_left  # the profiler's start-up is not counted
            for name, fn in jobs:
                if deadline is not None and clock() > deadline:
                    break
                tag = f"{_TAG}{len(names)}"
                with record_function(tag):
                    out = fn()
                    del out
                names.append((tag, name))
        events = list(prof.profiler.kineto_results.events())
    spans = {e.name(): (e.start_ns(), e.start_ns() + e.duration_ns(), e.start_thread_id()) for e in events
             if e.name().startswith(_TAG)}
    records = sorted((e.start_ns(), e.nbytes(), e.start_thread_id()) for e in events if e.name() == "[memory]")
    peaks = {}
    for tag, name in names:
        if tag not in spans:
            continue
        lo, hi, thread = spans[tag]
        cur = peak = 0
        for t, nbytes, th in records:
            if lo <= t <= hi and th == thread:
                cur += nbytes
                peak = max(peak, cur)
        peaks[name] = int(peak)
    return peaks


def cuda_peak_bytes(fn: Callable[[], object], device, on_wait=None) -> tuple[int, float]:
    """``(peak bytes above the level before the call, seconds)`` of one call on a CUDA device, under
    :data:`EXCLUSIVE` (the peak counters are per device, shared by every thread)."""
    import torch

    with EXCLUSIVE.hold(on_wait=on_wait):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        seconds = timed(fn, sync_for(device))
        return max(0, int(torch.cuda.max_memory_allocated(device)) - base), seconds


def _status_mib(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mib() -> float | None:
    """This process's resident memory now (MiB; Linux)."""
    return _status_mib("VmRSS")


def rss_peak_mib() -> float:
    """This process's peak resident memory (VmHWM; ``ru_maxrss`` where there is no /proc)."""
    hwm = _status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS (Linux >= 4.0). Process-wide: call it
    in a process of its own (a benchmark child, :func:`child_peak_growth_mib`) or under :data:`EXCLUSIVE`."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


_CHILD_PRELUDE = "import json, torch\nfrom attnviz.measure import reset_rss_peak, rss_mib, rss_peak_mib\n"
_CHILD_MEASURE = ("\n_reset = reset_rss_peak()\n_before = rss_mib() if _reset else rss_peak_mib()\n{call}\n"
                  "print(json.dumps(rss_peak_mib() - _before))\n")


def child_peak_growth_mib(setup: str, call: str, timeout: float = 300) -> float:
    """Run ``setup``, then ``call`` (Python source; ``torch`` is imported) in a fresh process; return how far
    its resident memory peaked above its level just before ``call`` (MiB). The peak mark is reset just
    before the call, so the setup's own peak does not hide the call's (a lifetime peak where that reset is
    not allowed)."""
    code = _CHILD_PRELUDE + textwrap.dedent(setup) + _CHILD_MEASURE.format(call=textwrap.dedent(call))
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"the measurement process failed (exit {out.returncode}):\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def release_memory(collect: bool = False) -> bool:
    """Hand the heap that freed objects left behind back to the OS: glibc's ``malloc_trim(0)`` (every arena, not
    only the main heap's top), after a ``gc.collect()`` if ``collect``. True if trimmed (glibc), False where
    there is no glibc (musl, macOS: nothing to do). Measured after a 10-session burst: docs/limits.md."""
    if collect:
        gc.collect()
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        fn = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_int
    return fn


__all__ = ["EXCLUSIVE", "Exclusive", "MeasurementBusy", "Slot", "Timing", "child_peak_growth_mib", "cpu_peak_bytes",
           "cuda_peak_bytes", "median_time", "no_sync", "paired", "release_memory", "reset_rss_peak", "rss_mib", "rss_peak_mib",
           "sync_for", "time_call", "timed"]
