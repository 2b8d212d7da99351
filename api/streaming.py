"""Run an engine stream in its own thread and hand its pieces to the event loop.

The engine's iterator blocks (waiting for a slot, for the next token), so each request gets a thread of
its own rather than one from the shared pool (which Gradio and FastAPI also use and which 50 waiting
clients would exhaust). When the client goes away, `cancel` is set: generation ends within a token (or
a queued request leaves the queue), and the stream is closed in the thread that iterated it, so its
slot is free at once.
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable

_END = object()


class StreamPump:
    def __init__(self, stream: Any, cancel: threading.Event, cleanup: Callable[[], None] | None = None):
        self.stream, self.cancel, self._cleanup = stream, cancel, cleanup
        self.error: BaseException | None = None
        self._queue: asyncio.Queue = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="api-stream")
        self._thread.start()

    @property
    def stats(self) -> Any:
        return self.stream.stats

    def _put(self, item: Any) -> None:
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancel.set()

    def _run(self) -> None:
        try:
            for piece in self.stream:
                if self.cancel.is_set():
                    break
                self._put(piece)
        except BaseException as exc:  # noqa: BLE001 - handed to the request, which answers with it
            self.error = exc
        finally:
            try:
                self.stream.close()
            finally:
                if self._cleanup is not None:
                    self._cleanup()
                self._put(_END)

    async def pieces(self) -> AsyncIterator[str]:
        """The text pieces; raises the engine's error at the end. Leaving early cancels generation."""
        try:
            while True:
                item = await self._queue.get()
                if item is _END:
                    if self.error is not None:
                        raise self.error
                    return
                yield item
        finally:
            self.cancel.set()  # harmless once finished; stops generation when the client left

    async def text(self, disconnected: Callable[[], Any] | None = None, poll: float = 0.5) -> str:
        """All the text; if `disconnected()` (awaitable) turns true meanwhile, cancel and stop waiting."""
        watcher = asyncio.create_task(self._watch(disconnected, poll)) if disconnected else None
        try:
            return "".join([piece async for piece in self.pieces()])
        finally:
            if watcher is not None:
                watcher.cancel()

    async def _watch(self, disconnected: Callable[[], Any], poll: float) -> None:
        while not self.cancel.is_set():
            if await disconnected():
                self.cancel.set()
                return
            await asyncio.sleep(poll)
