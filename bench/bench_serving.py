"""Serving many at once: aggregate tokens/s of 8 concurrent streaming clients against 1, per dtype and
path (continuous batching vs the FIFO queue over plain generate), and the per-token cost of streaming
through /v1/chat/completions with the `openai` client against the engine in-process.

Bench-size demo model (MistralForCausalLM, hidden 768, 8 layers, real v3 vocab), CPU, sampling with
the app's defaults (temperature 0.7, top_p 0.95; seeded requests take the plain path by design),
exact reply lengths.
Run: `.venv/bin/python -m bench serving`.
"""
from __future__ import annotations

import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from bench.clients import drain, timed_clients

NEW_TOKENS = 48
CLIENTS = 8
HTTP_TOKENS = 64
HTTP_REPEATS = 5
DTYPES = ("bfloat16", "float32")
PATHS = ("continuous", "queue")
PROMPT = [{"role": "user", "content": "Explain in a few sentences why the sky is blue. 하늘은 왜 파란가요?"}]


def _params(n: int):
    from engine.serving.generation import GenerationParams

    return GenerationParams(max_new_tokens=n, min_new_tokens=n, temperature=0.7, top_p=0.95)


def client_messages(i: int) -> list[dict]:
    return [{"role": "user", "content": f"{PROMPT[0]['content']} ({i})"}]


def stream_clients(scheduler: Any, n: int, tokens: int, params: Any = None,
                   relayed: bool = False) -> tuple[float, int]:
    """(aggregate tokens/s, tokens) of n threads each streaming `tokens` tokens at once (sampled with the
    app's defaults unless `params` says otherwise); `relayed`: read as the API does (ChatStream.relay)."""
    params = params or _params(tokens)
    seconds, counts = timed_clients(lambda i: drain(scheduler, client_messages(i), params, relayed), range(n), n)
    return sum(counts) / seconds, sum(counts)


def measure_concurrency(dtype: str) -> list[dict]:
    from engine.serving.batching import build_scheduler
    from engine.chat import ChatEngine
    from config import EngineConfig
    from engine.loading.sources import resolve_source

    cfg = EngineConfig(cpu_dtype=dtype, max_concurrent=CLIENTS)
    engine = ChatEngine.from_source(resolve_source("demo:bench"), cfg, batching="queue")
    rows = []
    for path in PATHS:
        scheduler, why = build_scheduler(engine.model, engine.codec, engine.generator, slots=CLIENTS,
                                         headroom=cfg.kv_headroom, path=path)
        try:
            stream_clients(scheduler, 2, 8)  # warm-up
            one, _ = stream_clients(scheduler, 1, NEW_TOKENS)
            many, tokens = stream_clients(scheduler, CLIENTS, NEW_TOKENS)
            one_again, _ = stream_clients(scheduler, 1, NEW_TOKENS)  # the machine may have changed meanwhile
        finally:
            scheduler.close()
        single = (one + one_again) / 2
        rows.append({"dtype": dtype, "path": path, "single": single, "many": many, "ratio": many / single,
                     "tokens": tokens, "why": why})
    engine.close()
    return rows


class _Server:
    """uvicorn serving the app's API in a thread of this process, on a free port."""

    def __init__(self, app: Any):
        import socket

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


HTTP_CLIENT = r"""
import sys, threading, time
from openai import OpenAI
port, n, k = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="local", max_retries=0)
client.models.list()  # connect before the clock starts
text = "Explain in a few sentences why the sky is blue. 하늘은 왜 파란가요?"
tokens = [0] * k
def one(i):
    content = text if k == 1 else f"{text} ({i})"   # the same prompts as the in-process clients
    for chunk in client.chat.completions.create(model="local-chat", max_tokens=n, temperature=0.7, top_p=0.95,
            messages=[{"role": "user", "content": content}], stream=True, stream_options={"include_usage": True}):
        if chunk.usage is not None:
            tokens[i] = chunk.usage.completion_tokens
threads = [threading.Thread(target=one, args=(i,)) for i in range(k)]
t0 = time.perf_counter()
for t in threads:
    t.start()
for t in threads:
    t.join()
print(sum(tokens) / (time.perf_counter() - t0))
"""


