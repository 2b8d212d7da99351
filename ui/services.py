"""What the tabs call: the chat engine, the session store, the optional image/speech models.

One Services object per app, built in app.py and handed to every tab, so handlers stay small and
no module holds mutable state. Optional models are reached through the ModelManager (lazy
loading); when it or a model is missing, ModelUnavailable says so and the tab shows it.
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from engine.adapters import AdapterInfo
from engine.errors import ModelUnavailable
from engine.requests import ChatService, Reply, Sampling
from sessions import PresetStore

if TYPE_CHECKING:
    from config import AppConfig
    from engine.adapters import AdapterRegistry
    from engine.chat import ChatEngine
    from engine.manager import ModelManager
    from engine.switching import ModelSwitch
    from engine.media.inputs import ImageData
    from engine.media.speech import Speech, Transcript
    from engine.serving.generation import StreamStats
    from sessions import SessionStore


@dataclass
class LastReply:
    model: str
    tokens: int
    seconds: float
    tokens_per_second: float
    at: float


@dataclass
class Metrics:
    """The last reply's speed, for the System panel (shared by all users: it describes the machine)."""

    _last: LastReply | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, model: str, stats: StreamStats) -> None:
        with self._lock:
            self._last = LastReply(model, int(stats.completion_tokens), float(stats.seconds),
                                   float(stats.tokens_per_second), time.time())

    def last(self) -> LastReply | None:
        with self._lock:
            return self._last


class Services:
    def __init__(self, cfg: AppConfig, engine: ChatEngine | ModelSwitch, store: SessionStore,
                 manager: ModelManager | None = None, *, config_path: str | None = None, public: bool = False,
                 presets: PresetStore | None = None, api_key: str | None = None):
        self.cfg, self.store, self.manager = cfg, store, manager
        self.api_key = api_key          # public without login: a script sending this key may change the chat model
        # named system prompts + settings per owner, beside the chats (sessions/presets.py)
        self.presets = presets if presets is not None else PresetStore(store.root, limits=store.limits)
        self.config_path = config_path
        self.public = public            # shared publicly without login: settings stay read-only
        self.metrics = Metrics()
        self.chat = ChatService.from_config(cfg, engine, manager)    # the one door into chat
        self.models = self.chat.models  # the chat model serving now, and switching it (engine/switching.py)
        self._view_dir = Path(tempfile.gettempdir()) / "localchat-attachments"

    @property
    def engine(self) -> ChatEngine:
        """The chat engine serving now (read it each time: a model switch replaces it)."""
        return self.models.current

    # ----------------------------------------------------------- settings
    def default_settings(self) -> dict:
        g = self.cfg.generation
        return {"system_prompt": g.system_prompt, "temperature": g.temperature,
                "max_new_tokens": g.max_new_tokens, "top_p": g.top_p, "history_turns": g.max_history_turns,
                "seed": None, "presence_penalty": 0.0, "frequency_penalty": 0.0, "top_k": g.top_k,
                "repetition_penalty": g.repetition_penalty}

    @staticmethod
    def sampling(settings: dict) -> Sampling:
        """A chat's stored settings as sampling options (its history_turns is the engine's max_history_turns)."""
        return Sampling.of({**settings, "max_history_turns": settings.get("history_turns")})

    def reply(self, messages: list[dict], settings: dict, cancel: threading.Event | None, *,
              asked: Sampling = Sampling(), image: ImageData | None = None, reply_prefix: str = "") -> Reply:
        """A reply to `messages` under a chat's `settings` (its adapter: settings["adapter"]), with what this
        call asks on top (`asked`), through the one door: every check there, before any text. `reply_prefix`:
        the reply so far, to continue (the stream gives only the new text)."""
        adapter = settings.get("adapter")
        request = self.chat.request(messages, asked.over(self.sampling(settings)), image=image,
                                    adapter=adapter if isinstance(adapter, str) and adapter else None,
                                    reply_prefix=reply_prefix)
        return self.chat.open_chat(request, cancel)

    # ----------------------------------------------------------- adapters
    @property
    def adapters(self) -> AdapterRegistry | None:
        """The engine's AdapterRegistry, or None (remote backend, or an engine without adapters)."""
        return getattr(self.engine, "adapters", None)

    def adapter_choices(self) -> list[AdapterInfo]:
        """AdapterInfo of every adapter the loaded base can use (trained on it), sorted by name."""
        registry = self.adapters
        return [a for a in registry.available() if a.compatible] if registry is not None else []

    def check_adapter(self, name: str) -> AdapterInfo:
        """AdapterInfo of `name` if this engine can use it; AdapterError (a clear sentence) otherwise."""
        return self.chat.check_adapter(name)

    # ----------------------------------------------------- optional models
    @contextmanager
    def _use(self, name: str, what: str) -> Iterator[object]:
        """The model, loaded on first use and kept busy (never evicted) until the block ends."""
        if self.manager is None:
            raise ModelUnavailable("this install has no model manager for image and speech models", what=what)
        stack = ExitStack()
        try:
            model = stack.enter_context(self.manager.use(name))
        except Exception as exc:  # noqa: BLE001 - any load failure: the tab says the model is not available
            raise ModelUnavailable(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, what=what) from exc
        with stack:
            yield model

    def transcribe(self, audio: bytes | str | Path, language: str | None = None) -> Transcript:
        """Audio (path or bytes) -> Transcript(text, language, no_speech, ...)."""
        with self._use("stt", "speech-to-text") as stt:
            return stt.transcribe(audio, language)

    def speak(self, text: str, language: str) -> Speech:
        """Text -> Speech (WAV bytes and facts) in `language` ("ko" or "en")."""
        with self._use(f"tts-{language}", "text-to-speech") as voice:
            return voice.speak(text)

    MEDIA_MODELS = {"image": ("vision",), "voice": ("stt", "tts-ko", "tts-en")}

    def random_media(self, tab: str) -> bool:
        """Whether a model behind the Image ("image") or Voice ("voice") tab is a demo of random weights: known
        before it loads when the app was started with --demo, and once it loaded as a fallback otherwise."""
        names = self.MEDIA_MODELS[tab]
        return any(row["demo"] for row in self.model_states() if row["name"] in names)

    def model_states(self) -> list[dict]:
        return list(self.manager.state()) if self.manager is not None else []

    def load_model(self, name: str) -> None:
        with self._use(name, name):
            pass

    def unload_model(self, name: str) -> bool:
        if self.manager is None:
            raise ModelUnavailable("this install has no model manager", what=name)
        return bool(self.manager.unload(name))

    # -------------------------------------------------------- attachments
    def view_path(self, owner: str, ref: str) -> str | None:
        """A copy of an owner's attachment in the temp folder, where Gradio may serve it from."""
        try:
            src = self.store.attachment_path(owner, ref)
        except Exception:  # noqa: BLE001 - a missing attachment shows as no image, never breaks the chat
            return None
        dest = self._view_dir / ref
        if not dest.exists():
            self._view_dir.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{ref}.{os.getpid()}.{threading.get_ident()}")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dest)
        return str(dest)


