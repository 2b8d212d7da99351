"""`make gpu-check`: prove the GPU path on a card, through the app's own loader, scheduler and retry code.

No downloads: it writes full-size Mistral-7B-Instruct-v0.3 and LLaVA-NeXT-Mistral-7B architectures with
random weights (the real configs) to the demo-model cache once, then:
  (a) loads fp16, 8-bit, 4-bit and 4-bit + CPU offload: rung, seconds, bytes on GPU and CPU, peak memory;
  (b) emulates 8/12/16/24 GB cards (torch.cuda.set_per_process_memory_fraction), starts at fp16 and lets the
      ladder step down on real OOMs, checking allocated memory is back at its baseline before each next rung;
  (c) decode tokens/s at 1 and 8 streams per rung, against the bandwidth bound (weight bytes read per token
      / the card's bandwidth, measured by a device copy);
  (d) a real OOM during generation (a context too long for the cap): one retry, memory back to baseline,
      the model still answers;
  (e) the LLaVA-NeXT-Mistral architecture loaded beside the fp16 chat model under a 24 GB cap;
  (f) at 4-bit, the request mix real clients send (bench/bench_request_mix.py: seeded with top_k and penalties;
      logprobs with JSON schemas) at 4 and at 16 concurrent: requests/s, every request in the batch.
It writes the "gpu" section of docs/benchmarks.md and exits 1 on any failed expectation.

`--smoke` runs the same code on the CPU with the bench-size demo model (and the tiny LLaVA-NeXT), few tokens,
writing nothing: `make test` runs it (tests/test_gpu_check.py) so it never rots. Steps that only a card can
show ((b), (d), the offload rung, the bandwidth bound) are listed as skipped on the CPU.
Run: `make gpu-check` or `.venv/bin/python -m bench.gpu_check [--smoke] [--no-write]`.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

GiB = 1024 ** 3
MiB = 1024 ** 2
MISTRAL_7B_V03 = dict(vocab_size=32768, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                      num_attention_heads=32, num_key_value_heads=8, head_dim=128, max_position_embeddings=32768,
                      rope_theta=1_000_000.0, sliding_window=None, tie_word_embeddings=False, bos_token_id=1,
                      eos_token_id=2, rms_norm_eps=1e-5)
CLIP_L_336 = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14, projection_dim=768)
CARDS_GIB = (8, 12, 16, 24)
SLACK = 64 * MiB                 # "back to baseline": allocated within this of where it started
RUNGS_GPU = ("fp16", "8bit", "4bit", "4bit-offload")
RUNGS_CPU = ("fp16", "8bit", "4bit")   # precision fp16 means full precision: cpu-bfloat16 on a CPU


@dataclass
class Settings:
    smoke: bool
    tokens: int
    streams: tuple[int, int]

    @property
    def cuda(self) -> bool:
        return torch.cuda.is_available() and not self.smoke


@dataclass
class Results:
    expectations: list[tuple[str, bool, str]] = field(default_factory=list)
    rungs: list[dict] = field(default_factory=list)
    cards: list[dict] = field(default_factory=list)
    mix: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def expect(self, name: str, ok: bool, detail: str = "") -> bool:
        self.expectations.append((name, bool(ok), detail))
        print(f"[gpu-check] {'ok  ' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
        return bool(ok)

    @property
    def failed(self) -> list[tuple[str, bool, str]]:
        return [e for e in self.expectations if not e[1]]


# -- models (random weights, real architectures) -------------------------------------------------------

def _random_fill(model: torch.nn.Module, device: str) -> torch.nn.Module:
    model.to_empty(device=device)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
        for name, b in model.named_buffers():
            if "position_ids" in name:
                b.copy_(torch.arange(b.shape[-1], device=b.device).expand_as(b))
            elif "inv_freq" in name:
                b.copy_(1.0 / (1_000_000.0 ** (torch.arange(0, b.numel() * 2, 2, device=b.device).float()
                                               / (b.numel() * 2))))
    return model


def full_chat_model() -> Path:
    """Mistral-7B-Instruct-v0.3's architecture with random fp16 weights and the real v3 tokenizer (about 14.5 GB)."""
    from engine.loading.demo.build import cached_build
    from engine.loading.demo.chat import demo_chat_model

    def build(out: Path) -> None:
        from accelerate import init_empty_weights
        from transformers import MistralConfig, MistralForCausalLM

        bench = demo_chat_model("bench")
        for f in bench.iterdir():
            if f.is_file() and not f.name.endswith(".safetensors") and f.name != "config.json":
                shutil.copy(f, out / f.name)
        config = MistralConfig(**MISTRAL_7B_V03)
        with init_empty_weights():
            model = MistralForCausalLM(config)
        _random_fill(model.to(torch.float16), "cuda" if torch.cuda.is_available() else "cpu")
        model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
        model.save_pretrained(str(out), safe_serialization=True, max_shard_size="4GB")

    return cached_build("mistral-7b-v0.3-random", {"config": MISTRAL_7B_V03, "v": 1}, build)


