"""Tuning on real weights, both methods: LoRA and QLoRA teach SmolLM2-135M-Instruct a new fact (8 steps), and the
chat says it with the adapter and not without. The test suite runs LoRA only (tests/test_real_tuning.py): QLoRA
on these weights takes minutes on the CPU. Run: `.venv/bin/python -m bench tuning_fact`.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path


def run() -> str:
    from config import EngineConfig
    from engine.chat import ChatEngine
    from engine.loading.sources import resolve_source
    from tests.test_real_tuning import FACT, QUESTION, config
    from tuning.runs import read_metrics
    from tuning.train import train

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for method in ("lora", "qlora"):
            cfg = config(Path(tmp), method)
            started = time.perf_counter()
            train(cfg)
            losses = [r["loss"] for r in read_metrics(cfg.run_dir) if "loss" in r]
            rows.append((method, time.perf_counter() - started, losses[0], losses[-1]))
        engine = ChatEngine.from_source(resolve_source("demo:smollm2"),
                                        EngineConfig(adapters_dir=str(Path(tmp) / "adapters")))
        try:
            from tests.test_real_tuning import say

            base = FACT in say(engine)
            said = {method: FACT in say(engine, f"cat-{method}") for method, *_ in rows}
        finally:
            engine.close()
    lines = ["## Tuning teaches a fact on real weights (LoRA and QLoRA)", "",
             f"SmolLM2-135M-Instruct, 8 copies of one question and answer, 8 steps (tests/test_real_tuning.py's "
             f"config), CPU. The question: “{QUESTION}”; the base says “{FACT}”: {'yes' if base else 'no'}.", "",
             "| method | train s | first loss | last loss | says the fact with the adapter |", "|---|---|---|---|---|"]
    lines += [f"| {m} | {s:.0f} | {a:.3f} | {b:.3f} | {'yes' if said[m] else 'no'} |" for m, s, a, b in rows]
    return "\n".join(lines) + "\n"
