"""Many chat requests over one loaded model: continuous batching, or a fair FIFO queue.

Two schedulers with the same `.stream(messages, params, cancel) -> ChatStream` as Generator:

- ContinuousBatcher: transformers' continuous batching (`model.init_continuous_batching`). Every
  decode step runs all active requests as one batch over a paged KV cache, so 8 clients cost far less
  than 8 times one. The cache is sized EXPLICITLY (`size_cache`): transformers' default would take
  60 % of system RAM on a CPU. Per request it honours temperature, top_p, top_k, a minimum length, a
  seed, the repetition, presence and frequency penalties, logprobs (each token's top alternatives from
  the row's own logits, the distribution the plain path reports) and a JSON schema or a forced tool call
  (the row's own llguidance mask at each step) (engine/serving/sampling.py); greedy requests take their
  argmax there, and every end token of the folder ends a reply, as in `generate`. A seeded row draws with
  its own generator: the same seed gives the same reply alone or beside others (up to a flip where the
  batch's rounding swaps the two leading tokens), though not the plain path's reply for that seed. What
  the batch cannot do goes to the plain path, one request at a time, each feature with its reason
  (`plain_path_reasons`, from PLAIN_PATH and ASYNC_PLAIN): seeds, penalties, logprobs, JSON schemas and
  tools where transformers batches asynchronously, replays CUDA graphs or compiles the step (each needs
  a handover on the batching thread from a step's layout to its forward); greedy requests when
  engine.batch_greedy is false (the plain path is exact, equal to `generate`). An out-of-memory error
  before the first token retries the request alone on the plain path (which shortens the context if
  needed; not a tools request, whose reply is read for calls); the batching thread restarts by itself
  after a fatal error.
- QueuedGenerator: the plain Generator behind a strict first-come-first-served queue of `slots`.
  Used where continuous batching cannot run or was measured to change the answers: a quantized
  (bitsandbytes) rung whose measured decision (engine/serving/batch_criterion.py, written by
  bench/quantized_batching.py: batching must move the answers by under a tenth of what the quantization
  does) is not "batches", or any quantized model when that file is missing; attention implementations it
  does not support; models without `init_continuous_batching`.

Both share one FifoSlots, so /health's active and waiting counts are the same whichever path runs,
and both refuse new work with EngineBusy once `max_waiting` requests wait (the API answers 503 with
Retry-After). `choose_path` picks continuous batching wherever it can run, because the benchmark
(bench/bench_serving.py, 2-core CPU, bench-size demo model, 8 streaming clients against 1) measured
4.01x (bf16) and 3.49x (fp32) for it against 1.09x and 1.49x for the queue over plain `generate`.
engine.batching = queue | continuous in config.json overrides the choice.
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import uuid
import weakref
from dataclasses import dataclass, field, fields, replace
from types import MappingProxyType
from typing import Any, Callable, Iterator, Mapping, Sequence

from engine import hf_bridge
from engine.serving.admission import WaitEstimator
from engine.serving.batch_criterion import measured_decision
from engine.prompting.codec import TextCodec
from engine.loading.memory import release
from engine.serving.logprobs import describe
from engine.serving.sampling import RowExtras, batch_sampler
from engine.serving.generation import ChatStream, GenerationParams, Generator, Sink, StreamStats, cancelled_stream
from engine.errors import GenerationError
from engine.prompting.textstream import IncrementalDecoder, StopMatcher
from engine.serving.zeroed import give_back_zero_pages
from engine.errors import EngineBusy, GenerationOutOfMemory

log = logging.getLogger(__name__)
POLL_SECONDS = 0.05          # how often a waiting request looks at its cancel event
WATCH_SECONDS = 1.0          # how often a relayed reply's thread looks at the batching thread once tokens flow
PATHS = ("continuous", "queue")


@dataclass(frozen=True)
class LoadStats:
    path: str          # continuous | queue | remote
    slots: int         # requests generated at once
    active: int        # requests generating now
    waiting: int       # requests waiting for a slot
    max_waiting: int
    served: int        # requests finished since start
    expected_wait_s: float = 0.0       # a new request's wait at the measured pace (0: a slot is free)
    max_wait_s: float | None = None    # longer expected waits are refused at once (server.max_wait_s)
    plain_path: Mapping[str, str] = field(default_factory=dict)   # feature -> why it is served one at a time

    def to_dict(self) -> dict:
        """The queue's numbers; `plain_path` is about request shapes and is reported on its own (/health)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "plain_path"}


