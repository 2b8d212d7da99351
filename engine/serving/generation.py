"""stream(messages, params, cancel) -> text pieces, over a loaded causal LM.

The model runs `generate` in a worker thread; this side turns token ids into safe text, applies
stop strings, honours cancel within one token, trims history to fit, and survives one
out-of-memory error by retrying with a shorter context.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterator, Sequence

import torch

from engine.prompting.codec import TextCodec
from engine.loading.memory import forget, is_out_of_memory, release
from engine.prompting.mistral import encode_chat, normalize_messages
from engine.prompting.constrained import ConstrainedLogits, GrammarTokenizer, JsonConstraint
from engine.serving.logprobs import LogprobRecorder, TokenLogprob, describe
from engine.serving.penalties import PresenceFrequencyPenalty
from engine.prompting.textstream import IncrementalDecoder, StopMatcher
from engine.prompting.tools import ToolCall, ToolSpec, tool_prompt
from engine.errors import ConstraintError, GenerationError, GenerationOutOfMemory, PromptTooLong


class TrimCancelled(Exception):
    """The request was cancelled (the client left, Stop) while its history was being trimmed."""


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 512
    temperature: float = 0.7
    top_p: float = 0.95
    top_k: int = 0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0    # OpenAI's: subtracted once from each token already in the reply
    frequency_penalty: float = 0.0   # OpenAI's: subtracted per occurrence in the reply
    stop: tuple[str, ...] = ()
    seed: int | None = None
    max_history_turns: int = 20
    min_new_tokens: int = 0          # benchmarks and tests ask for an exact length
    logprobs: int | None = None      # None: off; else how many alternatives to report per token (0..20)
    constraint: JsonConstraint | None = None   # the reply must be JSON of this schema (constrained decoding)
    tools: ToolSpec | None = None    # tools offered (or tool messages present): the model's tool-call format
    reply_prefix: str = ""           # Continue: the reply so far; its ids follow the generation prompt
    prompt_ids: tuple[int, ...] | None = None   # a raw completion (/v1/completions): these ids, no chat template

    @classmethod
    def from_config(cls, gen: Any) -> "GenerationParams":
        return cls(max_new_tokens=gen.max_new_tokens, temperature=gen.temperature, top_p=gen.top_p,
                   top_k=gen.top_k, repetition_penalty=gen.repetition_penalty, stop=tuple(gen.stop),
                   max_history_turns=gen.max_history_turns)

    def with_overrides(self, **overrides: Any) -> "GenerationParams":
        clean = {k: v for k, v in overrides.items() if v is not None}
        if "stop" in clean:
            clean["stop"] = tuple(clean["stop"])
        return replace(self, **clean)

    @property
    def least_new_tokens(self) -> int:
        """min_new_tokens as it can be honoured: never above max_new_tokens."""
        return min(self.min_new_tokens, self.max_new_tokens)

    @property
    def penalised(self) -> bool:
        """Presence or frequency penalties asked for (a per-request logits processor)."""
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def generate_kwargs(self) -> dict:
        sample = self.temperature > 0
        kw: dict[str, Any] = {"max_new_tokens": self.max_new_tokens, "do_sample": sample,
                              "repetition_penalty": self.repetition_penalty}
        if self.least_new_tokens:
            kw["min_new_tokens"] = self.least_new_tokens
        if sample:
            kw.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k or None)
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        return kw


@dataclass
class StreamStats:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    dropped_turns: int = 0            # oldest user/assistant turns left out to fit
    finish_reason: str = ""           # stop | length | cancelled | error
    seconds: float = 0.0
    first_token_seconds: float | None = None
    notices: list[str] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)   # one per reply token, when params.logprobs is set
    token_ids: list[int] = field(default_factory=list)           # the reply's ids as generated
    tool_calls: list[ToolCall] | None = None                     # the reply was these calls (params.tools)

    @property
    def tokens_per_second(self) -> float:
        decode = self.seconds - (self.first_token_seconds or 0.0)
        return (self.completion_tokens - 1) / decode if self.completion_tokens > 1 and decode > 0 else 0.0


def trim_history(messages: Sequence[dict], count_tokens, *, max_turns: int, max_prompt_tokens: int,
                 cancel: threading.Event | None = None):
    """Drop the oldest turns (a user message and its reply) until both limits hold; the system prompt stays.

    Keeps the most turns that fit, found by galloping from the newest (keep 1, 2, 4, ... turns until one does
    not fit, then bisect): O(log n) counts, each over at most twice the turns that fit, so turns far older than
    the budget are never tokenized. A linear walk counted once per turn, which is quadratic where a count
    re-renders a chat template (999 short turns on SmolLM2: 4.0 s). With `Generator.prompt_counter` each
    message is tokenized at most once. Returns (messages, dropped_turns). Raises PromptTooLong if the last
    user message alone is too long, TrimCancelled as soon as `cancel` is set (checked before each count).
    """
    msgs = normalize_messages(messages)
    system = [m for m in msgs if m["role"] == "system"]
    turns = [m for m in msgs if m["role"] != "system"]
    pairs = [turns[i:i + 2] for i in range(0, len(turns), 2)]  # the last "pair" is the lone user message

    def kept(dropped: int, with_system: bool = True) -> list[dict]:
        return (system if with_system else []) + [m for p in pairs[dropped:] for m in p]

    counted: dict[int, int] = {}

    def fits(keep: int) -> bool:
        if cancel is not None and cancel.is_set():
            raise TrimCancelled
        counted[keep] = count_tokens(kept(len(pairs) - keep))
        return counted[keep] <= max_prompt_tokens

    most = max(1, min(len(pairs), max_turns))
    if fits(1):
        good, bad = 1, None
        while bad is None and good < most:  # gallop: 2, 4, 8, ... turns
            keep = min(most, good * 2)
            if fits(keep):
                good = keep
            else:
                bad = keep
        while bad is not None and bad - good > 1:  # bisect between the most that fit and the fewest that do not
            keep = (good + bad) // 2
            good, bad = (keep, bad) if fits(keep) else (good, keep)
        return kept(len(pairs) - good), len(pairs) - good
    last = len(pairs) - 1
    if system and count_tokens(kept(last, False)) <= max_prompt_tokens:  # last resort: the system prompt goes too
        return kept(last, False), last
    raise PromptTooLong(f"the message is {counted[1]} tokens; at most {max_prompt_tokens} fit with a reply of "
                        "this length: shorten it or lower the reply length")


class _MemoCodec:
    """A codec that tokenizes each distinct text once (for counting the same messages again and again)."""

    def __init__(self, codec: TextCodec):
        self._codec, self._memo = codec, {}
        self.bos, self.eos, self.inst, self.inst_end = codec.bos, codec.eos, codec.inst, codec.inst_end

    def __getattr__(self, name: str) -> Any:
        return getattr(self._codec, name)

    def encode(self, text: str) -> list[int]:
        if text not in self._memo:
            self._memo[text] = self._codec.encode(text)
        return self._memo[text]


class PromptCounter:
    """Prompt tokens of a conversation, each distinct message text tokenized once per trimming pass."""

    def __init__(self, codec: TextCodec):
        self._codec = _MemoCodec(codec)
        self.calls = 0               # conversations counted so far in this pass

    def __call__(self, messages: Sequence[dict]) -> int:
        self.calls += 1
        return len(encode_chat(self._codec, messages))


def cancelled_stream() -> "ChatStream":
    """The stream of a request cancelled before it started: no text, finish_reason "cancelled"."""
    return ChatStream((piece for piece in ()), StreamStats(finish_reason="cancelled"))


def _tool_reply(pieces: Iterator[str], stats: StreamStats, forced: bool,
                is_call: Callable[[list[int], str], bool | None],
                parse: Callable[[str], list[ToolCall] | None]) -> Iterator[str]:
    """Text as usual, unless the reply opens as a tool call (`is_call`: True, False, or None while the
    first pieces could still be one): then it is held and parsed into stats.tool_calls (given out as text
    after all if it is not a list of calls)."""
    calling: bool | None = True if forced else None
    held: list[str] = []
    try:
        for piece in pieces:
            held.append(piece)
            if calling is None:
                calling = is_call(stats.token_ids, "".join(held))
            if calling is False:
                yield "".join(held)
                held = []
        text = "".join(held)
        if calling:
            stats.tool_calls = parse(text)
            if stats.tool_calls is None and text:
                yield text
        elif text:
            yield text
    finally:
        pieces.close()


class TokenQueueStreamer:
    """transformers streamer that hands each new token id to the consuming thread."""

    def __init__(self, sink: queue.Queue):
        self.sink = sink
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate() first sends the prompt
            self._prompt_seen = True
            return
        self.sink.put(("tokens", value.reshape(-1).tolist()))

    def end(self) -> None:
        self.sink.put(("end", None))


class CancelOnEvent:
    """StoppingCriteria that ends generation at the next token once the event is set."""

    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


Sink = Callable[[str], None]
Source = Callable[[Sink | None], Iterator[str]]
"""How a stream is made: called once, with a sink (the relayed read: pieces go to it from the thread that
makes them, where the stream can) or None (the pulled read); the iterator yields the pieces not handed over."""


class _Once:
    """A callback that runs at most once, whoever calls it first."""

    def __init__(self, callback: Callable[[], None]):
        self._callback: Callable[[], None] | None = callback
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            callback, self._callback = self._callback, None
        if callback is not None:
            callback()


class ChatStream:
    """Iterator of text pieces; `stats` is complete once iteration ends (or the stream is closed).

    One source, read one of two ways, chosen by the first read: iterated (the UI's threads), or
    `relay(sink)` for a reader that is not a thread of its own (the API's event loop): a stream that can
    (the continuous batch) hands each piece to `sink` from the thread that made it, so no thread wakes per
    token only to pass the piece on. A wrapper goes through `around`, which keeps both reads: no wrapper
    carries the two modes by hand."""

    def __init__(self, source: Source | Iterator[str], stats: StreamStats):
        self._source: Source | None = source if callable(source) else (lambda _sink: source)
        self._pieces: Iterator[str] | None = None
        self._inner: ChatStream | None = None
        self._on_close: Callable[[], None] | None = None
        self.stats = stats

    def _open(self, sink: Sink | None) -> Iterator[str]:
        if self._pieces is None:
            source, self._source = self._source, None
            self._pieces = source(sink) if source is not None else iter(())
        return self._pieces

    def around(self, wrap: Callable[[Iterator[str]], Iterator[str]]) -> "ChatStream":
        """This stream with `wrap` around its pieces (a generator that yields from them), read either way."""
        outer = ChatStream(lambda sink: wrap(self._open(sink)), self.stats)
        outer._inner = self
        return outer

    def finally_(self, done: Callable[[], None]) -> "ChatStream":
        """This stream with `done` called once when it ends, fails or is closed (begun or not): how a caller
        holds something (a model marked busy) for exactly as long as the reply."""
        once = _Once(done)

        def guarded(inner: Iterator[str]) -> Iterator[str]:
            try:
                yield from inner
            finally:
                once()

        held = self.around(guarded)
        held._on_close = once
        return held

    def first_piece(self, fix: Callable[[str], str]) -> "ChatStream":
        """This stream with its first non-empty piece passed through `fix`, read either way (a relayed piece
        too, in the thread that made it)."""
        lock, seen = threading.Lock(), [False]

        def once(piece: str) -> str:
            with lock:
                if seen[0] or not piece:
                    return piece
                seen[0] = True
            return fix(piece)

        def wrap(inner: Iterator[str]) -> Iterator[str]:
            for piece in inner:
                yield once(piece)

        outer = ChatStream(lambda sink: wrap(self._open(None if sink is None else (lambda p: sink(once(p))))),
                           self.stats)
        outer._inner = self
        return outer

    def via(self, sink: Sink) -> Iterator[str]:
        """This stream for a relay: pieces go to `sink` where they are made, and the iterator yields the
        rest; run it to the end (or close it). A stream already iterated goes on as it was."""
        return self._open(sink)

    def relay(self, sink: Sink) -> None:
        """Run the stream to its end, every piece handed to `sink` (from the thread that made it where the
        stream can; `sink` must be quick and thread-safe)."""
        for piece in self._open(sink):
            sink(piece)

    def __iter__(self) -> "ChatStream":
        return self

    def __next__(self) -> str:
        return next(self._open(None))

    def close(self) -> None:
        """End the stream where it is (begun or not); what it and the streams it wraps hold is released."""
        pieces = self._open(None) if self._pieces is not None else None
        self._source = None
        self._pieces = self._pieces or iter(())
        try:
            if pieces is not None and hasattr(pieces, "close"):
                pieces.close()
        finally:
            try:
                if self._inner is not None:
                    self._inner.close()
            finally:
                if self._on_close is not None:
                    self._on_close()

    def text(self) -> str:
        return "".join(self)


class Generator:
    """Generation over one loaded model + codec. Thread-safe; `slots` requests run at once."""

    def __init__(self, model: Any, codec: TextCodec, *, max_context: int, slots: int = 4):
        self.model, self.codec, self.max_context = model, codec, max_context
        self._slots = threading.BoundedSemaphore(slots)
        self._device = next(model.parameters()).device
        self.grammar = GrammarTokenizer(codec.tokenizer)   # built on the first constrained request
        self.tool_prompt = tool_prompt(codec, model)   # Mistral's control tokens, or the chat template's format

    def count_prompt_tokens(self, messages: Sequence[dict]) -> int:
        return len(encode_chat(self.codec, messages))

    def prompt_counter(self) -> "PromptCounter":
        """count_prompt_tokens for one trimming pass: a message counted again is not tokenized again."""
        return PromptCounter(self.codec)

    def trim(self, messages: Sequence[dict], params: GenerationParams, cancel: threading.Event | None,
             reserved: int = 0):
        """trim_history for a reply of params.max_new_tokens (and `reserved` more prompt tokens: the ids of a
        reply being continued); None when `cancel` was set meanwhile (logged with how many of the messages
        had been tokenized, so an abandoned trim is seen to stop early)."""
        counter = self.prompt_counter()
        budget = self.max_context - params.max_new_tokens - reserved
        try:
            return trim_history(messages, counter, max_turns=params.max_history_turns,
                                max_prompt_tokens=budget, cancel=cancel)
        except PromptTooLong:
            if not reserved:
                raise
            raise PromptTooLong(f"the reply so far is {reserved} tokens: with the message and {params.max_new_tokens} "
                                f"more tokens it does not fit the model's {self.max_context} tokens of context; "
                                "lower the reply length or retry the reply", param="reply_prefix") from None
        except TrimCancelled:
            log.warning("history trim cancelled (the client left or pressed Stop) after %d counts over %d turns",
                        counter.calls, (len(messages) + 1) // 2)
            return None

    def prepare(self, messages: Sequence[dict], params: GenerationParams, cancel: threading.Event | None
                ) -> tuple[list[dict], list[int], StreamStats] | None:
        """The trimmed history, its prompt ids and the stats that report what was left out (shared by the
        plain and the batched path); None when `cancel` was set during the trim. With params.reply_prefix
        (Continue) the prompt is the generation prompt and then the prefix's ids, so the model goes on from
        where the reply stopped; the trim leaves room for them."""
        if params.prompt_ids is not None:     # checked against the context by ChatService.completion
            return [], list(params.prompt_ids), StreamStats()
        prefix = self.codec.encode(params.reply_prefix) if params.reply_prefix else []
        trimmed = self.trim(messages, params, cancel, reserved=len(prefix))
        if trimmed is None:
            return None
        kept, dropped = trimmed
        stats = StreamStats(dropped_turns=dropped)
        if dropped:
            stats.notices.append(f"{dropped} oldest turn(s) left out to fit the context")
        return kept, encode_chat(self.codec, kept) + prefix, stats

    def continued(self, stream: "ChatStream", prefix: str) -> "ChatStream":
        """`stream`, the continuation of a reply that so far is `prefix`, with the text its first token lost to
        decoding on its own: a SentencePiece "▁word" decoded alone drops its space, after the prefix it keeps it
        (read from the first generated id; where no id is known, as on ZeroGPU, the text is left as it is)."""
        if not prefix:
            return stream
        before = self.codec.encode(prefix)
        base = self.codec.decode(before)
        stats = stream.stats

        def fix(piece: str) -> str:
            ids = stats.token_ids
            if not ids:
                return piece
            joined = self.codec.decode(before + ids[:1])
            alone = self.codec.decode(ids[:1])
            if not joined.startswith(base) or not joined.endswith(alone):
                return piece
            lost = joined[len(base):len(joined) - len(alone)]
            return lost + piece if lost.isspace() and not piece.startswith(lost) else piece

        return stream.first_piece(fix)

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None) -> ChatStream:
        """Validate and trim now (errors raise here, before any text); generate lazily while iterated."""
        max_new = min(params.max_new_tokens, self.max_context - 16)
        params = replace(params, max_new_tokens=max_new)
        self.check_constraint(params)
        if params.tools is not None:
            return self._stream_tools(messages, params, cancel or threading.Event())
        prepared = self.prepare(messages, params, cancel)
        if prepared is None:
            return cancelled_stream()
        kept, prompt, stats = prepared

        carried = len(self.codec.encode(params.reply_prefix)) if params.reply_prefix else 0   # the reply so far

        def shorter() -> tuple[Callable[[list[int]], dict], int]:
            ids, extra = self._shorter_prompt(kept)
            return self._text_inputs(ids + prompt[len(prompt) - carried:] if carried else ids), extra

        return ChatStream(self._run(self._text_inputs(prompt), len(prompt), params, cancel or threading.Event(),
                                    stats, shorter if params.prompt_ids is None else None), stats)

    def check_constraint(self, params: GenerationParams) -> None:
        """ConstraintError now, before any text, when the JSON schema cannot be compiled."""
        if params.constraint is not None:
            self.grammar.matcher(params.constraint)

    def check_request(self, params: GenerationParams) -> None:
        """Compile what the request constrains the reply with, before any model work: its response_format, and
        the tool-call format a forced tool choice imposes (ConstraintError naming that parameter)."""
        self.check_constraint(params)
        if params.tools is not None and params.tools.forced:
            try:
                self.grammar.matcher(self.tool_prompt.constraint(params.tools))
            except ConstraintError as exc:
                raise ConstraintError(f"a tool's parameters cannot be used as a JSON schema: "
                                      f"{str(exc).removeprefix('the JSON schema cannot be used: ')}",
                                      param="tools") from None

    def _stream_tools(self, messages: Sequence[dict], params: GenerationParams, cancel: threading.Event) -> ChatStream:
        """A conversation with tools: the model's tool prompt (not trimmed), the reply parsed for calls."""
        prompt, params, read = self.prepare_tools(messages, params)
        stats = StreamStats()
        return ChatStream(read(self._run(self._text_inputs(prompt), len(prompt), params, cancel, stats, None), stats),
                          stats)

    def prepare_tools(self, messages: Sequence[dict], params: GenerationParams) -> tuple[
            list[int], GenerationParams, Callable[[Iterator[str], StreamStats], Iterator[str]]]:
        """A request with tools, for the plain path and the continuous batch alike: the model's tool prompt (not
        trimmed; PromptTooLong if it leaves no room), the params with a forced call's constraint, and the reader
        that turns the reply's pieces into text or stats.tool_calls."""
        spec = params.tools
        prompt = self.tool_prompt.encode(messages, spec)
        if len(prompt) > self.max_context - params.max_new_tokens:
            raise PromptTooLong(f"the conversation with its tools is {len(prompt)} tokens; at most "
                                f"{self.max_context - params.max_new_tokens} fit with a reply of this length")
        if spec.forced:
            params = replace(params, constraint=self.tool_prompt.constraint(spec))
        reader = self.tool_prompt

        def read(pieces: Iterator[str], stats: StreamStats) -> Iterator[str]:
            return _tool_reply(pieces, stats, spec.forced, lambda ids, text: reader.is_call(ids, text, spec),
                               lambda text: reader.parse(text, spec, prompt))
        return prompt, params, read

    def stream_inputs(self, model_inputs: dict, prompt_tokens: int, params: GenerationParams,
                      cancel: threading.Event | None = None) -> ChatStream:
        """Stream from ready model inputs (e.g. input_ids + pixel_values for an image model); no retry."""
        self.check_constraint(params)
        stats = StreamStats()

        def inputs(generated: list[int]) -> dict:
            if not generated:
                return model_inputs
            extra = torch.tensor([generated], device=model_inputs["input_ids"].device)
            ids = torch.cat([model_inputs["input_ids"], extra], dim=1)
            return model_inputs | {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

        return ChatStream(self._run(inputs, prompt_tokens, params, cancel or threading.Event(), stats, None), stats)

    def _text_inputs(self, prompt: list[int]) -> Callable[[list[int]], dict]:
        def inputs(generated: list[int]) -> dict:
            ids = torch.tensor([prompt + generated], device=self._device)
            return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        return inputs

    def _run(self, inputs_for: Callable[[list[int]], dict], prompt_tokens: int, params: GenerationParams,
             cancel: threading.Event, stats: StreamStats,
             shorter: Callable[[], tuple[Callable[[list[int]], dict], int]] | None) -> Iterator[str]:
        started = time.perf_counter()
        stats.prompt_tokens = prompt_tokens
        decoder, stops = IncrementalDecoder(self.codec.decode), StopMatcher(params.stop)
        stats.token_ids = decoder.ids
        retried = False
        self._slots.acquire()
        try:
            constrained = (ConstrainedLogits(self.grammar.matcher(params.constraint), 0, tuple(self.codec.stops))
                           if params.constraint is not None else None)
            penalties = (PresenceFrequencyPenalty(params.presence_penalty, params.frequency_penalty)
                         if params.penalised else None)
            while True:
                done = len(decoder.ids)
                attempt = replace(params, max_new_tokens=params.max_new_tokens - done,
                                  min_new_tokens=max(0, params.min_new_tokens - done))
                sink: queue.Queue = queue.Queue()
                inputs = inputs_for(list(decoder.ids))
                # logprobs are the model's own (before the grammar masks tokens out), as vLLM reports them
                processors: list = [LogprobRecorder(sink)] if params.logprobs is not None else []
                if penalties is not None:
                    penalties.restart_at(inputs["input_ids"].shape[1] - done)
                    processors.append(penalties)
                if constrained is not None:  # tokens already generated were consumed by the grammar
                    constrained.restart_at(inputs["input_ids"].shape[1])
                    processors.append(constrained)
                worker = threading.Thread(target=self._generate, daemon=True, name="generate",
                                          args=(inputs, attempt, cancel, sink, processors))
                worker.start()
                try:
                    error = yield from self._consume(sink, decoder, stops, cancel, stats, started, params.logprobs)
                finally:
                    if worker.is_alive():
                        cancel.set()
                    worker.join()
                if error is None:
                    break
                if not is_out_of_memory(error):
                    stats.finish_reason = "error"
                    raise GenerationError(f"generation failed: {error}") from error
                # The failed attempt's frames hold its KV cache and activations: cut them, then collect.
                forget(error)
                release()
                if retried or shorter is None:
                    stats.finish_reason = "error"
                    raise GenerationOutOfMemory("ran out of memory" + (" again with a shorter context" if retried else "")
                                          + ": shorten the conversation or lower the reply length") from error
                retried = True
                inputs_for, extra = shorter()
                stats.dropped_turns += extra
                stats.notices.append(f"ran out of memory; retried with a shorter context ({extra} more turn(s) left out)")
            tail = stops.feed(decoder.flush()) + stops.flush()
            if tail:
                yield tail
            if not stats.finish_reason:
                ended = decoder.ids and decoder.ids[-1] in self.codec.stops
                stats.finish_reason = "stop" if ended or len(decoder.ids) < params.max_new_tokens else "length"
        except GeneratorExit:
            cancel.set()
            stats.finish_reason = stats.finish_reason or "cancelled"
            raise
        finally:
            self._slots.release()
            stats.seconds = time.perf_counter() - started

    def _consume(self, sink: queue.Queue, decoder: IncrementalDecoder, stops: StopMatcher,
                 cancel: threading.Event, stats: StreamStats, started: float, top_logprobs: int | None = None):
        """Yield text from the worker's tokens; return the worker's exception, or None when it ended."""
        scores = None  # the log-softmax of the step whose token comes next
        while True:
            kind, value = sink.get()
            if kind == "error":
                return value
            if kind == "scores":
                scores = value
                continue
            if scores is not None:
                stats.logprobs += [describe(self.codec.tokenizer, scores, i, top_logprobs or 0)
                                   for i in value if i not in self.codec.stops]
                scores = None
            if kind == "end":
                if cancel.is_set() and not stops.stopped:
                    stats.finish_reason = "cancelled"
                return None
            if cancel.is_set():
                continue  # tokens the worker queued before it saw the cancel: Stop means no more text
            if stats.first_token_seconds is None:
                stats.first_token_seconds = time.perf_counter() - started
            piece = stops.feed(decoder.push(value))
            stats.completion_tokens = self.codec.reply_tokens(decoder.ids)
            if stops.stopped:
                cancel.set()
                stats.finish_reason = "stop"
            if piece:
                yield piece

    def _shorter_prompt(self, messages: list[dict]) -> tuple[list[int], int]:
        """Half the prompt budget, for the one retry after an out-of-memory error."""
        budget = max(16, len(encode_chat(self.codec, messages)) // 2)
        try:
            kept, dropped = trim_history(messages, self.prompt_counter(), max_turns=10 ** 6,
                                         max_prompt_tokens=budget)
        except PromptTooLong:
            kept, dropped = messages, 0
        return encode_chat(self.codec, kept), dropped

    def _generate(self, inputs: dict, params: GenerationParams, cancel: threading.Event,
                  sink: queue.Queue, processors: list | None = None) -> None:
        try:
            if params.max_new_tokens <= 0 or cancel.is_set():
                sink.put(("end", None))
                return
            if params.seed is not None:
                torch.manual_seed(params.seed)
            from transformers import LogitsProcessorList, StoppingCriteriaList

            with torch.inference_mode():
                self.model.generate(**inputs, streamer=TokenQueueStreamer(sink), pad_token_id=self.codec.eos,
                                    eos_token_id=list(self.codec.stops),
                                    stopping_criteria=StoppingCriteriaList([CancelOnEvent(cancel)]),
                                    logits_processor=LogitsProcessorList(processors or []),
                                    **params.generate_kwargs())
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread, which decides
            sink.put(("error", exc))
