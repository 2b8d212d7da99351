"""ChatEngine: the loaded chat model, how it was loaded, and streaming over it.

Loading never leaves the app without a model: when the configured one cannot be had and
engine.demo_fallback is on, the demo model loads and LoadReport.notice says why and how to fix it.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Sequence

from engine.codec import TextCodec
from engine.config import EngineConfig
from engine.generation import ChatStream, GenerationParams, Generator
from engine.loader import LoadPlan, LoadReport, ModelLoadError, load_pretrained
from engine.preflight import GiB
from engine.sources import ModelSource, SourceError, resolve_source

DEMO_NOTICE = "Demo model with random weights: replies are noise, not answers."


def load_plan(cfg: EngineConfig) -> LoadPlan:
    budget = int(cfg.max_gpu_memory * GiB) if cfg.max_gpu_memory is not None else None
    return LoadPlan(precision=cfg.precision, budget_bytes=budget, cpu_dtype=cfg.cpu_dtype,
                    context_tokens=cfg.max_context, headroom=cfg.kv_headroom)


@dataclass
class ChatEngine:
    model: Any
    codec: TextCodec
    report: LoadReport
    generator: Generator

    @property
    def model_id(self) -> str:
        return self.report.model_id

    def stream(self, messages: Sequence[dict], params: GenerationParams,
               cancel: threading.Event | None = None) -> ChatStream:
        return self.generator.stream(messages, params, cancel)

    @classmethod
    def from_source(cls, source: ModelSource, cfg: EngineConfig, plan: LoadPlan | None = None) -> "ChatEngine":
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model, report = load_pretrained(AutoModelForCausalLM, source.folder, source.model_id, plan or load_plan(cfg))
        tokenizer = AutoTokenizer.from_pretrained(str(source.folder), trust_remote_code=False)
        codec = TextCodec.load(source.folder, tokenizer)
        report.demo = source.demo
        if source.demo:
            report.notice = " ".join(filter(None, [DEMO_NOTICE, report.notice]))
        context = min(cfg.max_context, getattr(model.config, "max_position_embeddings", cfg.max_context))
        return cls(model, codec, report, Generator(model, codec, max_context=context, slots=cfg.max_concurrent))

    @classmethod
    def load(cls, cfg: EngineConfig, *, demo: bool = False) -> "ChatEngine":
        """The configured model, or (demo=True, or it cannot be had) the demo model with a notice why."""
        if demo:
            return cls.from_source(resolve_source(f"demo:{cfg.demo_size}"), cfg)
        try:
            return cls.from_source(resolve_source(cfg.model), cfg)
        except (SourceError, ModelLoadError) as exc:
            if not cfg.demo_fallback:
                raise
            engine = cls.from_source(resolve_source(f"demo:{cfg.demo_size}"), cfg)
            engine.report.notice = (f"Could not load {cfg.model}: {exc} -- running the demo model instead. "
                                    + engine.report.notice)
            return engine
