"""Precision rungs on this CPU, through the app's loader and scheduler (bench/gpu_check.py's code):
load seconds, peak RSS growth / weight bytes, and aggregate tokens/s of 8 streaming clients against 1.

Bench-size demo model (MistralForCausalLM, hidden 768, 8 layers, real v3 vocab), bitsandbytes 8-bit and
4-bit (nf4, double quant) on the CPU, sampling (temperature 0.7), exact reply lengths. The path column is
what the app chose for that rung (continuous batching or the FIFO queue over plain generate).
Run: `.venv/bin/python -m bench rungs`. The GPU figures are `make gpu-check` on a card.
"""
from __future__ import annotations

TOKENS = 24
CLIENTS = 8


def run() -> str:
    from bench.gpu_check import Results, Settings, step_rungs
    from engine.loading.demo.chat import demo_chat_model

    s = Settings(smoke=True, tokens=TOKENS, streams=(1, CLIENTS))
    r = Results()
    step_rungs(s, r, demo_chat_model("bench"), "demo:bench")
    lines = ["## Precision rungs on the CPU (bench-size demo model)", "",
             f"Through engine.loader and the app's scheduler; {TOKENS} sampled tokens per stream. Peak is RSS growth "
             "while loading (sampled every 20 ms) over the bytes of the loaded parameters and buffers.", "",
             f"| rung | path | load s | weights MiB | peak / weights | 1 stream tok/s | {CLIENTS} streams tok/s | "
             f"{CLIENTS} / 1 |", "|---|---|---|---|---|---|---|---|"]
    for row in r.rungs:
        lines.append(f"| {row['rung']} | {row['path']} | {row['seconds']:.1f} | {row['weight_bytes'] / 2**20:.0f} | "
                     f"{row['peak_ratio']:.2f} | {row.get('tps1', 0):.2f} | {row.get('tpsN', 0):.2f} | "
                     f"{row.get('ratio', 0):.2f} |")
    failed = r.failed
    if failed:
        lines += ["", "Failed: " + "; ".join(f"{n} ({d})" for n, _, d in failed)]
    return "\n".join(lines) + "\n"
