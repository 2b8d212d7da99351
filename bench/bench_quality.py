"""Quality per rung: perplexity on a fixed text (bench/data/quality.txt) at every precision this machine runs,
beside weight memory and decode speed; rows also go to docs/quality.json, which the Models tab shows.

Model: the offline SmolLM2-135M-Instruct (demo:smollm2) unless BENCH_QUALITY_MODELS names others
(comma-separated engine.model values). CPU: float32, bfloat16, bitsandbytes 8-bit and 4-bit (nf4, double
quant). GPU: fp16, 8-bit, 4-bit. Speed: plain `generate`, greedy, one stream, 32 new tokens.
Then the demo tuning configs train the same model (BENCH_TUNING=lora,qlora; empty to skip): first and last loss.
"""
from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TEXT = ROOT / "bench" / "data" / "quality.txt"
TABLE = ROOT / "docs" / "quality.json"
NEW_TOKENS = 32


def rungs() -> list[tuple[str, str]]:
    """(engine.precision, cpu_dtype) pairs, in ladder order: full precision first."""
    if torch.cuda.is_available():
        return [("fp16", "bfloat16"), ("8bit", "bfloat16"), ("4bit", "bfloat16")]
    return [("fp16", "float32"), ("fp16", "bfloat16"), ("8bit", "bfloat16"), ("4bit", "bfloat16")]


def speed(model, tokenizer) -> float:
    ids = tokenizer("The three primary colours are", return_tensors="pt")["input_ids"].to(model.device)
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, do_sample=False)   # warm-up
        t0 = time.perf_counter()
        model.generate(ids, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False)
    return NEW_TOKENS / (time.perf_counter() - t0)


def measure(model_id: str) -> list:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.loading.loader import LoadPlan, load_pretrained, model_bytes
    from engine.loading.quality import QualityRow, perplexity
    from engine.loading.sources import resolve_source

    source = resolve_source(model_id)
    tokenizer = AutoTokenizer.from_pretrained(str(source.folder))
    text = TEXT.read_text(encoding="utf-8")
    rows = []
    for precision, dtype in rungs():
        plan = LoadPlan(precision=precision, cpu_dtype=dtype, context_tokens=1024)
        model, report = load_pretrained(AutoModelForCausalLM, source.folder, model_id, plan)
        ppl, tokens = perplexity(model, tokenizer, text)
        rows.append(QualityRow(report.rung, round(ppl, 3), sum(model_bytes(model)), round(speed(model, tokenizer), 1),
                               tokens))
        del model
        gc.collect()
    return rows


def tuning_rows(methods: list[str]) -> list[str]:
    """Train the shipped demo configs (the offline model, tuning/data/sample.jsonl) and report their losses."""
    import tempfile

    from tuning.config import load_config
    from tuning.runs import read_metrics
    from tuning.train import train

    lines = ["### Tuning on real weights", "",
             "The shipped `tuning/configs/demo-<method>.json` (base `demo:smollm2`, `tuning/data/sample.jsonl`, CPU) "
             "run as they are; loss is the training loss logged by transformers' Trainer.", "",
             "| config | steps | first loss | last loss | eval loss | seconds |", "|---|---|---|---|---|---|"]
    for method in methods:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = load_config(ROOT / "tuning" / "configs" / f"demo-{method}.json",
                              {"adapters_dir": tmp, "dataset": str(ROOT / "tuning" / "data" / "sample.jsonl")})
            started = time.perf_counter()
            train(cfg)
            seconds = time.perf_counter() - started
            rows = read_metrics(cfg.run_dir)
            losses = [r["loss"] for r in rows if "loss" in r]
            evals = [r["eval_loss"] for r in rows if "eval_loss" in r]
            eval_text = f"{evals[-1]:.3f}" if evals else "—"
            lines.append(f"| demo-{method} | {cfg.max_steps} | {losses[0]:.3f} | {losses[-1]:.3f} | {eval_text} | "
                         f"{seconds:.0f} |")
    return lines + [""]


def run() -> str:
    from engine.loading.quality import relative_costs, write_quality

    models = [m.strip() for m in os.environ.get("BENCH_QUALITY_MODELS", "demo:smollm2").split(",") if m.strip()]
    out = ["## Quality per rung (perplexity)", "",
           f"Perplexity of each model on `{TEXT.relative_to(ROOT)}` ({len(TEXT.read_text().split())} words) at "
           "every precision rung this machine runs (lower is better), beside the weights' memory and greedy "
           f"decode speed (plain `generate`, one stream, {NEW_TOKENS} new tokens). Changes are against the "
           "first (full-precision) row. The same rows go to `docs/quality.json`; the Models tab shows them for "
           f"the loaded model. Load average when this ran: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
           "(speeds on a shared machine are noisy; perplexity and memory are not).", ""]
    for model_id in models:
        rows = measure(model_id)
        write_quality(TABLE, model_id, rows, TEXT.name)
        out += [f"`{model_id}` ({rows[0].tokens} tokens scored):", "",
                "| rung | perplexity | vs first | weights | vs first | tokens/s |", "|---|---|---|---|---|---|"]
        for row, mem, ppl in relative_costs(rows):
            out.append(f"| {row.rung} | {row.perplexity:.2f} | {ppl:+.0f} % | {row.weight_bytes / 2**20:.0f} MiB | "
                       f"{mem:+.0f} % | {row.tokens_per_second:.1f} |")
        out.append("")
    methods = [m.strip() for m in os.environ.get("BENCH_TUNING", "lora,qlora").split(",") if m.strip()]
    if methods:
        out += tuning_rows(methods)
    return "\n".join(out)