def measure_http(dtype: str = "bfloat16") -> dict:
    """One client, then CLIENTS at once, same prompts and length, alternating in-process engine.stream and
    openai over HTTP; default engine config (max_concurrent "auto")."""
    from api import build_api
    from engine.chat import ChatEngine
    from config import AppConfig, EngineConfig
    from engine.loading.sources import resolve_source

    cfg = AppConfig(engine=EngineConfig(cpu_dtype=dtype))
    engine = ChatEngine.from_source(resolve_source("demo:bench"), cfg.engine)
    server = _Server(build_api(cfg, engine))

    def in_process() -> float:
        t0 = time.perf_counter()
        stream = engine.stream(PROMPT, _params(HTTP_TOKENS))
        for _ in stream:
            pass
        return stream.stats.completion_tokens / (time.perf_counter() - t0)

    def over_http(clients: int = 1) -> float:
        # The client runs in its own process, as a real one would (not contending for this GIL).
        out = subprocess.run([sys.executable, "-c", HTTP_CLIENT, str(server.port), str(HTTP_TOKENS), str(clients)],
                             capture_output=True, text=True, timeout=300)
        if out.returncode != 0:
            raise RuntimeError(f"the HTTP client failed: {out.stderr[-2000:]}")
        return float(out.stdout.strip().splitlines()[-1])

    try:
        # HTTP replies may end early on EOS (no min_tokens asked, as in earlier runs): tokens/s stays comparable.
        in_process(), over_http()  # warm-up
        engine_tps, http_tps = [], []
        for _ in range(HTTP_REPEATS):
            engine_tps.append(in_process())
            http_tps.append(over_http())
        engine_many, http_many = [], []
        for _ in range(HTTP_REPEATS):
            engine_many.append(stream_clients(engine, CLIENTS, HTTP_TOKENS)[0])
            http_many.append(over_http(CLIENTS))
        slots = engine.concurrency.why
    finally:
        server.stop()
        engine.close()
    e, h = statistics.median(engine_tps), statistics.median(http_tps)
    em, hm = statistics.median(engine_many), statistics.median(http_many)
    return {"dtype": dtype, "path": engine.load_stats().path, "engine": e, "http": h, "ratio": h / e,
            "engine_many": em, "http_many": hm, "ratio_many": hm / em, "slots": slots}


def run() -> str:
    import torch

    rows = [row for dtype in DTYPES for row in measure_concurrency(dtype)]
    http = measure_http("bfloat16")
    best = max(rows, key=lambda r: r["many"])
    lines = [
        "## Serving many at once (bench-size demo model, CPU)",
        "",
        f"{CLIENTS} clients each stream {NEW_TOKENS} tokens at once (sampling: temperature 0.7, top_p 0.95, "
        "exact length) "
        f"against 1 client alone (mean of one run before and one after); aggregate tokens/s = all tokens / wall time. "
        f"Same loaded model for both paths; torch threads: {torch.get_num_threads()}.",
        "",
        f"| dtype | path | 1 client tok/s | {CLIENTS} clients tok/s | ratio (goal >= 3x) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        mark = "✅" if r["ratio"] >= 3 else "❌"
        lines.append(f"| {r['dtype']} | {r['path']} | {r['single']:.1f} | {r['many']:.1f} | "
                     f"**{r['ratio']:.2f}x** {mark} |")
    lines += [
        "",
        f"Highest aggregate: {best['path']} in {best['dtype']} ({best['many']:.1f} tok/s). Paths: `continuous` is "
        "transformers' continuous batching (engine/serving/batching.py `ContinuousBatcher`, paged KV cache sized explicitly); "
        f"`queue` is the fair FIFO queue over plain `generate`, here with {CLIENTS} slots (each client its own "
        "`generate` thread).",
        "",
        f"Streaming through the API: one client, {HTTP_TOKENS} tokens, median of {HTTP_REPEATS} alternating runs "
        f"after a warm-up, {http['dtype']}, {http['path']} path; the `openai` client (in its own process) streams "
        "`/v1/chat/completions` from the app's API under uvicorn, against `engine.stream` called in-process.",
        "",
        "| dtype | path | engine.stream tok/s | openai over HTTP tok/s | ratio (goal >= 0.95) |",
        "|---|---|---|---|---|",
        f"| {http['dtype']} | {http['path']} | {http['engine']:.1f} | {http['http']:.1f} | "
        f"**{http['ratio']:.3f}** {'✅' if http['ratio'] >= 0.95 else '❌'} |",
        "",
        f"{CLIENTS} clients at once, {HTTP_TOKENS} tokens each, aggregate tokens/s, median of {HTTP_REPEATS} "
        f"alternating runs: {CLIENTS} threads calling `engine.stream` in-process against {CLIENTS} `openai` streams "
        f"(threads of one client process) over HTTP; engine.max_concurrent {http['slots']}.",
        "",
        f"| dtype | path | {CLIENTS} × engine.stream tok/s | {CLIENTS} × openai over HTTP tok/s | ratio (goal >= 0.8) |",
        "|---|---|---|---|---|",
        f"| {http['dtype']} | {http['path']} | {http['engine_many']:.1f} | {http['http_many']:.1f} | "
        f"**{http['ratio_many']:.3f}** {'✅' if http['ratio_many'] >= 0.8 else '❌'} |",
        "",
        "Reproduce: `.venv/bin/python -m bench serving` (or `make bench BENCH_ARGS=serving`).",
    ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run())
