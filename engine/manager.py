"""Which models are resident: lazy loads, one memory budget, least-recently-used eviction on out-of-memory.

Every model the app may use (chat, vision, stt, tts-ko, tts-en) is registered with a name, a size
estimate and a loader. `with manager.use(name) as model:` loads it on first use and marks it busy;
a busy model is never unloaded. When a model does not fit the budget, or its load runs out of
memory, the least recently used idle model is unloaded and the load tried again.

Budget: engine.max_gpu_memory when set (a fixed total for all models), else what is free right now:
GPU memory from NVML, or available RAM on a machine without a GPU.
"""
from __future__ import annotations

import inspect
import threading
import time
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Callable, Iterator

import psutil
import torch

from engine.loading.loader import model_bytes
from engine.errors import ModelLoadError
from engine.loading.memory import forget, is_out_of_memory, release
from engine.loading.preflight import GiB
from engine.errors import ModelUnavailable

if TYPE_CHECKING:
    from config import EngineConfig

MiB = 1024 ** 2
# Weights of the default models as published (fp16/fp32 safetensors), for deciding before the first load.
KNOWN_SIZES = MappingProxyType({
    "llava-hf/llava-v1.6-mistral-7b-hf": int(15.1e9),
    "mistralai/Mistral-7B-Instruct-v0.3": int(14.5e9),
    "openai/whisper-small": int(0.97e9),
    "openai/whisper-base": int(0.29e9),
    "facebook/mms-tts-kor": int(0.15e9),
    "facebook/mms-tts-eng": int(0.15e9),
})


@dataclass
class _Entry:
    name: str
    loader: Callable[..., object] | None  # None: registered already loaded and cannot be reloaded (never evicted)
    estimate: int
    obj: object = None                    # the loaded model, whatever its loader returned
    bytes: int = 0
    users: int = 0
    tick: int = 0                         # LRU order: larger is more recent
    last_used: float | None = None        # wall clock, for people
    loads: int = 0
    evictions: int = 0
    error: str = ""
    loading: bool = False
    demo: bool = False                    # registered as a demo model (random weights): known before it loads


def object_bytes(obj: object) -> int:
    """Bytes a loaded object holds: its memory_bytes(), else its (or its .model's) parameters and buffers."""
    if hasattr(obj, "memory_bytes"):
        return int(obj.memory_bytes())
    module = obj if isinstance(obj, torch.nn.Module) else getattr(obj, "model", None)
    if isinstance(module, torch.nn.Module):
        gpu, cpu = model_bytes(module)
        return gpu or cpu
    return 0


def estimate_bytes(model_id: str, default: int = 2 * GiB) -> int:
    """A size before loading: known defaults, else the safetensors in a local folder, else `default`."""
    if model_id in KNOWN_SIZES:
        return KNOWN_SIZES[model_id]
    folder = Path(model_id).expanduser()
    if folder.is_dir():
        total = sum(f.stat().st_size for f in folder.glob("*.safetensors"))
        return total or default
    return default


def _is_memory_error(exc: BaseException) -> bool:
    # ModelLoadError comes from the precision ladder running out of rungs or room: freeing memory may help.
    return is_out_of_memory(exc) or isinstance(exc, ModelLoadError)


