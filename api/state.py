"""Per-app state of the API, created by build_api (no module-level mutable state)."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.auth import KeyPolicy
from api.models import ModelNames
from config import AppConfig
from engine.requests import ChatService

if TYPE_CHECKING:
    from engine.chat import ChatEngine
    from engine.manager import ModelManager

MiB = 2 ** 20


@dataclass
class Counters:
    """Requests answered, by kind, for /health; thread-safe."""
    _counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._counts[key] += n

    def snapshot(self) -> dict:
        with self._lock:
            return dict(self._counts)


@dataclass
class ApiState:
    cfg: AppConfig
    engine: ChatEngine
    names: ModelNames
    policy: KeyPolicy
    manager: ModelManager | None = None   # vision, stt, tts-ko, tts-en; None: those routes answer 503
    counters: Counters = field(default_factory=Counters)
    chat: ChatService | None = None   # the one door into chat (engine/requests.py); built from cfg when None

    def __post_init__(self) -> None:
        if self.chat is None:
            self.chat = ChatService.from_config(self.cfg, self.engine, self.manager)

    @property
    def max_upload_bytes(self) -> int:
        return self.chat.limits.max_upload_bytes

    @property
    def max_body_bytes(self) -> int:
        """An upload of max_upload_mb, base64-encoded inside JSON, plus room for the conversation."""
        return self.max_upload_bytes * 4 // 3 + MiB
