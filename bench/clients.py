"""Concurrent clients for the in-process benchmarks: one way to stream a request and to time a crowd of them."""
from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")
R = TypeVar("R")


def drain(scheduler: Any, messages: list[dict], params: Any, relayed: bool = False) -> int:
    """Stream one request to its end, read as the UI does (iterating) or as the API does (`relay`);
    returns the tokens it generated."""
    stream = scheduler.stream(messages, params, threading.Event())
    if relayed:
        stream.relay(lambda piece: None)
    else:
        for _ in stream:
            pass
    return stream.stats.completion_tokens


def timed_clients(job: Callable[[T], R], items: Iterable[T], concurrency: int) -> tuple[float, list[R]]:
    """(seconds, results) of `job` over `items` from `concurrency` threads at once; a client's error is raised."""
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(job, items))
    return time.perf_counter() - started, results
