"""POST /v1/completions: OpenAI's legacy text completion, what evaluation harnesses call.

The prompt is completed as it is, without a chat template (ChatService.completion tokenizes it), through the
same door as a chat reply: the continuous batch where the request allows it, admission, adapters and the
error shape all as /v1/chat/completions has them (api/chat.py's helpers). `echo` puts the prompt before each
choice's text; with `logprobs` the prompt's tokens come with their logprobs too (one forward pass over the
prompt, ChatService.score), the first one null: `echo: true, max_tokens: 0, logprobs: 1` is a log-likelihood.
"""
from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from typing import AsyncIterator, Sequence

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse

from api import completion_bodies as bodies
from api.chat import SSE_HEADERS, demo_headers, generation_error, open_choices, sse, watch_disconnect
from api.errors import ApiError, bad_request
from api.params import NAMES, refuse_unsupported
from api.responses import wire
from api.schemas import MAX_PROMPTS, CompletionRequest
from api.state import ApiState
from api.streaming import StreamPump
from engine.requests import ChatRequest, Sampling
from engine.serving.scoring import ScoredPrompt

# The engine's option names as this route's body spells them (its logprobs is an integer, chat's top_logprobs).
COMPLETION_NAMES = NAMES | {"logprobs": "logprobs"}
Prompt = str | list[int]


def prompts_of(body: CompletionRequest) -> tuple[list[Prompt], bool]:
    """The prompts (texts or token-id lists), and whether one was sent bare (then a refusal names `prompt`,
    else `prompt.<i>`)."""
    p = body.prompt
    if isinstance(p, str) or not p or all(isinstance(t, int) for t in p):
        return [p], True
    return list(p), False


