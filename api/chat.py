"""POST /v1/chat/completions: streaming (SSE) and not, text or one image, OpenAI's shapes throughout."""
from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any, AsyncIterator, Sequence
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from openai.types.chat.chat_completion_chunk import ChoiceDelta, ChoiceLogprobs
from pydantic import BaseModel

from api import choices, responses
from api.errors import ApiError, from_engine
from api.messages import parse_messages
from api.params import NAMES, request_features
from api.schemas import ChatCompletionRequest
from api.state import ApiState
from api.streaming import StreamPump
from engine.errors import EngineError
from engine.loading.memory import is_out_of_memory
from engine.requests import ChatRequest, Reply

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


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
    """The fixed fields of one answer; builds the JSON objects OpenAI clients expect (api/responses.py)."""
    id: str
    created: int
    model: str

    @classmethod
    def new(cls, model: str) -> "Completion":
        return cls(f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), model)

    def full(self, outcomes: list[tuple[str, Any]], with_logprobs: bool = False) -> dict:
        """The answer with one choice per (text, stats), as OpenAI's n asks."""
        return responses.wire(responses.completion(self.id, self.created, self.model, outcomes, with_logprobs))

    def chunk(self, delta: ChoiceDelta, finish_reason: choices.FinishReason | None = None, index: int = 0,
              logprobs: ChoiceLogprobs | None = None) -> str:
        return sse(responses.chunk(self.id, self.created, self.model, delta, finish_reason, index, logprobs))

    def usage_chunk(self, all_stats: list[Any]) -> str:
        return sse(responses.usage_chunk(self.id, self.created, self.model, all_stats))


# Line breaks to Python's str.splitlines (and so httpx's iter_lines) but not to JSON or SSE: escaped, so a
# reply holding one cannot cut an event in two for a client that splits lines that way.
LINE_SAFE = str.maketrans({"\x85": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def sse(obj: dict | BaseModel) -> str:
    """One SSE event: a typed chunk (as responses.wire writes it) or a plain dict (an error body)."""
    body = responses.wire(obj) if isinstance(obj, BaseModel) else obj
    return f"data: {json.dumps(body, ensure_ascii=False).translate(LINE_SAFE)}\n\n"


async def event_stream(pumps: list[StreamPump], c: Completion, include_usage: bool, state: ApiState,
                       with_logprobs: bool = False) -> AsyncIterator[str]:
    """The choices one after another (each with its index), then usage; logprobs ride with the text."""
    try:
        for index, pump in enumerate(pumps):
            yield c.chunk(choices.first_delta(), index=index)
            sent = 0
            try:
                async for piece in pump.pieces():
                    entries = pump.stats.logprobs[sent:] if with_logprobs else []
                    sent += len(entries)
                    yield c.chunk(choices.text_delta(piece), index=index,
                                  logprobs=choices.delta_logprobs(entries) if with_logprobs else None)
            except Exception as exc:  # noqa: BLE001 - the headers are sent: the error travels as an SSE event
                state.counters.add("errors")
                yield sse(generation_error(exc).body())
                yield "data: [DONE]\n\n"
                return
            rest = pump.stats.logprobs[sent:] if with_logprobs else []
            calls = choices.tool_call_delta(pump.stats)
            if calls or rest:
                yield c.chunk(calls or choices.text_delta(""), index=index,
                              logprobs=choices.delta_logprobs(rest) if with_logprobs else None)
            yield c.chunk(choices.no_delta(), choices.finish_reason(pump.stats), index=index)
        if include_usage:
            yield c.usage_chunk([p.stats for p in pumps])
        yield "data: [DONE]\n\n"
    finally:
        for pump in pumps:
            pump.cancel.set()  # the client left (or we are done): stop generating, free the slot


def demo_headers(state: ApiState) -> dict[str, str]:
    """X-Demo-Model on every answer of a demo model, so a client sees what it is talking to; {} otherwise."""
    report = state.engine.report
    if not report.demo:
        return {}
    return {"X-Demo-Model": "random weights: replies are noise" if getattr(report, "random_weights", True)
            else "small offline model, not the configured one"}


# What a header value may hold as it is: printable ASCII, less "%" (the escape) and ";" (between notices).
HEADER_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) not in "%;")


def document_headers(notices: Sequence[str]) -> dict[str, str]:
    """X-Document-Notice when an attached document was cut to fit the context: the notices the prompt holds,
    joined by "; ", each UTF-8 percent-encoded where not printable ASCII (a header is Latin-1; a Korean file
    name or "–" is escaped, a line break cannot split the header); {} when nothing was cut."""
    if not notices:
        return {}
    return {"X-Document-Notice": "; ".join(quote(n, safe=HEADER_SAFE) for n in notices)}


async def watch_disconnect(request: Request, cancel: threading.Event, poll: float = 0.2) -> None:
    """Set `cancel` once the client has gone."""
    while not cancel.is_set():
        if await request.is_disconnected():
            cancel.set()
            return
        await asyncio.sleep(poll)


async def open_choices(state: ApiState, request: ChatRequest, cancel: threading.Event,
                       n: int) -> list[tuple[Reply, threading.Event]]:
    """One reply per choice through the one door, each with its own cancel event (a seed, if given, differs
    per choice); if one cannot open, those opened are closed and the error is answered."""
    out: list[tuple[Reply, threading.Event]] = []
    params = request.params
    try:
        for i in range(n):
            event = cancel if i == 0 else threading.Event()
            choice = request if i == 0 or params.seed is None else \
                replace(request, params=replace(params, seed=(params.seed + i) % 2 ** 63))
            out.append((await anyio.to_thread.run_sync(state.chat.open_chat, choice, event), event))
    except BaseException:
        for reply, event in out:
            event.set()
            reply.stream.close()
        raise
    return out


def caller_names(body: ChatCompletionRequest) -> dict[str, str]:
    """The engine's option names as this body spelt them (max_completion_tokens or max_tokens)."""
    return NAMES | ({"max_new_tokens": "max_completion_tokens"} if body.max_completion_tokens else {})


def router(state: ApiState) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/chat/completions")
    async def chat_completions(body: ChatCompletionRequest, request: Request):
        resolved = state.names.resolve(body.model)
        parsed = parse_messages(body.messages, state.max_upload_bytes)
        features = request_features(body, parsed.messages)
        # documents (file parts) read and cut to fit the context, off the event loop
        documents = await anyio.to_thread.run_sync(parsed.with_documents, state.chat, features.sampling)
        messages = documents.messages
        # Every check of the request, once, before any model work (schemas compile here: a 400, never a 200
        # followed by an error event).
        chat_request = await anyio.to_thread.run_sync(lambda: state.chat.request(
            messages, features.sampling, adapter=resolved.adapter, image=parsed.image,
            constraint=features.constraint, tools=features.tools, names=caller_names(body)))
        cancel = threading.Event()
        # The client may leave while the prompt is trimmed or a slot awaited: then nothing is generated.
        watcher = asyncio.create_task(watch_disconnect(request, cancel))
        try:
            opened = await open_choices(state, chat_request, cancel, features.n)
        finally:
            watcher.cancel()
        pumps = [StreamPump(reply.stream, event) for reply, event in opened]
        # the model that writes the reply (a switch may have come after `model` was read), or the adapter's name
        completion = Completion.new(resolved.shown if resolved.adapter else opened[0][0].model)
        with_logprobs = chat_request.params.logprobs is not None
        headers = demo_headers(state) | document_headers(documents.notices)
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
