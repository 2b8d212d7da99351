"""POST /v1/chat/completions: streaming (SSE) and not, text or one image, OpenAI's shapes throughout."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Callable

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api import choices
from api.errors import ApiError, bad_request, busy, from_engine, unavailable
from api.messages import ParsedChat, parse_messages
from api.params import request_features
from api.schemas import ChatCompletionRequest
from api.state import ApiState
from api.streaming import StreamPump
from engine.serving.batching import EngineBusy
from engine.prompting.constrained import ConstraintError
from engine.errors import EngineError
from engine.serving.generation import GenerationParams, PromptTooLong
from engine.loading.loader import ModelLoadError
from engine.loading.memory import is_out_of_memory
from engine.prompting.mistral import PromptError
from engine.loading.sources import SourceError
from engine.prompting.tools import ToolsUnsupported

MAX_STOP = 4
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@dataclass
class Opened:
    stream: Any
    cleanup: Callable[[], None] | None = None
    model: str | None = None          # who answers, when not the chat model (the image model)


def request_params(body: ChatCompletionRequest, base: GenerationParams, max_context: int) -> GenerationParams:
    max_tokens = body.max_completion_tokens or body.max_tokens
    if max_tokens is not None and max_tokens > max_context:
        param = "max_completion_tokens" if body.max_completion_tokens else "max_tokens"
        raise bad_request(f"{param} is {max_tokens}, but this model takes at most {max_context} tokens of context "
                          "(prompt and reply together)", param)
    longest = max_tokens if max_tokens is not None else base.max_new_tokens
    if body.min_tokens is not None and body.min_tokens > longest:
        raise bad_request(f"min_tokens is {body.min_tokens}, more than the {longest} tokens the reply may have "
                          "(max_tokens)", "min_tokens")
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    if len(stop) > MAX_STOP:
        raise bad_request(f"stop takes at most {MAX_STOP} sequences, got {len(stop)}", "stop")
    return base.with_overrides(max_new_tokens=max_tokens, min_new_tokens=body.min_tokens,
                               temperature=body.temperature, top_p=body.top_p, seed=body.seed,
                               stop=[s for s in stop if s] if body.stop is not None else None)


def check_lengths(parsed: ParsedChat, limit: int) -> None:
    """generation.max_message_chars holds on /v1 as in the UI: each message's text, before any tokenizing."""
    for i, m in enumerate(parsed.messages):
        if len(m["content"]) > limit:
            raise bad_request(f"messages.{i}.content is {len(m['content'])} characters; this server takes at most "
                              f"{limit} per message (generation.max_message_chars)", f"messages.{i}.content",
                              "message_too_long")


def open_stream(state: ApiState, parsed: ParsedChat, params: GenerationParams, cancel: threading.Event,
                adapter: str | None = None) -> Opened:
    """The engine's stream (or the image model's); every refusal becomes the right API error.
    `adapter`: the LoRA adapter the request's `model` named (None: the base model)."""
    from engine.adapters import AdapterError
    from engine.media.inputs import ImageLimits, MediaError, load_image
    from engine.manager import ModelUnavailable

    try:
        if parsed.image is None:
            if adapter is None:
                return Opened(state.engine.stream(parsed.messages, params, cancel))
            try:
                return Opened(state.engine.stream(parsed.messages, params, cancel, adapter=adapter))
            except AdapterError as exc:
                raise bad_request(f"the adapter {adapter!r} cannot be used now: {exc}", "model",
                                  "adapter_unusable") from None
        if adapter is not None:
            raise bad_request(f"the adapter {adapter!r} applies to the chat model; a message with an image is "
                              "answered by the image model, which takes no adapter", "model")
        image = load_image(parsed.image, ImageLimits(max_bytes=state.max_upload_bytes))  # 400 before any load
        if state.manager is None:
            raise unavailable("image input", "no image model is configured")
        stack = ExitStack()
        try:
            vision = stack.enter_context(state.manager.use("vision"))
            *history, last = parsed.messages
            question = last["content"].strip() or "Describe this image."
            stream = vision.ask(image, question, params, history=history, cancel=cancel)
        except BaseException:
            stack.close()
            raise
        return Opened(stream, stack.close, vision.report.model_id)
    except ConstraintError as exc:
        raise bad_request(str(exc), "response_format", "invalid_json_schema") from None
    except ToolsUnsupported as exc:
        raise bad_request(f"tools cannot be used with this model: {exc}", exc.param, "unsupported_parameter") from None
    except PromptTooLong as exc:
        raise bad_request(str(exc), "messages", "context_length_exceeded") from None
    except PromptError as exc:
        raise bad_request(str(exc), "messages") from None
    except EngineBusy as exc:
        raise busy(str(exc), exc.retry_after) from None
    except MediaError as exc:
        raise bad_request(str(exc), "messages", "invalid_image") from None
    except (ModelUnavailable, ModelLoadError, SourceError, KeyError) as exc:
        raise unavailable("image input (the vision model)", str(exc).strip("'\"")) from None