def full_vision_model() -> Path:
    """LLaVA-NeXT-Mistral-7B's architecture (CLIP ViT-L/336 + projector + Mistral 7B) with random fp16 weights."""
    from engine.loading.demo.build import cached_build

    def build(out: Path) -> None:
        from accelerate import init_empty_weights
        from transformers import CLIPVisionConfig, LlavaNextConfig, LlavaNextForConditionalGeneration, MistralConfig

        config = LlavaNextConfig(vision_config=CLIPVisionConfig(**CLIP_L_336), text_config=MistralConfig(**MISTRAL_7B_V03),
                                 image_token_index=32000, image_grid_pinpoints=[[336, 672], [672, 336], [672, 672]])
        with init_empty_weights():
            model = LlavaNextForConditionalGeneration(config)
        _random_fill(model.to(torch.float16), "cuda" if torch.cuda.is_available() else "cpu")
        model.save_pretrained(str(out), safe_serialization=True, max_shard_size="4GB")

    return cached_build("llava-next-mistral-7b-random", {"text": MISTRAL_7B_V03, "vision": CLIP_L_336, "v": 1}, build)


# -- memory --------------------------------------------------------------------------------------------

class Peak:
    """Peak memory over a block: CUDA allocator's peak on a GPU, sampled RSS on the CPU."""

    def __init__(self, cuda: bool):
        self.cuda, self.peak, self._stop = cuda, 0, threading.Event()

    def __enter__(self) -> "Peak":
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = psutil.Process().memory_info().rss
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        proc = psutil.Process()
        while not self._stop.is_set():
            self.peak = max(self.peak, proc.memory_info().rss)
            self._stop.wait(0.02)

    def __exit__(self, *exc: Any) -> None:
        if self.cuda:
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated()
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, psutil.Process().memory_info().rss)

    @property
    def grown(self) -> int:
        return max(0, self.peak - self.base)


def allocated() -> int:
    return torch.cuda.memory_allocated() if torch.cuda.is_available() else 0


