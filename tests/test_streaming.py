"""api/streaming.py: a reader that lags gets what arrived meanwhile as one piece (one SSE event), in order."""
from __future__ import annotations

import asyncio
import threading

from concurrent.futures import ThreadPoolExecutor

from api.streaming import StreamPump
from engine.serving.generation import ChatStream, StreamStats


def run_loop(coro):
    """asyncio.run in its own thread: Playwright's sync API (browser tests, same session) keeps a loop
    running in the main thread, where asyncio.run refuses to start."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def produced(pieces: list[str], fail: BaseException | None = None) -> tuple[ChatStream, threading.Event]:
    """A plain (not batched) engine stream of `pieces`, then `fail` if given; the event is set once all
    pieces are out."""
    done = threading.Event()

    def run():
        yield from pieces
        done.set()
        if fail is not None:
            raise fail

    return ChatStream(run(), StreamStats()), done


def test_a_lagging_reader_gets_the_backlog_as_one_piece():
    async def main() -> list[str]:
        stream, done = produced([f"t{i} " for i in range(200)])
        pump = StreamPump(stream, threading.Event())
        out, it = [], pump.pieces()
        out.append(await it.__anext__())
        await asyncio.to_thread(done.wait, 60)   # the reader lags until everything has been produced
        out += [p async for p in it]
        return out

    out = run_loop(main())
    assert "".join(out) == "".join(f"t{i} " for i in range(200))
    assert len(out) <= 3, f"{len(out)} events for 200 pieces"


def test_an_error_after_text_still_reaches_the_reader():
    async def main() -> tuple[str, BaseException | None]:
        pump = StreamPump(produced(["a", "b"], RuntimeError("boom"))[0], threading.Event())
        got = ""
        try:
            async for piece in pump.pieces():
                got += piece
        except RuntimeError as exc:
            return got, exc
        return got, None

    got, exc = run_loop(main())
    assert got == "ab" and str(exc) == "boom"


def test_the_pump_relays_the_stream_rather_than_iterating_it():
    """A stream that can hand its pieces over from the thread that makes them (the continuous batch) is
    read that way: its relayed form, not its pulled one, reaches the reader."""
    def source(sink):
        if sink is None:
            yield "pulled"
            return
        for piece in ("handed ", "over"):
            sink(piece)

    stream = ChatStream(source, StreamStats())

    async def main() -> str:
        return await StreamPump(stream, threading.Event()).text()

    assert run_loop(main()) == "handed over"
