"""Per-app state of the API, created by build_api (no module-level mutable state)."""
from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from api.auth import KeyPolicy
from api.models import ModelNames, names_for
from config import AppConfig
from engine.requests import ChatService

if TYPE_CHECKING:
    from engine.chat import ChatEngine
    from engine.manager import ModelManager
    from engine.switching import ModelSwitch

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


class ApiState:
    """The API's view of the app: config, exposure policy, the door into chat and, through it, the chat model
    serving now (`engine`, `names`: read per request, since a model switch replaces them)."""

    def __init__(self, cfg: AppConfig, engine: ChatEngine | ModelSwitch, policy: KeyPolicy,
                 manager: ModelManager | None = None, chat: ChatService | None = None):
        self.cfg, self.policy = cfg, policy
        self.manager = manager        # vision, stt, tts-ko, tts-en; None: those routes answer 503
        self.counters = Counters()
        # the one door into chat (engine/requests.py), shared with the page; built from cfg when None
        self.chat = chat if chat is not None else ChatService.from_config(cfg, engine, manager)

    @property
    def engine(self) -> ChatEngine:
        return self.chat.engine

    @property
    def names(self) -> ModelNames:
        """The names a request may give as `model` for the chat model serving now, and its adapters."""
        engine = self.engine
        return names_for(engine.model_id, engine.adapters, getattr(engine.report, "prompt_path", ""),
                         created=int(self.chat.models.loaded_at))

    @property
    def max_upload_bytes(self) -> int:
        return self.chat.limits.max_upload_bytes

    @property
    def max_body_bytes(self) -> int:
        """An upload of max_upload_mb, base64-encoded inside JSON, plus room for the conversation."""
        return self.max_upload_bytes * 4 // 3 + MiB
