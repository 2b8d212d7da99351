"""ChatEngine: the chat model (loaded here, or a remote server), how it was had, and streaming over it.

Loading never leaves the app without a model: when the configured one cannot be had and
engine.demo_fallback is on, the demo model loads and LoadReport.notice says why and how to fix it.
With engine.backend = "openai" nothing loads here: requests stream from an OpenAI-compatible server.
Concurrent requests go through a scheduler (engine/serving/batching.py): continuous batching or a fair queue.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

from engine.adapters import AdapterInfo, AdapterRegistry
from engine.backend import ChatBackend
from engine.errors import AdapterError
from engine.serving.admission import Admission
from engine.serving.batching import LoadStats, build_scheduler, kv_budget_bytes
from engine.prompting.codec import TextCodec
from engine.errors import TemplateMissing
from config import EngineConfig
from engine.serving.generation import ChatStream, GenerationParams, Generator
from engine.loading.loader import LoadPlan, LoadReport, load_pretrained
from engine.errors import ModelLoadError
from engine.serving import zerogpu
from engine.loading.preflight import GiB, Concurrency, fixed_concurrency, size_concurrency
from engine.loading.sources import OFFLINE_DEMO, ModelSource, resolve_source
from engine.errors import SourceError

if TYPE_CHECKING:
    from transformers import PreTrainedModel

DEMO_NOTICE = "Demo model with random weights: replies are noise, not answers."
OFFLINE_NOTICE = ("Small offline model (SmolLM2-135M-Instruct, real weights), not the configured model: short, "
                  "often wrong answers. For the configured model set engine.model in config.json to its hub id "
                  "(with a connection), a local model folder or a .gguf file, and start without --demo.")


def demo_notice(source: ModelSource) -> str:
    return OFFLINE_NOTICE if source.model_id == f"demo:{OFFLINE_DEMO}" else DEMO_NOTICE


def load_plan(cfg: EngineConfig) -> LoadPlan:
    budget = int(cfg.max_gpu_memory * GiB) if cfg.max_gpu_memory is not None else None
    return LoadPlan(precision=cfg.precision, budget_bytes=budget, cpu_dtype=cfg.cpu_dtype,
                    context_tokens=cfg.max_context, headroom=cfg.kv_headroom,
                    # "auto" fills what the weights leave, so the rung must fit only one full-context request
                    concurrent=1 if cfg.max_concurrent == "auto" else cfg.max_concurrent)


def resolve_concurrency(cfg: EngineConfig, model: PreTrainedModel, context: int, plan: LoadPlan) -> Concurrency:
    """engine.max_concurrent for this loaded model: the configured number, or "auto" sized from the KV budget."""
    if cfg.max_concurrent != "auto":
        return fixed_concurrency(cfg.max_concurrent)
    on_gpu = next(model.parameters()).device.type == "cuda"
    where = "GPU after the weights" if on_gpu else f"{cfg.kv_headroom:.0%} of available RAM"
    return size_concurrency(model.config, context_tokens=context, dtype_bytes=model.dtype.itemsize, where=where,
                            kv_budget_bytes=kv_budget_bytes(model, cfg.kv_headroom, plan.budget_bytes))


@dataclass
class ChatEngine:
    model: PreTrainedModel | None   # None with a remote backend
    codec: TextCodec | None         # None with a remote backend
    report: LoadReport
    generator: Generator | None     # the plain single-request path; None with a remote backend
    scheduler: ChatBackend | None = None   # ContinuousBatcher, QueuedGenerator or RemoteChat; None on ZeroGPU
    max_context: int = 4096
    adapters: AdapterRegistry | None = None   # LoRA adapters for this base; None with a remote backend
    gpu_seconds: zerogpu.GpuSeconds = zerogpu.GpuSeconds()   # ZeroGPU duration asked per request
    concurrency: Concurrency = fixed_concurrency(1)           # engine.max_concurrent as resolved (auto: from memory)

    @property
    def model_id(self) -> str:
        return self.report.model_id

    @property
    def remote(self) -> bool:
        return self.model is None

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None, adapter: AdapterInfo | None = None) -> ChatStream:
        """Validate now (PromptError, PromptTooLong, EngineBusy raise here); text comes while iterating.
        `adapter`: a LoRA adapter already checked against this base (ChatService.request); None is the base."""
        def make() -> ChatStream:
            if self.scheduler is not None:
                return self.scheduler.stream(messages, params, cancel)
            return self.generator.stream(messages, params, cancel)

        if self.adapters is None:
            if adapter is not None:
                raise AdapterError("adapters need a model loaded here (engine.backend is openai)")
            return make()
        stream = self.adapters.gated(self.model, make, adapter)
        if self.scheduler is not None:
            return stream
        stream.close()  # validated here; it never started, so the text comes from the GPU call below
        # A threading.Event cannot be pickled into the ZeroGPU worker: there, Stop ends the relay only.
        return zerogpu.relay(self._gpu_pieces(list(messages), params, None if zerogpu.enabled() else cancel,
                                              adapter), stream.stats)

    def check_request(self, params: GenerationParams) -> None:
        """What a request constrains the reply with compiles (ConstraintError naming the parameter otherwise)."""
        if self.generator is not None:
            self.generator.check_request(params)

    def _pieces(self, messages: list[dict], params: GenerationParams, cancel: threading.Event | None,
                adapter: AdapterInfo | None):
        """Runs inside spaces.GPU on ZeroGPU (a forked worker: plain data in, text and stats out)."""
        yield from zerogpu.text_then_stats(
            self.adapters.gated(self.model, lambda: self.generator.stream(messages, params, cancel), adapter))

    def __post_init__(self) -> None:
        # Decorated once, before launch: ZeroGPU keeps one worker per decorated function and reports them at start.
        self._gpu_pieces = zerogpu.stream_on_gpu(self._pieces, lambda messages, params, *rest: self.gpu_seconds.tokens(
            params.max_new_tokens))

    def load_stats(self) -> LoadStats:
        """Requests generating and waiting now, and which path serves them (for /health)."""
        if self.scheduler is not None:
            return self.scheduler.stats()
        return LoadStats("plain", 0, 0, 0, 0, 0)

    def admit(self, admission: Admission) -> None:
        """Apply the server's admission limits to whichever queue serves this engine (called by load)."""
        if self.scheduler is not None:
            self.scheduler.slots.max_waiting = admission.max_waiting
            self.scheduler.slots.admission.max_wait_s = admission.max_wait_s

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.close()

    @classmethod
    def from_source(cls, source: ModelSource, cfg: EngineConfig, plan: LoadPlan | None = None,
                    *, batching: str | None = None) -> "ChatEngine":
        """Load the model; `batching` (auto | continuous | queue; default engine.batching) picks the scheduler."""
        from transformers import AutoModelForCausalLM

        plan = plan or load_plan(cfg)
        codec = cls.prompt_codec(source)   # before the weights: a folder we cannot prompt is refused in a second
        model, report = load_pretrained(AutoModelForCausalLM, source.folder, source.model_id, plan)
        report.demo, report.prompt_path = source.demo, codec.path
        report.random_weights = source.demo and demo_notice(source) == DEMO_NOTICE
        if source.demo:
            report.notice = " ".join(filter(None, [demo_notice(source), report.notice]))
        context = min(cfg.max_context, getattr(model.config, "max_position_embeddings", cfg.max_context))
        concurrency = resolve_concurrency(cfg, model, context, plan)
        generator = Generator(model, codec, max_context=context, slots=concurrency.slots)
        if zerogpu.enabled():  # a scheduler thread would run outside spaces.GPU, where ZeroGPU has no CUDA
            scheduler, why = None, "ZeroGPU: one request per spaces.GPU call"
        else:
            scheduler, why = build_scheduler(model, codec, generator, slots=concurrency.slots,
                                             headroom=cfg.kv_headroom, budget_bytes=plan.budget_bytes,
                                             path=batching or cfg.batching, batch_greedy=cfg.batch_greedy)
        report.reason = f"{report.reason}; serving: {why}"
        adapters = AdapterRegistry(cfg.adapters_dir, source.folder, source.model_id)
        return cls(model, codec, report, generator, scheduler, context, adapters, zerogpu.GpuSeconds.from_config(cfg),
                   concurrency)

    @staticmethod
    def prompt_codec(source: ModelSource) -> TextCodec:
        """The tokenizer and how prompts are built for `source`; SourceError (one line) when it has none we
        can use. Cheap: the start and a model switch (engine/switching.py) run it before any weights load."""
        from transformers import AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(source.folder), trust_remote_code=False)
            return TextCodec.load(source.folder, tokenizer)
        except TemplateMissing as exc:
            raise SourceError(str(exc)) from None
        except (OSError, ValueError, KeyError) as exc:
            raise SourceError(f"{source.model_id}: its tokenizer cannot be loaded ({type(exc).__name__})") from None

    @classmethod
    def load(cls, cfg: EngineConfig, *, demo: bool = False, admission: Admission = Admission()) -> "ChatEngine":
        """The configured model, or (demo=True, or it cannot be had) the demo model with a notice why,
        admitting requests by `admission` (server.queue_size and server.max_wait_s), set here once.

        engine.backend = "openai": no model loads; the engine streams from engine.remote_base_url.
        """
        engine = cls._load(cfg, demo=demo)
        engine.admit(admission)
        return engine

    @classmethod
    def _load(cls, cfg: EngineConfig, *, demo: bool = False) -> "ChatEngine":
        if cfg.backend == "openai":
            from engine.serving.remote import RemoteChat

            remote = RemoteChat.from_config(cfg)
            return cls(None, None, remote.report, None, remote, cfg.max_context, concurrency=remote.concurrency)
        if demo:
            return cls._demo(cfg)
        try:
            return cls.from_source(resolve_source(cfg.model), cfg)
        except (SourceError, ModelLoadError) as exc:
            if not cfg.demo_fallback:
                raise
            engine = cls._demo(cfg)
            engine.report.notice = (f"Could not load {cfg.model}: {exc} -- running the demo model instead. "
                                    + engine.report.notice)
            return engine

    @classmethod
    def _demo(cls, cfg: EngineConfig) -> "ChatEngine":
        """engine.demo_size's model; the tiny random one when the offline package is missing (and say so)."""
        try:
            return cls.from_source(resolve_source(f"demo:{cfg.demo_size}"), cfg)
        except SourceError as exc:
            if cfg.demo_size != OFFLINE_DEMO:
                raise
            engine = cls.from_source(resolve_source("demo:tiny"), cfg)
            engine.report.notice = f"{exc}. " + engine.report.notice
            return engine
