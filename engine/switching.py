"""The chat model now serving, and the one way to replace it while the app runs.

app.py builds one ModelSwitch around the engine it loaded and hands it down (ChatService, Services, the API):
nothing else keeps a ChatEngine, so when a switch drops the old one its memory really goes. A reply holds the
engine it started on (`hold` / `release`, done by ChatService.open_chat) from its first token to its last, so
no reply mixes two models and its provenance names the model that wrote it.

A switch: check the target can be had (folder, .gguf, hub id, demo; tokenizer and prompt path) while the old
model keeps serving; then refuse new replies (ModelSwitching: /v1 answers 503 with Retry-After, the page says
"switching model…"), wait for the replies in flight to finish, unload the old model (weak references dead, RAM
and GPU memory handed back), load the new one through the same loader, preflight and ladder as at start. A
load that fails loads the previous model again: the app never ends up without one. What the start sized from
the first model follows each model installed (`follow`): app.py's Gradio queue concurrency (ui/queue_limits.py);
the engine's own slots and admission (server.queue_size, server.max_wait_s) come with each engine it loads.
"""
from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import psutil
import torch

from engine.errors import EngineError, RequestError, SourceError
from engine.loading.memory import forget, release
from engine.loading.sources import ModelSource, resolve_source
from engine.serving.admission import Admission

if TYPE_CHECKING:
    from config import EngineConfig
    from engine.chat import ChatEngine
    from engine.loading.loader import LoadReport
    from engine.manager import ModelManager

MiB = 2 ** 20
Say = Callable[[str], None]
Follower = Callable[["ChatEngine"], None]


class ModelSwitching(EngineError, RuntimeError):
    """A request that came while the chat model is being replaced: come back in `retry_after` seconds."""
    code, status, retry_after = "model_switching", 503, 10


class SwitchFailed(EngineError, RuntimeError):
    """The model asked for could not be loaded; `values` say which, why, and which model serves instead."""
    code, status = "model_switch_failed", 400


@dataclass(frozen=True)
class Freed:
    """What unloading a model gave back, as measured: the process's RSS and the card's allocated bytes."""
    model_id: str
    rss_before: int
    rss_after: int
    gpu_before: int
    gpu_after: int

    def line(self) -> str:
        gpu = (f", GPU allocated {self.gpu_before / MiB:.0f} → {self.gpu_after / MiB:.0f} MiB"
               if torch.cuda.is_available() else "")
        return f"unloaded {self.model_id}: RAM {self.rss_before / MiB:.0f} → {self.rss_after / MiB:.0f} MiB{gpu}"


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


def _gpu_allocated() -> int:
    return int(torch.cuda.memory_allocated()) if torch.cuda.is_available() else 0


def _trim_heap() -> None:
    """Hand freed heap pages back to the kernel (glibc keeps them otherwise, and RSS would not show the drop)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):   # not glibc: nothing to trim
        pass


def model_name(model: str, demo_size: str) -> str:
    """What the user typed, as resolve_source takes it: "demo" alone is the demo --demo loads."""
    name = (model or "").strip()
    return f"demo:{demo_size}" if name in ("demo", "demo:") else name


def short_name(model: str) -> str:
    """A model as a person's sentence names it: a local folder or file by its own name (never a server path)."""
    return Path(model).name if model.startswith(("/", "~", ".")) else model


def precision_text(precision: str | Sequence[str]) -> str:
    return precision if isinstance(precision, str) else " → ".join(precision)


