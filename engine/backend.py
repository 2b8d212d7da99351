"""The contract every chat backend meets: the continuous batch, the fair queue, a remote server.

ChatEngine holds one of them (or none on ZeroGPU, where each request is one spaces.GPU call through the plain
Generator); the app reaches any of them only through ChatEngine.stream, so a new backend is one class that
meets this Protocol, tested by tests/test_one_door.py against each backend the engine builds.
"""
from __future__ import annotations

import threading
from typing import Protocol, Sequence, runtime_checkable

from engine.serving.batching import FifoSlots, LoadStats
from engine.serving.generation import ChatStream, GenerationParams


@runtime_checkable
class ChatBackend(Protocol):
    """Streams replies for many callers at once; refusals (busy, a prompt too long) raise before any text."""

    slots: FifoSlots        # admission: how many generate at once, how many may wait and for how long

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None) -> ChatStream: ...

    def stats(self) -> LoadStats: ...

    def close(self) -> None: ...