def bandwidth_bytes_per_s() -> float:
    """Device-to-device copy of 1 GiB: read + write bytes per second (best of 5)."""
    src = torch.empty(GiB, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    best = float("inf")
    for _ in range(5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        dst.copy_(src)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    del src, dst
    torch.cuda.empty_cache()
    return 2 * GiB / best


# -- the app's own pieces ------------------------------------------------------------------------------

def load_engine(folder: Path, model_id: str, precision: str, *, budget: int | None = None, slots: int = 8):
    from engine.chat import ChatEngine, load_plan
    from config import EngineConfig
    from engine.loading.sources import ModelSource

    cfg = EngineConfig(precision=precision if precision in ("fp16", "8bit", "4bit") else "auto",
                       max_concurrent=slots, max_context=4096)
    plan = load_plan(cfg)
    if precision == "4bit-offload":
        from dataclasses import replace

        plan = replace(plan, precision="4bit-offload", budget_bytes=budget)
    elif budget is not None:
        from dataclasses import replace

        plan = replace(plan, budget_bytes=budget)
    return ChatEngine.from_source(ModelSource(model_id, folder, False), cfg, plan)


def streams(engine: Any, clients: int, tokens: int) -> float:
    """Aggregate tokens/s of `clients` threads each streaming exactly `tokens` tokens through the scheduler."""
    from bench.bench_serving import stream_clients

    return stream_clients(engine.scheduler, clients, tokens)[0]


def unload(engine: Any) -> None:
    from engine.loading.memory import release

    engine.close()
    engine.model = engine.generator = engine.scheduler = None
    release()


def module_dtypes_offloaded(model: Any) -> tuple[int, int]:
    """(quantized Linear4bit modules, unquantized nn.Linear modules) of a loaded model."""
    import bitsandbytes as bnb

    q = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    plain = sum(type(m) is torch.nn.Linear for m in model.modules())
    return q, plain


# -- steps ---------------------------------------------------------------------------------------------

def step_rungs(s: Settings, r: Results, folder: Path, model_id: str) -> None:
    """(a) + (c): every rung through the app's loader, its memory, and 1 vs N streams."""
    bandwidth = bandwidth_bytes_per_s() if s.cuda else None
    if bandwidth:
        r.notes.append(f"device copy bandwidth {bandwidth / 1e9:.0f} GB/s")
    rungs = RUNGS_GPU if s.cuda else RUNGS_CPU
    if not s.cuda:
        r.skipped.append("4bit-offload rung placement (needs a card; its device map and module dtypes are "
                         "tested on the CPU in tests/test_loader.py)")
    for rung in rungs:
        base = allocated()
        budget, tokens = None, s.tokens
        if rung == "4bit-offload":
            # Weights room well below the 4-bit weights (~3.9 GiB), so part of the model must go to RAM; plus
            # the KV caches of every stream. Offloaded blocks cross PCIe at every token: few tokens.
            from transformers import AutoConfig

            from engine.loading.preflight import kv_cache_bytes

            kv = kv_cache_bytes(AutoConfig.from_pretrained(folder), 4096) * s.streams[1]
            budget, tokens = int((2.0 * GiB + kv) / (1 - 0.15)), min(8, s.tokens)
        with Peak(s.cuda) as peak:
            t0 = time.perf_counter()
            engine = load_engine(folder, model_id, rung, budget=budget, slots=s.streams[1])
            seconds = time.perf_counter() - t0
        rep = engine.report
        weights = rep.gpu_bytes + rep.cpu_bytes
        row = {"rung": rep.rung, "asked": rung, "seconds": seconds, "gpu_bytes": rep.gpu_bytes,
               "cpu_bytes": rep.cpu_bytes, "peak_bytes": peak.grown, "weight_bytes": weights,
               "peak_ratio": peak.grown / weights if weights else 0.0, "path": engine.load_stats().path}
        expected = rung if s.cuda else {"fp16": "cpu-bfloat16"}.get(rung, rung)
        r.expect(f"{rung} loads at {expected}", rep.rung == expected, f"{rep.summary()}")
        if rung == "4bit-offload":
            quantized, plain = module_dtypes_offloaded(engine.model)
            r.expect("4bit-offload puts weights on both GPU and CPU", rep.gpu_bytes > 0 and rep.cpu_bytes > 0,
                     f"{rep.gpu_bytes / GiB:.2f} GiB GPU, {rep.cpu_bytes / GiB:.2f} GiB CPU")
            r.expect("4bit-offload keeps offloaded Linear modules unquantized", quantized > 0 and plain > 1,
                     f"{quantized} Linear4bit, {plain} nn.Linear")
        try:
            row["tps1"] = streams(engine, s.streams[0], tokens)
            row["tpsN"] = streams(engine, s.streams[1], tokens)
            row["ratio"] = row["tpsN"] / row["tps1"] if row["tps1"] else 0.0
            if s.cuda and rung == "4bit":       # issue 23: 4-bit shares the batch
                r.expect(f"4bit: {s.streams[1]} streams / 1 >= 3x", row["ratio"] >= 3.0, f"{row['ratio']:.2f}")
            if bandwidth and rep.gpu_bytes:
                row["bound"] = bandwidth / rep.gpu_bytes
                row["of_bound"] = row["tps1"] / row["bound"]
        except Exception as exc:  # noqa: BLE001 - a failed stream is a failed expectation, not a crash
            r.expect(f"{rung} streams", False, f"{type(exc).__name__}: {exc}")
        r.rungs.append(row)
        unload(engine)
        del engine
        if s.cuda:
            r.expect(f"{rung}: memory back to baseline after unload", allocated() <= base + SLACK,
                     f"{(allocated() - base) / MiB:.0f} MiB above")


class _EntrySpy:
    """A model class that records allocated memory each time the ladder starts a rung, then loads for real."""

    def __init__(self):
        from transformers import AutoModelForCausalLM

        self.cls, self.entries = AutoModelForCausalLM, []

    def from_config(self, *args: Any, **kwargs: Any) -> Any:   # the offload rung sizes an empty model
        return self.cls.from_config(*args, **kwargs)

    def from_pretrained(self, *args: Any, **kwargs: Any) -> Any:
        self.entries.append(allocated())
        return self.cls.from_pretrained(*args, **kwargs)


def step_cards(s: Settings, r: Results, folder: Path) -> None:
    """(b): emulated cards; start at fp16, step down on real OOMs, memory at baseline before each rung."""
    from engine.loading.loader import LoadPlan, load_pretrained
    from engine.errors import ModelLoadError
    from engine.loading.memory import release

    if not s.cuda:
        r.skipped.append("(b) emulated 8/12/16/24 GB cards (set_per_process_memory_fraction needs a card; the "
                         "CPU step-down under a real limit is tests/test_memory_rlimit.py)")
        return
    total = torch.cuda.get_device_properties(0).total_memory
    for card in CARDS_GIB:
        release()
        base = allocated()
        torch.cuda.set_per_process_memory_fraction(min(1.0, card * GiB / total), 0)
        spy = _EntrySpy()
        t0 = time.perf_counter()
        try:
            model, rep = load_pretrained(spy, folder, "mistral-7b-random", LoadPlan(precision="fp16", context_tokens=4096))
            rung, attempts = rep.rung, [(a.rung, a.outcome.split(":")[0]) for a in rep.attempts]
            del model
        except ModelLoadError as exc:
            rung, attempts = "none", [("all", str(exc)[:120])]
        release()
        torch.cuda.set_per_process_memory_fraction(1.0, 0)
        at_entry = [(e - base) / MiB for e in spy.entries]
        r.cards.append({"card": card, "rung": rung, "attempts": attempts, "seconds": time.perf_counter() - t0,
                        "entry_mib": at_entry})
        r.expect(f"{card} GB card: a rung loads", rung != "none", f"{attempts}")
        r.expect(f"{card} GB card: memory at baseline before every rung", all(m <= SLACK / MiB for m in at_entry),
                 f"MiB above baseline at each rung start: {[round(m) for m in at_entry]}")
    order = [RUNGS_GPU.index(c["rung"]) if c["rung"] in RUNGS_GPU else 99 for c in r.cards]
    r.expect("bigger cards never load a smaller rung", order == sorted(order, reverse=True), f"{order}")


def step_generation_oom(s: Settings, r: Results, folder: Path) -> None:
    """(d): a context too long for the cap runs out of memory for real; one retry; memory back; still answers."""
    from engine.serving.generation import GenerationParams
    from engine.loading.memory import release

    if not s.cuda:
        r.skipped.append("(d) real OOM during generation under a cap (the CPU test raises it from a forward hook "
                         "after the KV cache exists: tests/test_memory_recovery.py)")
        return
    engine = load_engine(folder, "mistral-7b-random", "4bit", slots=1)
    engine.generator.max_context = 32768
    release()
    base = allocated()
    total = torch.cuda.get_device_properties(0).total_memory
    # ~32k tokens of prompt need ~4 GiB of KV cache plus prefill activations: over the cap; the retry's half fits.
    torch.cuda.set_per_process_memory_fraction(min(1.0, (base + 5 * GiB) / total), 0)
    turn = "The history of the Korean peninsula spans many dynasties and kingdoms. " * 50
    messages = []
    for i in range(40):
        messages += [{"role": "user", "content": f"{i}: {turn}"}, {"role": "assistant", "content": turn}]
    messages.append({"role": "user", "content": "Summarise."})
    params = GenerationParams(max_new_tokens=8, min_new_tokens=8, temperature=0.0, max_history_turns=1000)
    try:
        stream = engine.generator.stream(messages, params)
        stream.text()
        notices = stream.stats.notices
        r.expect("(d) OOM during generation: one retry with a shorter context",
                 any("retried" in n for n in notices), f"notices {notices}, prompt {stream.stats.prompt_tokens} tokens")
    except Exception as exc:  # noqa: BLE001 - the check reports what happened
        r.expect("(d) OOM during generation: one retry with a shorter context", False, f"{type(exc).__name__}: {exc}")
    release()
    r.expect("(d) memory back to baseline after the failed attempt", allocated() <= base + SLACK,
             f"{(allocated() - base) / MiB:.0f} MiB above")
    torch.cuda.set_per_process_memory_fraction(1.0, 0)
    short = engine.generator.stream([{"role": "user", "content": "Hello"}], GenerationParams(max_new_tokens=4,
                                                                                             temperature=0.0))
    short.text()
    r.expect("(d) the model answers the next request", short.stats.completion_tokens > 0)
    unload(engine)


def step_request_mix(s: Settings, r: Results, folder: Path, model_id: str) -> None:
    """(f): issue 23's request mix at 4-bit, 4 vs 16 concurrent, through the continuous batch."""
    from bench.bench_request_mix import requests_per_second

    low, high = (2, 4) if s.smoke else (4, 16)
    questions, tokens = (4, 4) if s.smoke else (64, 24)
    engine = load_engine(folder, model_id, "4bit", slots=high)
    try:
        path = engine.load_stats().path
        r.expect("4bit serves through the continuous batch", path == "continuous", f"path: {path}")
        requests_per_second(engine.scheduler, low, "seeded", questions, tokens)      # warm-up
        for kind in ("seeded", "shaped"):
            (few, plain, _), (many, _, _) = (requests_per_second(engine.scheduler, n, kind, questions, tokens)
                                             for n in (low, high))
            r.mix.append({"kind": kind, "questions": questions, "tokens": tokens, "plain": plain,
                          "clients": (low, high), "rates": (few, many)})
            r.expect(f"{kind} mix: no request takes the plain path", plain == 0, f"{plain} of {questions}")
            if s.cuda:
                r.expect(f"{kind} mix at 4-bit: {high} concurrent / {low} >= 2.5x", many / few >= 2.5,
                         f"{many:.2f} / {few:.2f} req/s = {many / few:.2f}")
    finally:
        unload(engine)
        del engine


def step_vision_beside_chat(s: Settings, r: Results, chat: Path) -> None:
    """(e): the image model loads beside the full-precision chat model within one card's budget."""
    from engine.loading.demo.vision import demo_vision_model
    from engine.loading.loader import LoadPlan
    from engine.loading.memory import release
    from engine.media.vision import SKIP_QUANTIZATION, load_vision_model

    folder = full_vision_model() if s.cuda else demo_vision_model("tiny")
    engine = load_engine(chat, "chat", "fp16", slots=1)
    if s.cuda:
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, 24 * GiB / total), 0)
        room = 24 * GiB - allocated()
    else:
        room = None
    try:
        model, rep = load_vision_model(folder, "llava-next", LoadPlan(budget_bytes=room, context_tokens=4096,
                                                                       skip_quantization=SKIP_QUANTIZATION))
        r.expect("(e) LLaVA-NeXT loads beside the chat model" + (" under a 24 GB cap" if s.cuda else ""), True,
                 rep.summary())
        r.notes.append(f"(e) image model beside chat {engine.report.rung}: {rep.summary()}")
        del model
    except Exception as exc:  # noqa: BLE001 - the check reports what happened
        r.expect("(e) LLaVA-NeXT loads beside the chat model", False, f"{type(exc).__name__}: {exc}")
    finally:
        if s.cuda:
            torch.cuda.set_per_process_memory_fraction(1.0, 0)
        unload(engine)
        release()