class ModelSwitch:
    """The chat engine serving now, the replies running on it, and switching it for another model. Thread-safe."""

    def __init__(self, engine: ChatEngine, cfg: EngineConfig | None = None, *, admission: Admission = Admission(),
                 manager: ModelManager | None = None, drain_s: float = 300.0):
        from config import EngineConfig

        self._engine: ChatEngine | None = engine
        self.cfg = cfg or EngineConfig()           # the configured engine section; a switch replaces model/precision
        self.admission, self.manager, self.drain_s = admission, manager, drain_s
        self._cond = threading.Condition()
        self._in_flight = 0
        self._target: str | None = None            # the model being switched to, while a switch runs
        self._since = 0.0
        self._one = threading.Lock()               # one switch at a time
        self._loaded_cfg = self.cfg                # how the engine now serving was loaded (to load it again)
        self._shown: _Placeholder | None = None    # what `current` shows between unload and load
        self._followers: list[Follower] = []       # what was sized from the model at start (follow)
        self.loaded_at = time.time()

    def follow(self, follower: Follower) -> None:
        """Call `follower(engine)` with every engine a switch installs (the new model, or the previous one
        loaded again), before new requests are let in: what the start sized from the first model (the Gradio
        queue's concurrency, ui/queue_limits.py) follows the model serving now."""
        self._followers.append(follower)

    # ------------------------------------------------------------------ serving
    @property
    def current(self) -> ChatEngine:
        """The engine serving now. While a switch runs, the one it is replacing (or, between unload and load,
        the last one loaded: never None to a reader)."""
        engine = self._engine
        return engine if engine is not None else self._shown

    @property
    def switching(self) -> str | None:
        """The model a running switch is loading, or None."""
        return self._target

    @property
    def in_flight(self) -> int:
        with self._cond:
            return self._in_flight

    def check_open(self) -> None:
        """ModelSwitching while a switch runs (a request is refused before it is checked against a model)."""
        with self._cond:
            if self._target is not None or self._engine is None:
                raise self._refusal()

    def hold(self) -> ChatEngine:
        """The engine one reply runs on, counted until `release`; ModelSwitching while a switch runs."""
        with self._cond:
            if self._target is not None or self._engine is None:
                raise self._refusal()
            self._in_flight += 1
            return self._engine

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def _refusal(self) -> ModelSwitching:
        target = self._target or "?"
        waited = time.monotonic() - self._since
        # The last load's time is the best guess of how long the next one takes (at least a few seconds).
        expect = max(5, int(self.current.report.seconds * 1.5 - waited) + 1)
        return ModelSwitching(f"switching the chat model to {target}: retry in about {expect} s",
                              retry_after=expect, values={"model": short_name(target), "seconds": expect})

    # ------------------------------------------------------------------ switching
    def switch(self, model: str, precision: str | Sequence[str] | None = None, *,
               say: Say = lambda line: None) -> LoadReport:
        """Replace the chat model by `model` (a folder, a .gguf file, a hub id, "demo" or demo:<size>) at
        `precision` ("auto", a rung, or the rungs to try in order; None: engine.precision). Each step is said
        through `say`, as the start prints it. Raises RequestError (bad precision, a remote backend),
        ModelSwitching (another switch runs) or SwitchFailed (the previous model serves again)."""
        if not self._one.acquire(blocking=False):
            raise self._refusal()
        try:
            return self._switch(model, precision, say)
        finally:
            self._one.release()

    def _switch(self, model: str, precision: str | Sequence[str] | None, say: Say) -> LoadReport:
        from engine.serving import zerogpu

        old = self.current
        if old.remote:
            raise RequestError("the chat model runs on a remote server (engine.backend is openai): switch it there",
                               param="model", code="unsupported_parameter")
        if zerogpu.enabled():
            raise RequestError("on ZeroGPU the chat model is packed at start: change engine.model and restart",
                               param="model", code="unsupported_parameter")
        name = model_name(model, self.cfg.demo_size)
        if not name:
            raise RequestError("name a model: a local folder, a .gguf file, a hub id or demo", param="model")
        cfg = self._config(name, self.cfg.precision if precision is None else precision)
        previous = old.report.model_id
        del old
        if name == previous and cfg.precision == self._loaded_cfg.precision:
            say(f"{name} is already serving at precision {precision_text(cfg.precision)}: nothing to load")
            return self.current.report
        say(f"switching the chat model from {previous} to {name} (precision {precision_text(cfg.precision)})…")
        say(f"checking {name}…")
        try:
            source = self._check(name)           # the old model keeps serving meanwhile
        except SourceError as exc:
            raise self._failed(name, exc, previous) from None
        with self._cond:
            self._target, self._since = name, time.monotonic()
        try:
            self._drain(say)
            say(self._unload().line())
            say(f"loading the chat model ({name})…")
            reason = None
            try:
                engine = self._load(source, cfg)
            except Exception as exc:  # noqa: BLE001 - whatever broke the load (a corrupt file too), the previous model comes back
                reason = _one_line(exc)
                forget(exc)       # its frames may hold a half-loaded model
            if reason is not None:
                release()         # outside the except block: nothing holds the failed attempt now
                say(f"could not load {name}: {reason}")
                say(f"loading the chat model ({previous}) again…")
                self._restore(previous)
                self._tell(self.current)
                raise self._failed(name, reason, self.current.report.model_id)
            self._loaded_cfg = cfg
            self._tell(engine)
            self._report(engine, say)
            return engine.report
        finally:
            with self._cond:
                self._target = None
                self._cond.notify_all()

    def _config(self, name: str, precision: str | Sequence[str]) -> EngineConfig:
        from config import ConfigError

        try:
            return replace(self.cfg, model=name, precision=list(precision) if not isinstance(precision, str)
                           else precision)
        except ConfigError as exc:
            raise RequestError(str(exc), param="precision", code="invalid_precision") from None

    @staticmethod
    def _check(name: str) -> ModelSource:
        """The files are there and can be prompted: resolve_source (folder, .gguf, hub, demo) and the
        tokenizer with its prompt path, before anything is unloaded."""
        from engine.chat import ChatEngine

        source = resolve_source(name)
        ChatEngine.prompt_codec(source)
        return source

    def _drain(self, say: Say) -> None:
        """Wait for the replies in flight (new ones are refused now); give up after drain_s seconds."""
        deadline = time.monotonic() + self.drain_s
        with self._cond:
            if self._in_flight:
                say(f"waiting for {self._in_flight} reply(s) in progress to finish…")
            while self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SwitchFailed(f"{self._in_flight} reply(s) were still being written after "
                                       f"{self.drain_s:.0f} s: the model was not switched",
                                       values={"sentence": "switch_still_writing", "count": self._in_flight,
                                               "seconds": round(self.drain_s), "model": short_name(self._target or ""),
                                               "serving": short_name(self.current.report.model_id)})
                self._cond.wait(min(left, 1.0))

    def _unload(self) -> Freed:
        """Close the engine now serving and let go of every reference to it; measure what came back."""
        rss, gpu = _rss(), _gpu_allocated()
        engine, self._engine = self._engine, None
        self._shown = _Placeholder(engine.report, engine.concurrency, engine.max_context)
        model_id = engine.report.model_id
        self._manage(None)
        engine.close()
        del engine
        release()
        release()          # the batcher's finalizer runs in the first collection; what it let go, in the second
        _trim_heap()
        return Freed(model_id, rss, _rss(), gpu, _gpu_allocated())

    def _load(self, source: ModelSource, cfg: EngineConfig) -> ChatEngine:
        from engine.chat import ChatEngine

        engine = ChatEngine.from_source(source, cfg)
        engine.admit(self.admission)
        self._install(engine)
        return engine

    def _install(self, engine: ChatEngine) -> None:
        self._engine, self._shown, self.loaded_at = engine, None, time.time()
        self._manage(engine)

    def _tell(self, engine: ChatEngine) -> None:
        """The followers learn the engine now serving (outside the load's try: a follower's error is not a
        failed load, and is raised to the caller)."""
        for follower in self._followers:
            follower(engine)

    def _manage(self, engine: ChatEngine | None) -> None:
        """The ModelManager's "chat" row (one budget for all models) holds the engine serving now, or nothing."""
        if self.manager is not None and "chat" in self.manager.names():
            self.manager.replace_loaded("chat", engine)

    def _restore(self, previous: str) -> None:
        """Load the model that served before, as it was loaded; failing that, the demo model (as at start)."""
        try:
            self._load(resolve_source(previous), self._loaded_cfg)
            return
        except Exception as exc:  # noqa: BLE001 - as at start: the demo model rather than no model at all
            forget(exc)
        release()
        self._load(resolve_source(f"demo:{self.cfg.demo_size}"), self.cfg)

    @staticmethod
    def _report(engine: ChatEngine, say: Say) -> None:
        say(f"[model] {engine.report.summary()}")
        if engine.report.notice:
            say(f"[model] {engine.report.notice}")

    @staticmethod
    def _failed(name: str, reason: BaseException | str, serving: str) -> SwitchFailed:
        text = reason if isinstance(reason, str) else _one_line(reason)
        text = text.removeprefix(f"{name}: ").removeprefix("engine.model: ")   # the model is named once
        return SwitchFailed(f"could not load {name}: {text}; {serving} is still serving",
                            values={"model": short_name(name), "reason": text, "serving": short_name(serving)})


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    return text if isinstance(exc, EngineError) else f"{type(exc).__name__}: {text}"


@dataclass(frozen=True)
class _Placeholder:
    """The unloaded engine's report between unload and load: readers (the banner, /health) see what was
    serving; nothing can generate with it (hold refuses while a switch runs)."""
    report: LoadReport
    concurrency: object
    max_context: int
    model: None = None
    codec: None = None
    generator: None = None
    scheduler: None = None
    adapters: None = None
    remote: bool = False

    @property
    def model_id(self) -> str:
        return self.report.model_id

    def load_stats(self):
        from engine.serving.batching import LoadStats

        return LoadStats("switching", 0, 0, 0, 0, 0)

    def check_request(self, params: object) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["Freed", "ModelSwitch", "ModelSwitching", "SwitchFailed", "model_name", "precision_text"]
