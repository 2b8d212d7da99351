"""A line every few seconds while a long one-time step runs, so a first start never looks hung (issue 24:
the one-time GGUF conversion was silent for 28 s)."""
from __future__ import annotations

import sys
import threading
import time
from contextlib import contextmanager
from typing import Iterator, TextIO


@contextmanager
def heartbeat(what: str, every: float = 5.0, stream: TextIO | None = None) -> Iterator[None]:
    """Print "what…" now and "what… N s" every `every` seconds until the block ends, then how long it took."""
    out = stream or sys.stdout
    started, done = time.monotonic(), threading.Event()

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    def beat() -> None:
        while not done.wait(every):
            say(f"[build] {what}… {time.monotonic() - started:.0f} s")

    say(f"[build] {what} (once; later starts reuse it)…")
    thread = threading.Thread(target=beat, name="heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
    say(f"[build] {what}: done in {time.monotonic() - started:.0f} s")