def continued_provenance(before: dict | None, after: dict) -> dict:
    """The provenance of a reply continued: the continuation's own (its finish_reason, tokens/s, sampling), with
    the tokens and seconds of the whole reply and how many times it was continued."""
    before = before or {}

    def number(key: str) -> float:
        value = before.get(key)
        return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    return {**after, "completion_tokens": int(number("completion_tokens")) + after["completion_tokens"],
            "seconds": round(number("seconds") + after["seconds"], 3),
            "continued": int(number("continued")) + 1}


def provenance(gen: Reply, stats: StreamStats, **extra: object) -> dict:
    """Everything needed to know later how a reply was made (stored with the message)."""
    params = gen.params
    return {
        "model": gen.model, "rung": gen.rung, "adapter": gen.adapter,
        "adapter_fingerprint": gen.adapter_fingerprint, "adapter_base_fingerprint": gen.adapter_base,
        "sampling": {"temperature": params.temperature, "top_p": params.top_p, "top_k": params.top_k,
                     "max_new_tokens": params.max_new_tokens, "repetition_penalty": params.repetition_penalty,
                     "presence_penalty": params.presence_penalty, "frequency_penalty": params.frequency_penalty,
                     "seed": params.seed},
        "prompt_tokens": int(stats.prompt_tokens), "completion_tokens": int(stats.completion_tokens),
        "tokens_per_second": round(float(stats.tokens_per_second), 2), "seconds": round(float(stats.seconds), 3),
        "finish_reason": stats.finish_reason or "stop", "dropped_turns": int(stats.dropped_turns),
        **extra,
    }
