"""Run an engine stream in its own thread and hand its pieces to the event loop.

The engine's iterator blocks (waiting for a slot, for the next token), so each request gets a thread of
its own rather than one from the shared pool (which Gradio and FastAPI also use and which 50 waiting
clients would exhaust). When the client goes away, `cancel` is set: generation ends within a token (or
a queued request leaves the queue), and the stream is closed in the thread that iterated it, so its
slot is free at once.

Lean path: the stream is relayed (ChatStream.relay), so a batched reply's pieces come straight from the
batching thread, without waking this thread per token. Pieces collect in a list and the event loop is
woken once per batch, not once per token; a reader that lags (a slow client, a busy loop) gets everything
that arrived meanwhile as one piece, so one SSE event and one JSON encoding carry several tokens (what
vLLM's stream interval does, adaptively).
"""
from __future__ import annotations

import asyncio
import threading
from typing import Any, AsyncIterator, Callable

from engine.serving.generation import ChatStream


class StreamPump:
    def __init__(self, stream: ChatStream, cancel: threading.Event):
        self.stream, self.cancel = stream, cancel
        self.error: BaseException | None = None
        self._lock = threading.Lock()
        self._pending: list[str] = []
        self._ended = False
        self._wake_sent = False          # a wake-up is on its way to the loop: no need for another
        self._ready = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, daemon=True, name="api-stream")
        self._thread.start()

    @property
    def stats(self) -> Any:
        return self.stream.stats

    def _push(self, piece: str = "", end: bool = False) -> None:
        with self._lock:
            if piece:
                self._pending.append(piece)
            self._ended = self._ended or end
            if self._wake_sent:
                return
            self._wake_sent = True
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the event loop is gone (server shutting down): nobody is listening
            self.cancel.set()

    def _take(self) -> tuple[str, bool]:
        """Everything that arrived since the last take, as one piece; and whether the stream has ended."""
        with self._lock:
            text, ended = "".join(self._pending), self._ended
            self._pending.clear()
            self._wake_sent = False
            self._ready.clear()
        return text, ended

    def _run(self) -> None:
        try:
            self.stream.relay(self._push)    # from the batching thread where the stream can (no hop here)
        except BaseException as exc:  # noqa: BLE001 - handed to the request, which answers with it
            self.error = exc
        finally:
            try:
                self.stream.close()     # a stream that holds a model lets it go here (ChatStream.finally_)
            finally:
                self._push(end=True)

    async def pieces(self) -> AsyncIterator[str]:
        """The text, in pieces (several tokens each when the reader lags); raises the engine's error at the end.
        Leaving early cancels generation."""
        try:
            while True:
                await self._ready.wait()
                text, ended = self._take()
                if text:
                    yield text
                if ended:
                    if self.error is not None:
                        raise self.error
                    return
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
