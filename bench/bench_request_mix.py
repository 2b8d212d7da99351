"""The request mix real clients send, at 4 and at 16 concurrent: requests/s (issue 23).

lm-evaluation-harness sends `seed: 1234` with every request, agents send penalties and top_k; before issue 23
every such request took the plain `generate` path, one at a time, so more concurrency gave no more throughput.
Here 32 short questions, each seeded (half greedy, half sampled at temperature 0.7 with top_k 40, a quarter
with a presence penalty), go through the app's scheduler (the continuous batch, in-process) from 4 and from
16 client threads; the ratio of requests/s is the gain of sharing the batch. The same mix without seeds and
penalties is the control. Bench-size demo model (MistralForCausalLM, hidden 768, 8 layers, real v3 vocab),
bf16, CPU, exact reply lengths.
Run: `.venv/bin/python -m bench request_mix`.
"""
from __future__ import annotations

from typing import Any

from bench.clients import drain, timed_clients

QUESTIONS = 32
TOKENS = 24
LEVELS = (4, 16)


def mix(i: int, seeded: bool) -> Any:
    """The i-th request's options: lm-eval's seed on every request, sampled/top_k on odd ones, a penalty on 1/4."""
    from engine.serving.generation import GenerationParams

    sampled = i % 2 == 1
    return GenerationParams(max_new_tokens=TOKENS, min_new_tokens=TOKENS, temperature=0.7 if sampled else 0.0,
                            top_p=0.95, top_k=40 if sampled and seeded else 0, seed=1234 if seeded else None,
                            presence_penalty=0.5 if seeded and i % 4 == 2 else 0.0)


def requests_per_second(scheduler: Any, clients: int, seeded: bool) -> tuple[float, int]:
    """(requests/s, requests that took the plain path) of QUESTIONS requests from `clients` threads."""
    plain = sum(bool(scheduler.plain_path_features(mix(i, seeded))) for i in range(QUESTIONS)) \
        if hasattr(scheduler, "plain_path_features") else QUESTIONS

    def ask(i: int) -> int:
        messages = [{"role": "user", "content": f"Question {i}: name a city and say one thing about it."}]
        return drain(scheduler, messages, mix(i, seeded))

    seconds, tokens = timed_clients(ask, range(QUESTIONS), clients)
    assert all(n == TOKENS for n in tokens), tokens
    return QUESTIONS / seconds, plain


def run() -> str:
    from config import EngineConfig
    from engine.chat import ChatEngine
    from engine.loading.sources import resolve_source

    rows = []
    for batching in ("auto", "queue"):       # queue: one at a time, as seeded requests were served before
        engine = ChatEngine.from_source(resolve_source("demo:bench"), EngineConfig(
            cpu_dtype="bfloat16", max_concurrent=16, batching=batching))
        if batching == "auto":
            path = engine.load_stats().path
        try:
            scheduler = engine.scheduler
            requests_per_second(scheduler, 4, True)      # warm-up: the first steps are slower
            for seeded in ((True, False) if batching == "auto" else (True,)):
                rates = {n: requests_per_second(scheduler, n, seeded) for n in LEVELS}
                rows.append((seeded, batching, rates))
        finally:
            engine.close()
    lines = ["## Request mix at 4 and 16 concurrent (issue 23)", "",
             f"{QUESTIONS} questions, {TOKENS} tokens each, through the app's scheduler in-process "
             f"(path: {path}, bench-size demo model, bf16, CPU). "
             "The mix: `seed: 1234` on every request (as lm-evaluation-harness sends), half sampled with top_k 40, "
             "a quarter with a presence penalty. The control drops seeds, top_k and penalties.", "",
             "| mix | plain-path requests | 4 concurrent req/s | 16 concurrent req/s | 16 / 4 |", "|---|---|---|---|---|"]
    names = {(True, "auto"): "seeded, top_k, penalties", (False, "auto"): "control (none of them)",
             (True, "queue"): "seeded mix one at a time (engine.batching queue: the plain path before issue 23)"}
    for seeded, batching, rates in rows:
        four, sixteen = rates[4][0], rates[16][0]
        plain = QUESTIONS if batching == "queue" else rates[4][1]
        lines.append(f"| {names[seeded, batching]} | {plain} of {QUESTIONS} | {four:.2f} | {sixteen:.2f} | "
                     f"{sixteen / four:.2f} |")
    return "\n".join(lines) + "\n"
