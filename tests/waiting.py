"""Waits that follow progress, not the clock: the one way tests wait for something to happen.

A busy machine makes everything slower, but a slow thing still moves (a log grows, a process burns CPU, a
stream gets longer). `wait_for` keeps waiting while the thing it watches moves, fails when nothing has moved
for `stall` seconds or when the generous `ceiling` passes, and says what it was waiting for and what it saw.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

# Under pytest-timeout's 600 s per test (pytest.ini), so our message, not a killed thread, explains a failure.
CEILING = 540.0


class WaitTimeout(AssertionError):
    """A wait ran out: nothing moved for its stall time, or its ceiling passed."""


def wait_for(check: Callable[[], T], what: str, *, progress: Callable[[], object] | None = None,
             stall: float = 60.0, ceiling: float = CEILING, poll: float = 0.1,
             detail: Callable[[], str] | None = None) -> T:
    """Return the first truthy value of `check()`, polled every `poll` seconds.

    `progress()` returns anything comparable; each change restarts the `stall` clock. Without `progress`
    the wait ends after `stall` seconds (use it only for things that must happen soon). `ceiling` bounds
    the whole wait even while things move. `detail()` adds what a person needs to see on failure (a log).
    """
    start = time.monotonic()
    moved_at, last = start, progress() if progress else None
    while True:
        value = check()
        if value:
            return value
        now = time.monotonic()
        if progress is not None:
            seen = progress()
            if seen != last:
                moved_at, last = now, seen
        if now - moved_at > stall or now - start > ceiling:
            why = (f"nothing moved for {now - moved_at:.0f}s" if now - moved_at > stall
                   else f"the {ceiling:.0f}s ceiling passed while it was still moving")
            seen_text = f"; last progress seen: {_short(last)}" if progress is not None else ""
            more = f"\n{detail()}" if detail else ""
            raise WaitTimeout(f"gave up waiting for {what} after {now - start:.0f}s: {why}{seen_text}{more}")
        time.sleep(poll)


def file_size(path: str | Path) -> Callable[[], int]:
    """Progress probe: the size of a file (a log that grows while its writer works); 0 while it is missing."""
    def size() -> int:
        try:
            return Path(path).stat().st_size
        except FileNotFoundError:
            return 0
    return size


def process_work(pid: int, cpu_step: float = 0.05) -> Callable[[], tuple[int, int]]:
    """Progress probe: (CPU time in `cpu_step` units, bytes read and written) of a process and its children.

    A process that computes or reads (imports, loads a model, generates) moves this even on a crowded
    machine, where it may get a twentieth of a core; a blocked or stopped one does not move at all.
    """
    import psutil

    def work() -> tuple[int, int]:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return (-1, -1)
        cpu = io = 0.0
        for proc in procs:
            try:
                t = proc.cpu_times()
                cpu += t.user + t.system
                c = proc.io_counters()
                io += c.read_chars + c.write_chars
            except psutil.Error:
                pass
        return int(cpu / cpu_step), int(io)
    return work


def combined(*probes: Callable[[], object]) -> Callable[[], tuple]:
    """One progress probe from several: it moves when any of them moves."""
    return lambda: tuple(p() for p in probes)


def _short(value: object, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