def sampling_of(body: CompletionRequest) -> Sampling:
    stop = None if body.stop is None else (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    return Sampling(max_new_tokens=body.max_tokens or None, temperature=body.temperature, top_p=body.top_p,
                    top_k=body.top_k, repetition_penalty=body.repetition_penalty, seed=body.seed,
                    presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
                    logprobs=body.logprobs if body.max_tokens else None, stop=stop)


def refuse(body: CompletionRequest, prompts: list[Prompt]) -> None:
    """400 naming the parameter for what this server would otherwise ignore or cannot do."""
    refuse_unsupported(body)
    if body.suffix:
        raise bad_request("suffix (text after the completion) is not supported by this server", "suffix",
                          "unsupported_parameter")
    if body.best_of is not None and body.best_of != body.n:
        raise bad_request(f"best_of must equal n ({body.n}): this server returns every candidate it makes",
                          "best_of", "unsupported_parameter")
    if body.stream_options is not None and not body.stream:
        raise bad_request("stream_options needs stream set to true", "stream_options")
    if len(prompts) > MAX_PROMPTS:
        raise bad_request(f"prompt holds {len(prompts)} prompts; this server takes at most {MAX_PROMPTS} per request",
                          "prompt")


@dataclass
class PromptPlan:
    """One prompt of the request: its checked engine request, what echo puts before each choice's text, and
    its scored tokens (echo with logprobs)."""
    request: ChatRequest
    echo: str = ""
    scored: ScoredPrompt | None = None

    def prompt_tokens(self) -> list[bodies.Token]:
        if self.scored is None:
            return []
        return [bodies.Token.first(self.scored.first)] + [bodies.Token.of(e) for e in self.scored.rest]


@dataclass
class Choice:
    """One choice: its prompt's plan and, when anything is generated, the pump of its reply."""
    index: int
    plan: PromptPlan
    pump: StreamPump | None
    model: str = ""          # the model writing it (Reply.model); "" when nothing is generated


async def plan_prompts(state: ApiState, body: CompletionRequest, adapter: str | None,
                       cancel: threading.Event) -> list[PromptPlan]:
    """Every prompt checked before any model work (a 400 is never a 200 then an error event), then each scored
    where echo asks for the prompt's logprobs."""
    prompts, bare = prompts_of(body)
    refuse(body, prompts)
    sampling = sampling_of(body)
    scoring = body.echo and body.logprobs is not None

    def check() -> list[ChatRequest]:
        return [state.chat.completion(p, sampling, adapter=adapter, names=COMPLETION_NAMES,
                                      param="prompt" if bare else f"prompt.{i}", generate=body.max_tokens > 0,
                                      scoring=scoring)
                for i, p in enumerate(prompts)]

    requests = await anyio.to_thread.run_sync(check)
    plans = []
    for p, r in zip(prompts, requests):
        echo = "" if not body.echo else p if isinstance(p, str) else state.chat.engine.codec.decode(list(p))
        plans.append(PromptPlan(r, echo))
    if scoring:
        for plan in plans:
            plan.scored = await anyio.to_thread.run_sync(state.chat.score, plan.request, body.logprobs, cancel)
            if plan.scored is None:
                raise ApiError(400, "the client left before the prompt was scored", code="cancelled")
    return plans


async def open_all(state: ApiState, plans: list[PromptPlan], n: int, generate: bool) -> list[Choice]:
    """n choices per prompt, in prompt order (index = prompt * n + choice), each reply on the engine's path; if
    one cannot open, those opened are closed and the error is answered."""
    out: list[Choice] = []
    try:
        for plan in plans:
            if not generate:
                out += [Choice(len(out), plan, None) for _ in range(n)]
                continue
            for reply, event in await open_choices(state, plan.request, threading.Event(), n):
                out.append(Choice(len(out), plan, StreamPump(reply.stream, event), reply.model))
    except BaseException:
        for c in out:
            if c.pump is not None:
                c.pump.cancel.set()
        raise
    return out


def used(plans: Sequence[PromptPlan], choices: Sequence[Choice]) -> bodies.CompletionUsage:
    """Each prompt counted once, as OpenAI counts it for n > 1; every choice's generated tokens."""
    prompt = sum(len(p.request.params.prompt_ids or ()) for p in plans)
    return bodies.usage(prompt, sum(c.pump.stats.completion_tokens for c in choices if c.pump is not None))


class Answer:
    """The fixed fields of one answer and the logprobs asked for (None: no logprobs)."""

    def __init__(self, model: str, logprobs: int | None, echo: bool):
        self.id, self.created, self.model = f"cmpl-{uuid.uuid4().hex}", int(time.time()), model
        self.logprobs, self.echo = logprobs, echo

    def choice(self, c: Choice, text: str) -> bodies.TextChoice:
        stats = c.pump.stats if c.pump is not None else None
        logprobs = None
        if self.logprobs is not None:
            offsets = bodies.Offsets()
            prompt_part = offsets.logprobs(c.plan.prompt_tokens() if self.echo else [])
            offsets.skip_to(len(c.plan.echo))
            logprobs = bodies.joined(prompt_part, self.part(offsets, stats.logprobs if stats else []))
        return bodies.TextChoice(index=c.index, text=c.plan.echo + text, logprobs=logprobs,
                                 finish_reason=bodies.finish_reason(stats))

    def full(self, plans: list[PromptPlan], choices: list[Choice], texts: list[str]) -> dict:
        return wire(bodies.completion(self.id, self.created, self.model,
                                      [self.choice(c, t) for c, t in zip(choices, texts)], used(plans, choices)))

    def chunk(self, index: int, text: str, logprobs: bodies.TextLogprobs | None = None,
              finish: bodies.FinishReason | None = None) -> str:
        return sse(bodies.chunk(self.id, self.created, self.model, index, text, logprobs, finish))

    async def events(self, plans: list[PromptPlan], choices: list[Choice], include_usage: bool,
                     state: ApiState) -> AsyncIterator[str]:
        """The choices one after another (each with its index), then usage; logprobs ride with the text."""
        try:
            for c in choices:
                offsets = bodies.Offsets()
                if self.echo:
                    scored = offsets.logprobs(c.plan.prompt_tokens()) if self.logprobs is not None else None
                    yield self.chunk(c.index, c.plan.echo, scored)
                    offsets.skip_to(len(c.plan.echo))
                if c.pump is None:
                    yield self.chunk(c.index, "", None, "length")
                    continue
                sent = 0
                try:
                    async for piece in c.pump.pieces():
                        entries = c.pump.stats.logprobs[sent:] if self.logprobs is not None else []
                        sent += len(entries)
                        yield self.chunk(c.index, piece, self.part(offsets, entries))
                except Exception as exc:  # noqa: BLE001 - the headers are sent: the error travels as an SSE event
                    state.counters.add("errors")
                    yield sse(generation_error(exc).body())
                    yield "data: [DONE]\n\n"
                    return
                rest = c.pump.stats.logprobs[sent:] if self.logprobs is not None else []
                yield self.chunk(c.index, "", self.part(offsets, rest), bodies.finish_reason(c.pump.stats))
            if include_usage:
                yield sse(bodies.usage_chunk(self.id, self.created, self.model, used(plans, choices)))
            yield "data: [DONE]\n\n"
        finally:
            for c in choices:
                if c.pump is not None:
                    c.pump.cancel.set()  # the client left (or we are done): stop generating, free the slot

    def part(self, offsets: bodies.Offsets, entries: Sequence) -> bodies.TextLogprobs | None:
        """Logprobs of generated tokens (engine TokenLogprob entries) where asked, placed after the text so far."""
        return offsets.logprobs([bodies.Token.of(e) for e in entries]) if self.logprobs is not None else None


def router(state: ApiState) -> APIRouter:
    r = APIRouter()

    @r.post("/v1/completions")
    async def completions(body: CompletionRequest, request: Request):
        resolved = state.names.resolve(body.model)
        cancel = threading.Event()
        # The client may leave while a prompt is scored or waits for a slot: then nothing more is done.
        watcher = asyncio.create_task(watch_disconnect(request, cancel))
        try:
            plans = await plan_prompts(state, body, resolved.adapter, cancel)
            choices = await open_all(state, plans, body.n, body.max_tokens > 0)
        finally:
            watcher.cancel()
        # the model that writes the reply (a switch may have come after `model` was read), or the adapter's name
        writer = next((c.model for c in choices if c.model), state.engine.model_id)
        answer = Answer(resolved.shown if resolved.adapter else writer, body.logprobs, body.echo)
        headers = demo_headers(state)
        state.counters.add("completions")
        if body.stream:
            include_usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(answer.events(plans, choices, include_usage, state),
                                     media_type="text/event-stream", headers=SSE_HEADERS | headers)
        try:
            texts = await asyncio.gather(*(c.pump.text(request.is_disconnected) if c.pump is not None
                                           else _nothing() for c in choices))
        except Exception as exc:  # noqa: BLE001 - answered as an OpenAI error object
            for c in choices:
                if c.pump is not None:
                    c.pump.cancel.set()
            state.counters.add("errors")
            raise generation_error(exc) from None
        return JSONResponse(answer.full(plans, choices, list(texts)), headers=headers)

    return r


async def _nothing() -> str:
    """The text of a choice nothing is generated for (max_tokens 0)."""
    return ""