class FifoSlots:
    """At most `slots` holders; waiters get a slot strictly in arrival order (a freed slot is handed over)."""

    def __init__(self, slots: int, max_waiting: int = 64, max_wait_s: float | None = None):
        self.slots, self.max_waiting = slots, max_waiting
        self.admission = WaitEstimator(max_wait_s)   # server.max_wait_s: refuse what would wait longer
        self._lock = threading.Lock()
        self._waiters: collections.deque[threading.Event] = collections.deque()
        self._active = 0
        self._served = 0

    def check_room(self) -> None:
        """Raise EngineBusy when the queue is full, or the expected wait is over max_wait_s, before any work."""
        with self._lock:
            full, waiting = self._active >= self.slots, len(self._waiters)
            if full and waiting >= self.max_waiting:
                raise EngineBusy(f"the server is busy: {self._active} requests generating and "
                                 f"{waiting} waiting; retry shortly")
            verdict = self.admission.judge(waiting, full)
        if not verdict.admit:
            raise EngineBusy(f"the server is busy: this request would wait about {verdict.expected_wait_s:.0f} s "
                             f"({waiting} waiting, {self.slots} generating), more than the "
                             f"{self.admission.max_wait_s:g} s allowed; retry in {verdict.retry_after_s} s",
                             verdict.retry_after_s)

    def acquire(self, cancel: threading.Event) -> bool:
        """Wait for a slot; False if `cancel` was set first (then nothing is held)."""
        with self._lock:
            if self._active < self.slots and not self._waiters:
                self._active += 1
                if self._active >= self.slots:
                    self.admission.became_full()
                return True
            self.admission.became_full()
            turn = threading.Event()
            self._waiters.append(turn)
        while not turn.wait(POLL_SECONDS):
            if cancel.is_set():
                with self._lock:
                    if not turn.is_set():
                        self._waiters.remove(turn)
                        return False
                break  # the slot was handed over while we gave up: give it back
        if cancel.is_set():
            self.release()
            return False
        return True

    def release(self) -> None:
        with self._lock:
            self._served += 1
            self.admission.finished(still_full=bool(self._waiters),
                                    drained=not self._waiters and self._active == 1)
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes on; active stays the same
            else:
                self._active -= 1

    def stats(self, path: str) -> LoadStats:
        with self._lock:
            waiting, full = len(self._waiters), self._active >= self.slots
            return LoadStats(path, self.slots, self._active, waiting, self.max_waiting, self._served,
                             round(self.admission.expected_wait(waiting, full), 2), self.admission.max_wait_s)


class QueuedGenerator:
    """The plain Generator behind FifoSlots: fair order, cancel while waiting, slot freed in `finally`."""

    path = "queue"

    def __init__(self, generator: Generator, slots: FifoSlots):
        self.generator, self.slots = generator, slots

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None) -> ChatStream:
        self.slots.check_room()
        cancel = cancel or threading.Event()
        inner = self.generator.stream(messages, params, cancel)  # validates now: errors before any text
        return ChatStream(self._run(inner, cancel), inner.stats)

    def _run(self, inner: ChatStream, cancel: threading.Event) -> Iterator[str]:
        if not self.slots.acquire(cancel):
            inner.stats.finish_reason = "cancelled"
            return
        try:
            yield from inner
        finally:
            inner.close()
            self.slots.release()

    def stats(self) -> LoadStats:
        return self.slots.stats(self.path)

    def close(self) -> None:
        """Nothing runs in the background on this path."""


@dataclass(frozen=True)
class CacheSizing:
    """How big the paged KV cache is, and why: every number is chosen here, none by transformers."""
    page_size: int
    num_blocks: int
    max_batch_tokens: int
    max_requests: int
    bytes_per_token: int
    budget_bytes: int

    @property
    def cache_tokens(self) -> int:
        return self.num_blocks * self.page_size

    @property
    def cache_bytes(self) -> int:
        return self.cache_tokens * self.bytes_per_token

    def describe(self) -> str:
        return (f"paged KV cache {self.cache_tokens} tokens ({self.cache_bytes / 2**20:.0f} MiB, budget "
                f"{self.budget_bytes / 2**20:.0f} MiB), {self.max_requests} requests per batch, "
                f"{self.max_batch_tokens} tokens per step")


