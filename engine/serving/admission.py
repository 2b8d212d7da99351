"""Admission by expected wait: refuse at once what would wait longer than server.max_wait_s.

A queue bounded only by its length lets 50 clients wait until they give up (hey's 20 s, a browser's
patience). Here the wait is estimated from what the server has just done: while every slot is taken, the
seconds between two requests finishing (a moving average) is how fast the queue moves, so a request with
W requests ahead waits about (W + 1) times that. Retry-After is when, at that pace, the queue will be
short enough to take it. Until the first busy finish there is no measurement and only the queue length
limits (nothing is refused on a guess); when the last request ends the pace is forgotten, since a stretch
of idle time says nothing about the next burst.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from config import ServerConfig

SMOOTHING = 0.2   # weight of the newest interval in the moving average


@dataclass(frozen=True)
class Admission:
    """How many requests may wait (server.queue_size) and how long one may expect to wait (server.max_wait_s)
    before new ones are refused as busy; given to the engine once, where it is built."""
    max_waiting: int = 64
    max_wait_s: float | None = None

    @classmethod
    def from_config(cls, server: ServerConfig) -> "Admission":
        return cls(server.queue_size, server.max_wait_s)


@dataclass(frozen=True)
class Verdict:
    admit: bool
    expected_wait_s: float    # 0 when a slot is free or nothing is measured yet
    retry_after_s: int        # meaningful when refused


class WaitEstimator:
    """Learns seconds per finished request while saturated; judges a newcomer against `max_wait_s`.

    Not thread-safe on its own: FifoSlots calls it under its lock."""

    def __init__(self, max_wait_s: float | None = None, clock=time.monotonic):
        self.max_wait_s, self._clock = max_wait_s, clock
        self._interval: float | None = None   # seconds between finishes while all slots were busy
        self._mark: float | None = None       # start of the current busy stretch, or the last busy finish

    @property
    def seconds_per_finish(self) -> float | None:
        return self._interval

    def became_full(self) -> None:
        if self._mark is None:
            self._mark = self._clock()

    def finished(self, still_full: bool, drained: bool = False) -> None:
        """A holder released its slot; `still_full`: the slot passed straight to a waiter; `drained`: nothing
        generates any more, so the pace measured is stale (the next burst is measured afresh)."""
        now = self._clock()
        if self._mark is not None:
            gap = now - self._mark
            self._interval = gap if self._interval is None else (1 - SMOOTHING) * self._interval + SMOOTHING * gap
        self._mark = now if still_full else None
        if drained:
            self._interval = None

    def expected_wait(self, waiting: int, full: bool) -> float:
        if not full or self._interval is None:
            return 0.0
        return (waiting + 1) * self._interval

    def judge(self, waiting: int, full: bool) -> Verdict:
        wait = self.expected_wait(waiting, full)
        if self.max_wait_s is None or wait <= self.max_wait_s:
            return Verdict(True, wait, 0)
        # At this pace, the queue is short enough to take a request again after this many seconds.
        retry = max(1, math.ceil(wait - self.max_wait_s))
        return Verdict(False, wait, retry)


