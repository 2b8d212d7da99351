"""engine.backend = "openai": no model loads here; chat streams from an OpenAI-compatible server.

Point engine.remote_base_url at vLLM, TGI, llama.cpp's server, another copy of this app, or any
server speaking /v1/chat/completions; engine.remote_model names the model there, and the key comes from
the environment variable named by engine.remote_api_key_env. RemoteChat has the same
`.stream(messages, params, cancel) -> ChatStream` as the local schedulers, so the UI and the API do
not know the difference. A fair FIFO queue of engine.max_concurrent slots (auto: remote_concurrency) bounds what we send at once.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterator, Sequence

from engine.serving.batching import FifoSlots, LoadStats
from engine.errors import EngineBusy
from config import ConfigError, EngineConfig
from engine.serving.generation import ChatStream, GenerationParams, StreamStats
from engine.errors import GenerationError
from engine.loading.loader import LoadReport
from engine.loading.preflight import AUTO_SLOTS_CAP, Concurrency, fixed_concurrency
from engine.prompting.mistral import normalize_messages
from engine.prompting.textstream import StopMatcher
from engine.errors import RemoteServerError

CONNECT_SECONDS = 10.0
READ_SECONDS = 300.0


def remote_concurrency(setting: int | str) -> Concurrency:
    """engine.max_concurrent "auto" with a remote server: we cannot see its memory, and it batches and queues
    on its own (vLLM --max-num-seqs, TGI --max-concurrent-requests), so our bound only caps the streams held
    open; the local cap keeps its batcher fed without a thread per waiting user. Set a number to match it."""
    if setting != "auto":
        return fixed_concurrency(setting)
    return Concurrency(AUTO_SLOTS_CAP, True, f"auto: {AUTO_SLOTS_CAP} streams at once to the remote server, which "
                                             "batches on its own (set engine.max_concurrent to its batch size)")


def _detail(exc: Any) -> str:
    """The server's own words: OpenAI's error.message, FastAPI's detail (transformers serve), else the client's."""
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error")
        text = error.get("message") if isinstance(error, dict) else error if isinstance(error, str) else None
        text = text or body.get("detail")
        if isinstance(text, str) and text.strip():
            return text.strip()[:500]
    return exc.message


def remote_report(base_url: str, model: str, notice: str = "") -> LoadReport:
    return LoadReport(model_id=model, folder=base_url, rung="remote", device=base_url,
                      reason=f"remote: {base_url} {model}", notice=notice)


def keep_turns(messages: Sequence[dict], max_turns: int) -> tuple[list[dict], int]:
    """Checked messages with at most `max_turns` user turns (oldest dropped first); the remote counts tokens."""
    msgs = normalize_messages(messages)
    system = [m for m in msgs if m["role"] == "system"]
    turns = [m for m in msgs if m["role"] != "system"]
    users = sum(1 for m in turns if m["role"] == "user")
    dropped = max(0, users - max_turns)
    return system + turns[2 * dropped:], dropped


class RemoteChat:
    path = "remote"

    def __init__(self, client: Any, base_url: str, model: str, *, concurrency: Concurrency, report: LoadReport):
        self.client, self.base_url, self.model, self.report = client, base_url, model, report
        self.concurrency = concurrency
        self.slots = FifoSlots(concurrency.slots)

    @classmethod
    def from_config(cls, cfg: EngineConfig, *, probe: bool = True) -> "RemoteChat":
        from openai import OpenAI

        if not cfg.remote_base_url.strip():
            raise ConfigError("engine.remote_base_url: required when engine.backend is openai "
                              "(e.g. http://gpu-box:8000/v1)")
        if not cfg.remote_model.strip():
            raise ConfigError("engine.remote_model: required when engine.backend is openai (the model name there)")
        base_url = cfg.remote_base_url.strip().rstrip("/")
        key = os.environ.get(cfg.remote_api_key_env, "").strip() or "none"  # local servers ignore it
        from openai import Timeout

        client = OpenAI(api_key=key, base_url=base_url, max_retries=0,
                        timeout=Timeout(READ_SECONDS, connect=CONNECT_SECONDS))
        notice = cls._probe(client, cfg.remote_model) if probe else ""
        return cls(client, base_url, cfg.remote_model, concurrency=remote_concurrency(cfg.max_concurrent),
                   report=remote_report(base_url, cfg.remote_model, notice))

    @staticmethod
    def _probe(client: Any, model: str) -> str:
        """A notice when the server cannot be reached or does not list the model; never fails the start."""
        import openai

        try:
            listed = [m.id for m in client.with_options(timeout=5.0).models.list().data]
        except openai.APIStatusError as exc:
            return f"The remote server answered {exc.status_code} to /models: {exc.message}"
        except openai.APIError as exc:
            return f"The remote server cannot be reached now ({type(exc).__name__}); chats fail until it is up."
        if listed and model not in listed:
            return f"The remote server does not list {model!r} (it has: {', '.join(listed[:5])})."
        return ""

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None) -> ChatStream:
        kept, dropped = keep_turns(messages, params.max_history_turns)  # PromptError now, before any text
        self.slots.check_room()
        stats = StreamStats(dropped_turns=dropped)
        if dropped:
            stats.notices.append(f"{dropped} oldest turn(s) left out")
        return ChatStream(self._run(kept, params, cancel or threading.Event(), stats), stats)

    def _request(self, messages: list[dict], params: GenerationParams) -> dict:
        kw: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True,
                              "stream_options": {"include_usage": True}, "max_tokens": params.max_new_tokens,
                              "temperature": params.temperature}
        if params.temperature > 0:
            kw["top_p"] = params.top_p
        if params.stop:
            kw["stop"] = list(params.stop)
        if params.seed is not None:
            kw["seed"] = params.seed
        if params.presence_penalty:
            kw["presence_penalty"] = params.presence_penalty
        if params.frequency_penalty:
            kw["frequency_penalty"] = params.frequency_penalty
        # vLLM's (and llama.cpp's) names beyond OpenAI's; a server without them says so
        extra = {name: value for name, value, unset in (("min_tokens", params.min_new_tokens, 0),
                                                        ("top_k", params.top_k, 0),
                                                        ("repetition_penalty", params.repetition_penalty, 1.0))
                 if value != unset}
        if extra:
            kw["extra_body"] = extra
        return kw

    def _run(self, messages: list[dict], params: GenerationParams, cancel: threading.Event,
             stats: StreamStats) -> Iterator[str]:
        import openai

        if not self.slots.acquire(cancel):
            stats.finish_reason = "cancelled"
            return
        started = time.perf_counter()
        done = threading.Event()
        response = None
        try:
            try:
                response = self.client.chat.completions.create(**self._request(messages, params))
            except openai.APIStatusError as exc:
                stats.finish_reason = "error"
                if exc.status_code in (429, 503):
                    raise EngineBusy(f"the remote server is busy ({exc.status_code}): retry shortly") from None
                raise RemoteServerError(f"the remote server {self.base_url} answered {exc.status_code}: "
                                        f"{_detail(exc)}") from None
            except openai.APIError as exc:
                stats.finish_reason = "error"
                raise RemoteServerError(f"the remote server {self.base_url} cannot be reached "
                                        f"({type(exc).__name__}): {exc}") from None
            # Servers differ on stop strings (`transformers serve` sends the stop string itself, OpenAI does
            # not): we cut at them here as well, so the reply is the same whichever server answers.
            stops = StopMatcher(params.stop or ())
            threading.Thread(target=self._close_on_cancel, args=(response, cancel, done), daemon=True,
                             name="remote-cancel").start()
            for chunk in response:
                if chunk.usage is not None:
                    stats.prompt_tokens = chunk.usage.prompt_tokens or 0
                    stats.completion_tokens = chunk.usage.completion_tokens or 0
                for choice in chunk.choices:
                    if choice.finish_reason:
                        stats.finish_reason = "length" if choice.finish_reason == "length" else "stop"
                    piece = stops.feed(choice.delta.content or "") if choice.delta else ""
                    if piece:
                        if stats.first_token_seconds is None:
                            stats.first_token_seconds = time.perf_counter() - started
                        yield piece
                if stops.stopped:
                    stats.finish_reason = "stop"
                    break
                if cancel.is_set():
                    stats.finish_reason = "cancelled"
                    break
            tail = stops.flush()
            if tail and not cancel.is_set():
                yield tail
            stats.finish_reason = stats.finish_reason or "stop"
        except GeneratorExit:
            cancel.set()
            stats.finish_reason = stats.finish_reason or "cancelled"
            raise
        except (EngineBusy, GenerationError):
            raise
        except Exception as exc:  # noqa: BLE001 - the HTTP client's read errors, whatever its version names them
            if not cancel.is_set():
                stats.finish_reason = "error"
                raise RemoteServerError(f"the remote stream from {self.base_url} broke off "
                                        f"({type(exc).__name__}): {exc}") from None
            stats.finish_reason = "cancelled"  # we closed the response ourselves
        finally:
            done.set()
            if response is not None:
                response.close()
            self.slots.release()
            stats.seconds = time.perf_counter() - started

    @staticmethod
    def _close_on_cancel(response: Any, cancel: threading.Event, done: threading.Event) -> None:
        """Closing the HTTP response is the only way to stop a read that is waiting on the network."""
        while not done.is_set():
            if cancel.wait(0.1):
                if not done.is_set():
                    response.close()
                return

    def stats(self) -> LoadStats:
        return self.slots.stats(self.path)

    def close(self) -> None:
        self.client.close()