def kv_bytes_per_token(model_config: Any, dtype_bytes: int) -> int:
    cfg = model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config
    heads = cfg.num_attention_heads
    kv_heads = getattr(cfg, "num_key_value_heads", None) or heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // heads
    return 2 * cfg.num_hidden_layers * kv_heads * head_dim * dtype_bytes


def size_cache(model_config: Any, dtype_bytes: int, *, slots: int, context_tokens: int, budget_bytes: int,
               page_size: int = 256, max_batch_tokens: int = 512) -> CacheSizing | None:
    """Enough cache for `slots` full-context requests, capped by `budget_bytes`; None if not one request fits.

    max_batch_tokens bounds a step (prefill is chunked to it) and with it the attention mask, which
    transformers sizes max_batch_tokens x (cache tokens + max_batch_tokens).
    """
    per_token = kv_bytes_per_token(model_config, dtype_bytes)
    wanted = slots * context_tokens
    fits = budget_bytes // per_token
    tokens = min(wanted, fits)
    if tokens < min(context_tokens, 4 * page_size):
        return None
    num_blocks = max(1, tokens // page_size)
    return CacheSizing(page_size=page_size, num_blocks=num_blocks, max_batch_tokens=max_batch_tokens,
                       max_requests=slots, bytes_per_token=per_token, budget_bytes=budget_bytes)


def kv_budget_bytes(model: Any, headroom: float, budget_bytes: int | None = None) -> int:
    """Memory the KV cache may take: `headroom` of the GPU budget (or total GPU memory), or of available RAM."""
    import psutil
    import torch

    device = next(model.parameters()).device
    if device.type == "cuda":
        total = budget_bytes or torch.cuda.get_device_properties(device).total_memory
        free, _ = torch.cuda.mem_get_info(device)
        return int(min(total * headroom, free * 0.8))
    return int(psutil.virtual_memory().available * headroom)


def unsupported_reason(model: Any) -> str | None:
    """Why continuous batching cannot run on this model, or None when it can."""
    if not hasattr(model, "init_continuous_batching"):
        return f"{type(model).__name__} has no continuous batching"
    quantizer = getattr(model, "hf_quantizer", None)
    if getattr(model, "is_quantized", False) or quantizer is not None:
        # It runs, and fast; whether it changes the answers is measured per rung (BATCH_CRITERION).
        method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", "bitsandbytes")
        method = str(getattr(method, "value", method))      # transformers' QuantizationMethod enum
        bits = ("4-bit" if getattr(model, "is_loaded_in_4bit", False) else
                "8-bit" if getattr(model, "is_loaded_in_8bit", False) or quantizer is None else None)
        decision = measured_decision(bits if method == "bitsandbytes" else None, method)
        if decision.reason:
            return decision.reason
    attn = hf_bridge.attn_implementation(model.config)
    if not (attn in ("sdpa", "eager") or "flash" in attn):
        return f"attention implementation {attn!r} is not supported by continuous batching"
    return None


def choose_path(model: Any, requested: str | None = None) -> tuple[str, str]:
    """(path, why). `requested` (engine.batching): auto | continuous | queue."""
    requested = (requested or "auto").strip().lower()
    if requested not in ("auto", *PATHS):
        raise ValueError(f"engine.batching={requested!r}: choose auto, continuous or queue")
    reason = unsupported_reason(model)
    if requested == "queue":
        return "queue", "engine.batching is queue"
    if reason:
        return "queue", reason
    if requested == "continuous":
        return "continuous", "engine.batching is continuous"
    why = "continuous batching (measured 3.5-4x the tokens/s of one client with 8; bench serving)"
    if getattr(model, "is_quantized", False) or getattr(model, "hf_quantizer", None) is not None:
        why += ("; its answers change no more than rounding when several people ask at once "
                "(measured: bench.quantized_batching)")
    return "continuous", why


def _synchronous(cb_config: Any) -> bool:
    """transformers lays each step out after the previous one's tokens are known, and runs our processors' Python
    at every step, in order: no asynchronous batching, no CUDA graph, no torch.compile (a resolved
    ContinuousBatchingConfig)."""
    graphs = cb_config.use_cuda_graph
    graphs = any(graphs) if isinstance(graphs, (tuple, list)) else bool(graphs)
    compiled = (getattr(cb_config, "varlen_compile_config", None) is not None
                or getattr(cb_config, "decode_compile_config", None) is not None)
    return not cb_config.use_async_batching and not graphs and not compiled


def _stop_if_alive(manager_ref: "weakref.ref[Any]") -> None:
    manager = manager_ref()
    if manager is not None:
        _stop_manager(manager)


def _stop_manager(manager: Any) -> None:
    if manager.is_running():
        # Ask first, then wake the thread (it may be asleep on _IdleWake with no timeout), then wait for it.
        status = manager.background_thread_status
        status.request_stop(status.HARD_STOP, manager.distributed_helper.global_rank)
        hf_bridge.wake_batching_loop(manager)
        manager.stop(block=True, timeout=10, hard_stop=True)


class _IdleWake(threading.Event):
    """transformers' batching thread waits on `_wake_up_loop` with a 0.1 s timeout whenever it has nothing
    to step: ten wake-ups a second with no client. While nothing is queued, pending, cancelling or stopping,
    this waits until set instead; add_request, cancel_request, pause and _stop_manager all set it."""

    def __init__(self, manager: Any):
        super().__init__()
        self._manager = weakref.ref(manager)

    def wait(self, timeout: float | None = None) -> bool:
        manager = self._manager()
        if timeout is not None and manager is not None and _nothing_to_do(manager):
            timeout = None
        return super().wait(timeout)


def _nothing_to_do(manager: Any) -> bool:
    """Called from the batching thread itself, between steps."""
    processor, status = manager.batch_processor, manager.background_thread_status
    return (processor is not None and manager.input_queue.empty() and manager.cancel_queue.empty()
            and not processor.has_pending_requests() and status.local_status == status.DONT_STOP)


def _is_oom_text(error: str) -> bool:
    text = error.lower()
    return "out of memory" in text or "can't allocate memory" in text


def _with_lazy_cache(make: Any) -> Any:
    """The manager's batch-processor factory (run by the batching thread at each start), with the new
    cache's zero pages handed back at once: RAM for the cache as it fills (engine/serving/zeroed.py)."""
    def make_with_lazy_cache() -> Any:
        processor = make()
        give_back_zero_pages(processor.cache.cache_tensor)
        return processor
    return make_with_lazy_cache


def one_forward_at_a_time(model: Any) -> None:
    """Let only one forward pass run on `model` at a time (installed once per model).

    transformers' forward wrapper sets `config.is_causal` for the length of a call and puts it back after
    (utils/generic.py): the batching thread passes is_causal=False, so a plain `generate` overlapping it
    read False, built a non-causal prefill mask and, restoring in the wrong order, left False in the config
    for good: every later plain reply came from a model that attends to the future (tests/test_batching.py).
    The plain path (what plain_path_reasons names; greedy when engine.batch_greedy is false) and the batch
    share the model, so their forwards take turns; on one CPU or GPU they compete for the same cores anyway."""
    if getattr(model, "_one_forward_lock", None) is not None:
        return
    lock = threading.RLock()
    model._one_forward_lock = lock

    def take_turn(*_) -> None:        # a pre-hook that returns something would replace the inputs
        lock.acquire()

    def give_turn(*_) -> None:
        lock.release()

    model.register_forward_pre_hook(take_turn)
    model.register_forward_hook(give_turn, always_call=True)   # also when forward raises


_END = object()     # the last item of a pulled reply's inbox


class _Reply:
    """One batched request's outputs, taken on the batching thread as they arrive: decoded, cut at stop
    strings, counted, and each new piece handed to `sink`. Once the reply has ended (finished, stopped,
    failed or cancelled), `ended` is set, `on_end` called, and nothing more is taken."""

    def __init__(self, codec: TextCodec, params: GenerationParams, stats: StreamStats, cancel: threading.Event,
                 sink: Sink, on_end: Callable[[], None] | None = None):
        self.codec, self.stats, self.cancel, self.sink, self._on_end = codec, stats, cancel, sink, on_end
        self.decoder, self.stops = IncrementalDecoder(codec.decode), StopMatcher(params.stop)
        stats.token_ids = self.decoder.ids
        self.top_logprobs = params.logprobs
        # The row's log-softmax at each of its steps (LogprobRows, in the step's forward), taken here in order
        # with the step's token, both on the batching thread.
        self.scores: collections.deque = collections.deque()
        self.started = time.perf_counter()
        self.finished = False      # the manager is done with the request (nothing to cancel)
        self.failure: str | None = None
        self.ended = threading.Event()
        self._lock = threading.Lock()
        self._closed = False

    def take(self, out: Any) -> None:
        """The handler transformers' output router calls for this request (on the batching thread)."""
        with self._lock:
            if self._closed:
                return
            try:
                self._take(out)
            except Exception as exc:  # noqa: BLE001 - raised in the request's thread, not the batching thread's
                log.exception("a batched reply failed on the batching thread")
                self.failure = str(exc) or type(exc).__name__
                self._end()

    def _take(self, out: Any) -> None:
        if out.error:
            self.finished, self.failure = True, out.error
            return self._end()
        self.finished = out.is_finished()
        new = out.generated_tokens[len(self.decoder.ids):]
        if self.top_logprobs is not None:
            for token in new:
                row = self.scores.popleft() if self.scores else None
                if row is not None and token not in self.codec.stops:     # as the plain path reports them
                    self.stats.logprobs.append(describe(self.codec.tokenizer, row, token, self.top_logprobs))
        if new:
            if self.stats.first_token_seconds is None:
                self.stats.first_token_seconds = time.perf_counter() - self.started
            piece = self.stops.feed(self.decoder.push(new))
            self.stats.completion_tokens = self.codec.reply_tokens(self.decoder.ids)   # live count
            if piece:
                self.sink(piece)
            if self.stops.stopped:
                self.stats.finish_reason = "stop"
                return self._end()
        if self.cancel.is_set():
            self.stats.finish_reason = "cancelled"
            return self._end()
        if self.finished:
            self._end()

    def _end(self) -> None:
        self._closed = True
        self.ended.set()
        if self._on_end is not None:
            self._on_end()

    def close(self) -> None:
        """From the request's thread: take nothing more (returns once a take under way is done)."""
        with self._lock:
            self._closed = True


# What a request may ask for that no batch does: such a request takes the plain path, one at a time (feature ->
# why, as /health and the notes may show it). Nothing today: ContinuousBatcher.plain_path_reasons adds what
# depends on the model and the config.
PLAIN_PATH: Mapping[str, str] = MappingProxyType({})
# Where transformers batches asynchronously (it lays a step out before the last one's tokens are known), replays
# CUDA graphs or compiles the step (neither runs our processors' Python at each step), what needs a handover from
# a step's layout to its forward (_synchronous) stays on the plain path.
ASYNC_PLAIN = MappingProxyType({
    "seed": "a seeded row draws with its own generator, handed to the step on the batching thread, which "
            "asynchronous batching, CUDA graphs and torch.compile do not keep in order",
    "penalties": "repetition, presence and frequency penalties need each row's token history, handed to the step "
                 "on the batching thread, which asynchronous batching, CUDA graphs and torch.compile do not keep "
                 "in order",
    "logprobs": "a row's log-probabilities are handed from the step's forward to its reply on the batching thread, "
                "which asynchronous batching, CUDA graphs and torch.compile do not keep in order",
    "response_format": "a JSON-schema row's grammar must see its last token before its next mask, handed to the "
                       "step on the batching thread, which asynchronous batching, CUDA graphs and torch.compile do "
                       "not keep in order",
    "tools": "a forced tool call's grammar must see its last token before its next mask, handed to the step on "
             "the batching thread, which asynchronous batching, CUDA graphs and torch.compile do not keep in order",
})
GREEDY_EXACT = "engine.batch_greedy is false: greedy requests take the plain path, exact (equal to generate)"


def request_features(params: GenerationParams) -> list[str]:
    """The features a request uses that some batch may lack, by the names PLAIN_PATH uses."""
    sampled = params.temperature > 0        # a greedy request's seed and top_k change nothing
    used = {"greedy": not sampled, "seed": sampled and params.seed is not None,
            "top_k": sampled and params.top_k > 0, "penalties": params.repetition_penalty != 1.0 or params.penalised,
            "logprobs": params.logprobs is not None, "response_format": params.constraint is not None,
            "tools": params.tools is not None}
    return [name for name, on in used.items() if on]


class ContinuousBatcher:
    """Requests share one model through transformers' continuous batching; see the module docstring."""

    path = "continuous"

    def __init__(self, model: Any, codec: TextCodec, generator: Generator, sizing: CacheSizing, slots: FifoSlots,
                 batch_greedy: bool = True):
        from transformers import GenerationConfig
        from transformers.generation.configuration_utils import ContinuousBatchingConfig

        self.model, self.codec, self.generator, self.sizing, self.slots = model, codec, generator, sizing, slots
        self.batch_greedy = batch_greedy      # engine.batch_greedy: greedy requests join the batch
        one_forward_at_a_time(model)
        self.max_context = generator.max_context
        self.fallback = QueuedGenerator(generator, slots)  # what the batch does not do (plain_path_reasons)
        # The batch's argmax reads the token engine/serving/sampling.py drew (penalties, temperature, top_k, top_p
        # and the seeded draw per request, temperature 0 = greedy).
        gen = GenerationConfig(do_sample=False, eos_token_id=codec.eos, pad_token_id=codec.eos, max_new_tokens=512)
        cb = ContinuousBatchingConfig(
            page_size=sizing.page_size, num_blocks=sizing.num_blocks, max_batch_tokens=sizing.max_batch_tokens,
            max_requests_per_batch=sizing.max_requests, per_request_processors=True,
            auto_switch_to_flash=False,          # keep the model usable by plain generate (fallback, vision)
            allow_block_sharing=False, max_memory_percent=0.9, cpu_offload_space=0.0)
        self._manager = model.init_continuous_batching(generation_config=gen, continuous_batching_config=cb)
        hf_bridge.wrap_batch_processor_factory(self._manager, _with_lazy_cache)
        synchronous = _synchronous(self._manager.continuous_batching_config)   # as transformers resolved it
        # A row's logprobs sink and grammar matcher, by request id (engine/serving/sampling.RowExtras): set by
        # _run before add_request, read by the processors on the batching thread, dropped when the reply ends.
        self._rows: dict[str, RowExtras] = {}
        # read when the batching thread starts
        self._manager.logit_processor = batch_sampler(codec.stops, seeds=synchronous, top_k=True,
                                                      penalties=synchronous,
                                                      rows=self._rows if synchronous else None)
        self.plain_path_reasons: Mapping[str, str] = MappingProxyType({
            **PLAIN_PATH, **({} if synchronous else ASYNC_PLAIN), **({} if batch_greedy else {"greedy": GREEDY_EXACT})})
        hf_bridge.replace_wake_event(self._manager, _IdleWake(self._manager))  # idle means idle: no 10 Hz polling
        self._start_lock = threading.Lock()
        self._ensure_running()
        # transformers' batching thread is not a daemon: stop it when this batcher is collected, and at exit
        # before the interpreter waits for non-daemon threads (plain atexit would run after that wait).
        # The exit hook holds the manager weakly: a closed engine (a model switch) must not stay alive through it.
        weakref.finalize(self, _stop_manager, self._manager)
        threading._register_atexit(_stop_if_alive, weakref.ref(self._manager))

    def _ensure_running(self) -> None:
        """Start the batching thread, or restart it after a fatal error (e.g. out of memory) stopped it."""
        with self._start_lock:
            if not self._manager.is_running():
                self._manager.start()

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None) -> ChatStream:
        if self.needs_plain_path(params):
            return self.fallback.stream(messages, params, cancel)
        self.slots.check_room()
        max_new = min(params.max_new_tokens, self.max_context - 16)
        params = replace(params, max_new_tokens=max_new)
        if params.tools is not None:
            return self._stream_tools(messages, params, cancel or threading.Event())
        matcher = self._matcher(params)              # an unusable schema fails now, before any text
        prepared = self.generator.prepare(messages, params, cancel)
        if prepared is None:
            return cancelled_stream()
        kept, prompt, stats = prepared
        cancel = cancel or threading.Event()
        return ChatStream(lambda sink: self._run(kept, prompt, params, cancel, stats, sink, matcher), stats)

    def _stream_tools(self, messages: Sequence[dict], params: GenerationParams, cancel: threading.Event) -> ChatStream:
        """A request with tools in the batch: the plain path's tool prompt and reader (Generator.prepare_tools),
        a forced call's grammar as the row's mask. Read pulled: the reader holds a call's text until parsed."""
        prompt, constrained, read = self.generator.prepare_tools(messages, params)
        matcher = self._matcher(constrained)
        stats = StreamStats()
        return ChatStream(lambda _sink: read(self._run(None, prompt, params, cancel, stats, None, matcher), stats),
                          stats)

    def _matcher(self, params: GenerationParams) -> Any:
        """A fresh llguidance matcher for the request's JSON constraint (ConstraintError if it cannot compile)."""
        return None if params.constraint is None else self.generator.grammar.matcher(params.constraint)

    def needs_plain_path(self, params: GenerationParams) -> bool:
        """Whether the request uses something the batch does not do (plain_path_reasons): seeds, penalties,
        logprobs, a JSON constraint and tools where batching is not synchronous; and greedy requests when
        engine.batch_greedy is false, which keeps them exact: in the batch (its sampler takes a temperature-0
        row's argmax) identical greedy requests sent together got different replies on the tiny bf16 model,
        since the batch's rounding depends on what else is in each step."""
        return bool(self.plain_path_features(params))

    def plain_path_features(self, params: GenerationParams) -> list[str]:
        """The request's features that send it to the plain path; their reasons are in plain_path_reasons."""
        return [name for name in request_features(params) if name in self.plain_path_reasons]

    @staticmethod
    def _sampling(params: GenerationParams) -> dict:
        """The request's kwargs for the batch's processors (engine/serving/sampling.batch_sampler)."""
        greedy = params.temperature <= 0    # top_p 0 too: a step of greedy rows only skips the sampler
        kw: dict[str, Any] = {"temperature": max(0.0, float(params.temperature)),
                              "top_p": 0.0 if greedy else float(params.top_p)}
        if params.least_new_tokens:
            kw["min_new_tokens"] = params.least_new_tokens
        if not greedy and params.seed is not None:
            kw["seed"] = int(params.seed)
        if not greedy and params.top_k > 0:
            kw["top_k"] = int(params.top_k)
        if params.repetition_penalty != 1.0:
            kw["repetition_penalty"] = float(params.repetition_penalty)
        if params.presence_penalty:
            kw["presence_penalty"] = float(params.presence_penalty)
        if params.frequency_penalty:
            kw["frequency_penalty"] = float(params.frequency_penalty)
        return kw

    def _run(self, kept: list[dict] | None, prompt: list[int], params: GenerationParams, cancel: threading.Event,
             stats: StreamStats, sink: Sink | None = None, matcher: Any = None) -> Iterator[str]:
        """The request in the batch. Its tokens are decoded on the batching thread as they come (_Reply);
        with a `sink` the pieces go straight to it from there and this thread only waits for the end,
        without one they pass through a queue and are yielded here. `matcher` masks the row (GrammarRows);
        params.logprobs has the row's log-softmax handed to the reply (LogprobRows). `kept`: the messages an
        out-of-memory error before the first token retries alone with (None: no retry, the error stands; a
        tools request, whose reply the caller reads for calls)."""
        stats.prompt_tokens = len(prompt)
        if not self.slots.acquire(cancel):
            stats.finish_reason = "cancelled"
            return
        inbox: queue.SimpleQueue | None = queue.SimpleQueue() if sink is None else None
        reply = _Reply(self.codec, params, stats, cancel, sink or inbox.put,
                       on_end=(lambda: inbox.put(_END)) if inbox is not None else None)
        rid = f"chat-{uuid.uuid4().hex}"
        alone = False        # handed to the plain path, whose stats are the request's
        if matcher is not None or params.logprobs is not None:
            self._rows[rid] = RowExtras(scores=reply.scores.append if params.logprobs is not None else None,
                                        matcher=matcher)
        try:
            self._ensure_running()
            hf_bridge.register_result_handler(self._manager, rid, reply.take)  # called on the batching thread
            added = self._manager.add_request(prompt, request_id=rid, max_new_tokens=params.max_new_tokens,
                                              streaming=True, eos_token_id=list(self.codec.stops),
                                              **self._sampling(params))
            if added is None:
                reply.finished = True
                stats.finish_reason = "error"
                raise GenerationError("generation failed: the batching thread is stopping; retry the request")
            yield from self._follow(reply, inbox)
            reply.close()
            if reply.failure is not None:
                if _is_oom_text(reply.failure) and not reply.decoder.ids and kept is not None:
                    # The plain path retries once with a shorter context; we keep holding our slot.
                    release()
                    stats.notices.append("ran out of memory in the shared batch; generated alone instead")
                    alone = True
                    yield from self._alone(kept, params, cancel, stats)
                    return
                stats.finish_reason = "error"
                failed = GenerationOutOfMemory if _is_oom_text(reply.failure) else GenerationError
                raise failed(f"generation failed: {reply.failure}")
            if stats.finish_reason != "cancelled":
                tail = reply.stops.feed(reply.decoder.flush()) + reply.stops.flush()
                if tail:
                    yield tail
            if not stats.finish_reason:
                ids = reply.decoder.ids
                ended = bool(ids) and ids[-1] in self.codec.stops
                stats.finish_reason = "stop" if ended or len(ids) < params.max_new_tokens else "length"
        except GeneratorExit:
            stats.finish_reason = stats.finish_reason or "cancelled"
            raise
        finally:
            reply.close()
            self._rows.pop(rid, None)
            hf_bridge.unregister_result_handler(self._manager, rid)
            if not reply.finished:
                self._manager.cancel_request(rid)  # frees its cache blocks at the next step
            self.slots.release()
            if not alone:           # completion_tokens is kept live by _Reply
                stats.seconds = time.perf_counter() - reply.started

    def _follow(self, reply: "_Reply", inbox: queue.SimpleQueue | None) -> Iterator[str]:
        """Until the reply ends: its pieces from `inbox` (None: they went to a sink), and every POLL_SECONDS
        (WATCH_SECONDS for a relayed reply under way) a look at the cancel event and the batching thread."""
        while True:
            if inbox is None:   # once tokens flow, take() sees cancel at each: no need to wake 20 times a second
                if reply.ended.wait(POLL_SECONDS if reply.stats.first_token_seconds is None else WATCH_SECONDS):
                    return
            else:
                try:
                    piece = inbox.get(timeout=POLL_SECONDS)
                except queue.Empty:
                    pass
                else:
                    if piece is _END:
                        return
                    yield piece
                    continue
            if reply.cancel.is_set():
                reply.close()        # no take() under way past this point: the reason stays ours
                reply.stats.finish_reason = reply.stats.finish_reason or "cancelled"
                return
            if not self._manager.is_running():
                reply.stats.finish_reason = "error"
                raise GenerationError("generation failed: the batching thread stopped; retry the request")

    def _alone(self, kept: list[dict], params: GenerationParams, cancel: threading.Event,
               stats: StreamStats) -> Iterator[str]:
        inner = self.generator.stream(kept, params, cancel)
        try:
            yield from inner
        finally:
            inner.close()
            notices = stats.notices + inner.stats.notices
            stats.__dict__.update(inner.stats.__dict__)
            stats.notices = notices

    def stats(self) -> LoadStats:
        return replace(self.slots.stats(self.path), plain_path=self.plain_path_reasons)

    def idle(self) -> bool:
        """No request in the batch, queued, or still being cancelled."""
        processor = self._manager.batch_processor
        return self._manager.input_queue.empty() and (processor is None or not processor.has_pending_requests())

    def close(self) -> None:
        """Stop the batching thread at once and free the cache (the model stays loaded)."""
        _stop_manager(self._manager)


def build_scheduler(model: Any, codec: TextCodec, generator: Generator, *, slots: int, headroom: float,
                    budget_bytes: int | None = None, max_waiting: int = 64,
                    path: str | None = None,
                    batch_greedy: bool = True) -> tuple[ContinuousBatcher | QueuedGenerator, str]:
    """The scheduler for this model and why it was chosen (one line, shown in the load report)."""
    fifo = FifoSlots(slots, max_waiting)
    chosen, why = choose_path(model, path)
    if chosen == "continuous":
        dtype_bytes = next(model.parameters()).element_size()
        sizing = size_cache(model.config, dtype_bytes, slots=slots, context_tokens=generator.max_context,
                            budget_bytes=kv_budget_bytes(model, headroom, budget_bytes))
        if sizing is None:
            chosen, why = "queue", "not enough memory for a paged KV cache of one full-context request"
        else:
            batcher = ContinuousBatcher(model, codec, generator, sizing, fifo, batch_greedy)
            greedy = "greedy requests batched too" if batch_greedy else "greedy requests exact on the plain path"
            return batcher, f"{why}; {sizing.describe()}; {greedy}"
    return QueuedGenerator(generator, fifo), f"fair FIFO queue of {slots} slot(s): {why}"