# -- report --------------------------------------------------------------------------------------------

def markdown(s: Settings, r: Results, seconds: float) -> str:
    where = torch.cuda.get_device_name(0) if s.cuda else "CPU (smoke)"
    lines = [f"## GPU check ({where})", "",
             "`make gpu-check` (bench/gpu_check.py): full-size Mistral-7B-Instruct-v0.3 architecture, random fp16 "
             "weights, loaded through the app's loader and served through its scheduler. Streams sample "
             f"(temperature 0.7) {s.tokens} tokens each.", "",
             "| rung | path | load s | GPU GiB | CPU GiB | peak / weights | 1 stream tok/s | "
             f"{s.streams[1]} streams tok/s | {s.streams[1]} / 1 | 1 stream / bandwidth bound |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for row in r.rungs:
        bound = f"{row['of_bound']:.2f}" if "of_bound" in row else "n/a"
        lines.append(f"| {row['rung']} | {row['path']} | {row['seconds']:.1f} | {row['gpu_bytes'] / GiB:.2f} | "
                     f"{row['cpu_bytes'] / GiB:.2f} | {row['peak_ratio']:.2f} | {row.get('tps1', 0):.1f} | "
                     f"{row.get('tpsN', 0):.1f} | {row.get('ratio', 0):.2f} | {bound} |")
    if r.cards:
        lines += ["", "Emulated cards (set_per_process_memory_fraction), starting at fp16:", "",
                  "| card | loaded | attempts | MiB above baseline at each rung start |", "|---|---|---|---|"]
        for c in r.cards:
            lines.append(f"| {c['card']} GB | {c['rung']} | {'; '.join(f'{a}: {o}' for a, o in c['attempts'])} | "
                         f"{', '.join(str(round(m)) for m in c['entry_mib'])} |")
    if r.mix:
        lines += ["", "Request mix at 4-bit (bench/bench_request_mix.py's mixes; JSON replies end when their schema is "
                  "complete):", "", "| mix | questions × tokens | plain-path requests | clients | req/s | ratio |",
                  "|---|---|---|---|---|---|"]
        for m in r.mix:
            (low, high), (few, many) = m["clients"], m["rates"]
            lines.append(f"| {m['kind']} | {m['questions']} × {m['tokens']} | {m['plain']} | {high} vs {low} | "
                         f"{many:.2f} vs {few:.2f} | {many / few:.2f} |")
    lines += ["", "Goals: peak / weights <= 1.3; 8 streams / 1 >= 3x where batching runs; request mix 16 / 4 >= "
              "2.5x at 4-bit; 1 stream / bound >= 0.7 at fp16 and 4-bit.", ""]
    lines += [f"- {n}" for n in r.notes]
    lines += [f"- skipped: {n}" for n in r.skipped]
    failed = r.failed
    lines += ["", f"Expectations: {len(r.expectations) - len(failed)} of {len(r.expectations)} held"
              + ("; failed: " + "; ".join(f"{n} ({d})" for n, _, d in failed) if failed else "") + f" in {seconds:.0f} s."]
    return "\n".join(lines) + "\n"


def run(smoke: bool) -> tuple[str, Results]:
    from engine.loading.demo.chat import demo_chat_model

    s = Settings(smoke=smoke, tokens=4 if smoke else 64, streams=(1, 2 if smoke else 8))
    r = Results()
    started = time.perf_counter()
    if not s.cuda and not smoke:
        raise SystemExit("gpu-check needs a CUDA GPU; on the CPU run it with --smoke")
    chat = full_chat_model() if s.cuda else demo_chat_model("bench")
    model_id = "mistral-7b-random" if s.cuda else "demo:bench"
    step_rungs(s, r, chat, model_id)
    step_cards(s, r, chat)
    step_generation_oom(s, r, chat)
    step_vision_beside_chat(s, r, chat)
    step_request_mix(s, r, chat, model_id)
    return markdown(s, r, time.perf_counter() - started), r


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="CPU, bench-size model, few tokens; writes nothing")
    ap.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    args = ap.parse_args(argv)
    text, results = run(args.smoke)
    print(text, flush=True)
    if not args.smoke and not args.no_write:
        from bench.__main__ import write_report

        write_report({"gpu": text})
    return 1 if results.failed else 0


if __name__ == "__main__":
    sys.exit(main())
