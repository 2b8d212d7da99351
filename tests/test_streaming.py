"""api/streaming.py: a reader that lags gets what arrived meanwhile as one piece (one SSE event), in order."""
from __future__ import annotations

import asyncio
import threading

from concurrent.futures import ThreadPoolExecutor

from api.streaming import StreamPump


def run_loop(coro):
    """asyncio.run in its own thread: Playwright's sync API (browser tests, same session) keeps a loop
    running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Produced:
    """A stream like the engine's: an iterator of pieces with .stats and .close(); `done` once all are out."""

    def __init__(self, pieces: list[str], fail: BaseException | None = None):
        self.pieces, self.fail, self.stats, self.done = pieces, fail, None, threading.Event()

    def __iter__(self):
        yield from self.pieces
        self.done.set()
        if self.fail is not None:
            raise self.fail

    def close(self) -> None:
        pass


def test_a_lagging_reader_gets_the_backlog_as_one_piece():
    async def main() -> list[str]:
        stream = Produced([f"t{i} " for i in range(200)])
        pump = StreamPump(stream, threading.Event())
        out, it = [], pump.pieces()
        out.append(await it.__anext__())
        await asyncio.to_thread(stream.done.wait, 60)   # the reader lags until everything has been produced
        out += [p async for p in it]
        return out

    out = run_loop(main())
    assert "".join(out) == "".join(f"t{i} " for i in range(200))
    assert len(out) <= 3, f"{len(out)} events for 200 pieces"


def test_an_error_after_text_still_reaches_the_reader():
    async def main() -> tuple[str, BaseException | None]:
        pump = StreamPump(Produced(["a", "b"], RuntimeError("boom")), threading.Event())
        got = ""
        try:
            async for piece in pump.pieces():
                got += piece
        except RuntimeError as exc:
            return got, exc
        return got, None

    got, exc = run_loop(main())
    assert got == "ab" and str(exc) == "boom"