def generation_error(exc: BaseException) -> ApiError:
    """What a failed reply answers: an engine error as itself, anything else a 500 (a bug: its class named)."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, EngineError):
        return from_engine(exc)
    if is_out_of_memory(exc):
        return ApiError(503, str(exc), code="out_of_memory", headers={"Retry-After": "5"})
    return ApiError(500, f"generation failed: {type(exc).__name__}: {exc}", code="internal_error")


@dataclass(frozen=True)
class Completion:
    """The fixed fields of one answer; builds the JSON objects OpenAI clients expect."""
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> "Completion":
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model)

    def full(self, outcomes: list[tuple[str, Any]], with_logprobs: bool = False) -> dict:
        """The answer with one choice per (text, stats), as OpenAI's n asks."""
        return {"id": self.id, "object": "chat.completion", "created": self.created, "model": self.model,
                "choices": [choices.choice(i, text, stats, with_logprobs) for i, (text, stats) in enumerate(outcomes)],
                "usage": choices.usage([stats for _, stats in outcomes])}

    def chunk(self, delta: dict, finish_reason: str | None = None, index: int = 0,
              logprobs: dict | None = None) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": logprobs}]}
        return sse(body)

    def usage_chunk(self, all_stats: list[Any]) -> str:
        return sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created, "model": self.model,
                    "choices": [], "usage": choices.usage(all_stats)})


# Line breaks to Python's str.splitlines (and so httpx's iter_lines) but not to JSON or SSE: escaped, so a
# reply holding one cannot cut an event in two for a client that splits lines that way.
LINE_SAFE = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def sse(obj: dict) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False).translate(LINE_SAFE)}\n\n"


async def event_stream(pumps: list[StreamPump], c: Completion, include_usage: bool, state: ApiState,
                       with_logprobs: bool = False) -> AsyncIterator[str]:
    """The choices one after another (each with its index), then usage; logprobs ride with the text."""
    try:
        for index, pump in enumerate(pumps):
            yield c.chunk({"role": "assistant", "content": ""}, index=index)
            sent = 0
            try:
                async for piece in pump.pieces():
                    entries = pump.stats.logprobs[sent:] if with_logprobs else []
                    sent += len(entries)
                    yield c.chunk({"content": piece}, index=index,
                                  logprobs=choices.logprobs(entries) if with_logprobs else None)
            except Exception as exc:  # noqa: BLE001 - the headers are sent: the error travels as an SSE event
                state.counters.add("errors")
                yield sse(generation_error(exc).body())
                yield "data: [DONE]\n\n"
                return
            rest = pump.stats.logprobs[sent:] if with_logprobs else []
            calls = choices.tool_call_delta(pump.stats)
            if calls or rest:
                yield c.chunk(calls or {"content": ""}, index=index,
                              logprobs=choices.logprobs(rest) if with_logprobs else None)
            yield c.chunk({}, choices.finish_reason(pump.stats), index=index)
        if include_usage:
            yield c.usage_chunk([p.stats for p in pumps])
        yield "data: [DONE]\n\n"
    finally:
        for pump in pumps:
            pump.cancel.set()  # the client left (or we are done): stop generating, free the slot


async def watch_disconnect(request: Request, cancel: threading.Event, poll: float = 0.2) -> None:
    """Set `cancel` once the client has gone."""
    while not cancel.is_set():
        if await request.is_disconnected():
            cancel.set()
            return
        await asyncio.sleep(poll)


async def open_choices(state: ApiState, parsed: ParsedChat, params: GenerationParams, cancel: threading.Event,
                       adapter: str | None, n: int) -> list[tuple[Opened, threading.Event]]:
    """One engine stream per choice, each with its own cancel event (a seed, if given, differs per choice);
    if one cannot open, those opened are closed and the error is answered."""
    out: list[tuple[Opened, threading.Event]] = []
    try:
        for i in range(n):
            event = cancel if i == 0 else threading.Event()
            p = params if i == 0 or params.seed is None else replace(params, seed=(params.seed + i) % 2 ** 63)
            out.append((await anyio.to_thread.run_sync(open_stream, state, parsed, p, event, adapter), event))
    except BaseException:
        for opened, event in out:
            event.set()
            opened.stream.close()
            if opened.cleanup is not None:
                opened.cleanup()
        raise
    return out


def router(state: ApiState) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        resolved = state.names.resolve(body.model)
        parsed = parse_messages(body.messages, state.max_upload_bytes)
        check_lengths(parsed, state.cfg.generation.max_message_chars)
        params = request_params(body, state.base_params, state.engine.max_context)
        features = request_features(body, parsed.messages)
        if features.local_only and (state.engine.remote or parsed.image is not None):
            where = "a remote backend (engine.backend openai)" if state.engine.remote else "a message with an image"
            raise bad_request(f"{features.local_only} is not supported with {where}", features.local_only,
                              "unsupported_parameter")
        params = params.with_overrides(**features.overrides())
        cancel = threading.Event()
        # The client may leave while the prompt is trimmed or a slot awaited: then nothing is generated.
        watcher = asyncio.create_task(watch_disconnect(request, cancel))
        try:
            opened = await open_choices(state, parsed, params, cancel, resolved.adapter, features.n)
        finally:
            watcher.cancel()
        pumps = [StreamPump(o.stream, event, o.cleanup) for o, event in opened]
        completion = Completion.new(opened[0][0].model or resolved.shown)
        with_logprobs = features.logprobs is not None
        report = state.engine.report
        kind = ("random weights: replies are noise" if getattr(report, "random_weights", True)
                else "small offline model, not the configured one")
        headers = {"X-Demo-Model": kind} if report.demo else {}
        state.counters.add("chat_completions")
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(event_stream(pumps, completion, include_usage, state, with_logprobs),
                                     media_type="text/event-stream", headers=SSE_HEADERS | headers)
        try:
            texts = await asyncio.gather(*(p.text(request.is_disconnected) for p in pumps))
        except Exception as exc:  # noqa: BLE001 - answered as an OpenAI error object
            for p in pumps:
                p.cancel.set()
            state.counters.add("errors")
            raise generation_error(exc) from None
        outcomes = [(text, p.stats) for text, p in zip(texts, pumps)]
        return JSONResponse(completion.full(outcomes, with_logprobs), headers=headers)

    return r