class ModelManager:
    """Registry + residency of models under one memory budget. Thread-safe."""

    def __init__(self, *, budget_bytes: int | None = None, headroom: float = 0.1,
                 free_bytes: Callable[[], int | None] | None = None, max_events: int = 50):
        self.budget_bytes, self.headroom = budget_bytes, headroom
        self._free_bytes = free_bytes or _free_device_bytes
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.RLock()        # guards entries; never held while a loader runs
        self._load_lock = threading.Lock()    # one load at a time: two loads would race for the same memory
        self._clock = 0
        self._events: deque[str] = deque(maxlen=max_events)

    @classmethod
    def from_config(cls, cfg: EngineConfig) -> "ModelManager":
        budget = int(cfg.max_gpu_memory * GiB) if cfg.max_gpu_memory is not None else None
        return cls(budget_bytes=budget, headroom=cfg.kv_headroom)

    # -- registry -------------------------------------------------------------------------------------

    def register(self, name: str, loader: Callable[..., object], estimate_bytes: int, *, demo: bool = False) -> None:
        """Add a lazily loaded model. `loader()` or `loader(room_bytes)` returns the loaded object;
        room_bytes is what the fixed budget leaves (None when the budget is free memory, read live).
        `demo`: it will be a demo model, so the page can say so before anyone uses it."""
        with self._lock:
            if name in self._entries:
                raise ValueError(f"model {name!r} is already registered")
            self._entries[name] = _Entry(name, loader, int(estimate_bytes), demo=demo)

    def register_loaded(self, name: str, obj: object, bytes: int | None = None, *,
                        loader: Callable[..., object] | None = None) -> None:
        """Add a model that is already loaded (the chat engine). Without a loader it is never unloaded."""
        size = object_bytes(obj) if bytes is None else int(bytes)
        with self._lock:
            if name in self._entries:
                raise ValueError(f"model {name!r} is already registered")
            self._clock += 1
            self._entries[name] = _Entry(name, loader, size, obj=obj, bytes=size, tick=self._clock,
                                         last_used=time.time(), loads=1)

    def replace_loaded(self, name: str, obj: object | None) -> None:
        """Put `obj` where the model `name` registered with register_loaded was (a chat model switch), or
        None while the next one loads: the manager keeps no reference to a model that was switched away."""
        size = object_bytes(obj) if obj is not None else 0
        with self._lock:
            entry = self._entry(name)
            old, entry.obj, entry.bytes = entry.obj, obj, size
            self._clock += 1
            entry.tick, entry.last_used = self._clock, time.time()
            if obj is not None:
                entry.loads += 1
                entry.estimate = size or entry.estimate
                self._events.append(f"loaded {name} ({size / MiB:.0f} MiB)")
            elif old is not None:
                entry.evictions += 1
                self._events.append(f"unloaded {name}: switching models")
            del old

    def names(self) -> list[str]:
        with self._lock:
            return list(self._entries)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(f"no model named {name!r}; registered: {', '.join(self._entries) or 'none'}") from None

    # -- use ------------------------------------------------------------------------------------------

    @contextmanager
    def use(self, name: str) -> Iterator[object]:
        """The loaded model, marked busy until the block ends (so it is never unloaded mid-request): whatever
        the loader returned (the manager only sizes, reports and closes it); the caller knows what it registered."""
        obj = self._acquire(name)
        try:
            yield obj
        finally:
            with self._lock:
                entry = self._entries[name]
                entry.users -= 1
                entry.last_used = time.time()
                self._clock += 1
                entry.tick = self._clock

    def load(self, name: str) -> None:
        """Make a model resident now (e.g. at startup) without keeping it busy."""
        with self.use(name):
            pass

    def _acquire(self, name: str) -> object:
        with self._lock:
            entry = self._entry(name)
            if entry.obj is not None:
                return self._mark(entry)
        with self._load_lock:
            with self._lock:
                if entry.obj is not None:  # another thread loaded it while we waited
                    return self._mark(entry)
                if entry.loader is None:
                    raise ModelUnavailable(f"{name} was unloaded and has no loader to bring it back")
                entry.loading = True
            try:
                obj = self._load_with_eviction(entry)
            finally:
                entry.loading = False
            with self._lock:
                entry.obj, entry.bytes, entry.error = obj, object_bytes(obj) or entry.estimate, ""
                entry.loads += 1
                self._events.append(f"loaded {name} ({entry.bytes / MiB:.0f} MiB)")
                return self._mark(entry)

    def _mark(self, entry: _Entry) -> object:
        entry.users += 1
        self._clock += 1
        entry.tick, entry.last_used = self._clock, time.time()
        return entry.obj

    def _load_with_eviction(self, entry: _Entry) -> object:
        while self.room_bytes() < entry.estimate and self._evict_one(exclude=entry.name, why=f"room for {entry.name}"):
            pass
        while True:
            try:
                return self._call_loader(entry)
            except BaseException as exc:  # noqa: BLE001 - out-of-memory is retried below, the rest re-raised
                reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
                if not _is_memory_error(exc):
                    entry.error = f"{type(exc).__name__}: {reason}"
                    raise
                forget(exc)  # its frames may hold half-loaded weights
                cause = exc
            # Outside the except block, so those frames are gone before we collect.
            release()
            self._events.append(f"{entry.name}: out of memory while loading ({reason})")
            if self._evict_one(exclude=entry.name, why=f"{entry.name} ran out of memory while loading"):
                continue
            with self._lock:
                busy = [e.name for e in self._entries.values() if e.obj is not None and e.users]
            hint = f" ({', '.join(busy)} busy: try again when they finish)" if busy else ""
            entry.error = f"out of memory: {reason}"
            raise ModelUnavailable(f"{entry.name} does not fit in memory even with every idle model unloaded{hint}. "
                                   "Free GPU memory, raise engine.max_gpu_memory, or pick a smaller model.") from cause

    def _call_loader(self, entry: _Entry) -> object:
        loader = entry.loader
        params = [p for p in inspect.signature(loader).parameters.values()
                  if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if params:
            return loader(max(0, self.room_bytes()) if self.budget_bytes is not None else None)
        return loader()

    # -- memory ---------------------------------------------------------------------------------------

    def used_bytes(self) -> int:
        with self._lock:
            return sum(e.bytes for e in self._entries.values() if e.obj is not None)

    def room_bytes(self) -> int:
        """Bytes a new model may take now: the fixed budget minus what is resident, or free memory."""
        if self.budget_bytes is not None:
            return self.budget_bytes - self.used_bytes()
        free = self._free_bytes()
        return int((free or 0) * (1.0 - self.headroom))

    def unload(self, name: str) -> bool:
        """Unload an idle model now; False if it is busy, not loaded, or cannot be reloaded."""
        with self._lock:
            entry = self._entry(name)
            if entry.obj is None or entry.users or entry.loader is None:
                return False
            self._drop(entry, why="asked to")
        release()
        return True

    def _evict_one(self, *, exclude: str, why: str) -> str | None:
        """Unload the least recently used idle model; its name, or None when nothing can go."""
        with self._lock:
            idle = [e for e in self._entries.values()
                    if e.obj is not None and not e.users and e.loader is not None and e.name != exclude]
            if not idle:
                return None
            victim = min(idle, key=lambda e: e.tick)
            self._drop(victim, why=why)
        release()
        return victim.name

    def _drop(self, entry: _Entry, *, why: str) -> None:
        obj, entry.obj = entry.obj, None
        freed, entry.bytes = entry.bytes, 0
        entry.evictions += 1
        if hasattr(obj, "close"):
            obj.close()
        del obj
        self._events.append(f"unloaded {entry.name} ({freed / MiB:.0f} MiB): {why}")

    # -- reporting ------------------------------------------------------------------------------------

    def state(self) -> list[dict]:
        """One dict per model, for /health and the Models tab."""
        with self._lock:
            rows = []
            for e in self._entries.values():
                report = getattr(e.obj, "report", None) if e.obj is not None else None
                rows.append({
                    "name": e.name, "loaded": e.obj is not None, "loading": e.loading, "bytes": e.bytes,
                    "estimate_bytes": e.estimate, "last_used": e.last_used, "in_use": e.users > 0, "users": e.users,
                    "evictable": e.loader is not None, "loads": e.loads, "evictions": e.evictions, "error": e.error,
                    "report": report.summary() if hasattr(report, "summary") else "",
                    "notice": getattr(report, "notice", "") if report is not None else "",
                    "demo": bool(getattr(report, "demo", False)) if report is not None else e.demo,
                })
            return rows

    def budget(self) -> dict:
        """How the budget is decided and how much of it is used."""
        mode = "engine.max_gpu_memory" if self.budget_bytes is not None else (
            "free GPU memory" if torch.cuda.is_available() else "available RAM")
        return {"mode": mode, "budget_bytes": self.budget_bytes, "used_bytes": self.used_bytes(),
                "room_bytes": self.room_bytes()}

    def events(self) -> list[str]:
        """Recent loads and unloads, newest last (what the Models tab shows under the table)."""
        with self._lock:
            return list(self._events)


def _free_device_bytes() -> int:
    """Free GPU memory (NVML), or available RAM without a GPU."""
    if torch.cuda.is_available():
        from engine.monitor import free_gpu_bytes

        free = free_gpu_bytes()
        if free is not None:
            return free
    return int(psutil.virtual_memory().available)


def register_media_models(manager: ModelManager, cfg: EngineConfig, *, demo: bool = False) -> None:
    """Register vision, stt, tts-ko and tts-en with loaders built from EngineConfig (nothing loads yet)."""
    from engine.media.speech import SpeechToText, Voice, speech_model_ids, speech_plan
    from engine.media.vision import VisionEngine

    def small(model_id: str) -> int:
        return 64 * MiB if demo else estimate_bytes(model_id)

    ids = speech_model_ids(cfg)
    # The loader's own preflight reads free GPU memory (or engine.max_gpu_memory) after the manager
    # has made room: the real number, not the manager's estimate-based bookkeeping.
    manager.register("vision", lambda: VisionEngine.load(cfg, demo=demo), small(cfg.vision_model), demo=demo)
    # On --demo the speech models are real offline ones unless engine.demo_speech is "tiny" (speech_plan).
    random = {role: not real for role, (_, real) in speech_plan(cfg, demo=demo).items()}
    manager.register("stt", lambda: SpeechToText.load(cfg, demo=demo), small(ids["stt"]), demo=random["stt"])
    manager.register("tts-ko", lambda: Voice.load(cfg, "ko", demo=demo), small(ids["tts-ko"]), demo=random["tts-ko"])
    manager.register("tts-en", lambda: Voice.load(cfg, "en", demo=demo), small(ids["tts-en"]), demo=random["tts-en"])


__all__ = ["KNOWN_SIZES", "ModelManager", "ModelUnavailable", "estimate_bytes", "object_bytes",
           "register_media_models"]
