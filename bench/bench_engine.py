"""Engine overhead: engine.stream against raw model.generate, time to first token, peak RSS while loading.

Bench-size demo model (MistralForCausalLM, hidden 768, 8 layers, real v3 vocab), CPU, greedy,
same prompt and token count for both paths, runs interleaved so machine noise hits both alike.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

NEW_TOKENS = 48
REPEATS = 4
PROMPT = [{"role": "user", "content": "Explain in a few sentences why the sky is blue. 하늘은 왜 파란가요?"}]


class _FirstToken:
    """Minimal streamer for raw generate: notes when the first new token arrives."""

    def __init__(self):
        self.started, self.first, self._prompt = time.perf_counter(), None, True

    def put(self, value):
        if self._prompt:
            self._prompt = False
        elif self.first is None:
            self.first = time.perf_counter() - self.started

    def end(self):
        pass


def _raw(engine, ids):
    streamer = _FirstToken()
    t0 = time.perf_counter()
    with torch.inference_mode():
        out = engine.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS,
                                    min_new_tokens=NEW_TOKENS, do_sample=False, temperature=None, top_p=None,
                                    top_k=None, pad_token_id=engine.codec.eos, streamer=streamer)
    seconds = time.perf_counter() - t0
    return (out.shape[1] - ids.shape[1]) / seconds, streamer.first


def _stream(engine, params):
    t0 = time.perf_counter()
    stream = engine.stream(PROMPT, params)
    for _ in stream:
        pass
    seconds = time.perf_counter() - t0
    return stream.stats.completion_tokens / seconds, stream.stats.first_token_seconds


def measure_dtype(dtype: str) -> dict:
    from engine.chat import ChatEngine
    from config import EngineConfig
    from engine.serving.generation import GenerationParams
    from engine.prompting.mistral import encode_chat
    from engine.loading.sources import resolve_source

    engine = ChatEngine.from_source(resolve_source("demo:bench"), EngineConfig(cpu_dtype=dtype))
    params = GenerationParams(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, temperature=0.0)
    ids = torch.tensor([encode_chat(engine.codec, PROMPT)])
    _raw(engine, ids), _stream(engine, params)  # warm-up
    raw, ours = [], []
    for _ in range(REPEATS):
        raw.append(_raw(engine, ids))
        ours.append(_stream(engine, params))
    med = lambda xs, i: statistics.median(x[i] for x in xs)  # noqa: E731
    return {"dtype": dtype, "raw_tps": med(raw, 0), "stream_tps": med(ours, 0), "raw_ttft": med(raw, 1),
            "stream_ttft": med(ours, 1), "ms_per_token_raw": 1000 / med(raw, 0)}


LOAD_PROBE = r"""
import json, threading, time, psutil, torch, transformers
from transformers import AutoModelForCausalLM
from engine.loading.demo.chat import demo_chat_model
from engine.loading.loader import LoadPlan, load_pretrained
folder = demo_chat_model("bench")
proc = psutil.Process()
base = proc.memory_info().rss
peak = [base]; done = threading.Event()
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], proc.memory_info().rss); time.sleep(0.002)
t = threading.Thread(target=sample); t.start()
model, report = load_pretrained(AutoModelForCausalLM, folder, "demo:bench", LoadPlan(precision="auto"))
done.set(); t.join()
peak[0] = max(peak[0], proc.memory_info().rss)
print(json.dumps({"weights": report.cpu_bytes + report.gpu_bytes, "peak_delta": peak[0] - base,
                  "after_delta": proc.memory_info().rss - base, "rung": report.rung, "seconds": report.seconds}))
"""


def measure_load() -> dict:
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", LOAD_PROBE], capture_output=True, text=True, cwd=root,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def run() -> str:
    from engine.loading.demo.chat import demo_chat_model

    demo_chat_model("bench")
    rows = [measure_dtype(d) for d in ("bfloat16", "float32")]
    load = measure_load()
    lines = ["## Engine overhead (bench-size demo model, CPU)", "",
             f"Greedy, {NEW_TOKENS} new tokens, median of {REPEATS} interleaved runs after a warm-up; "
             "`engine.stream` is the app's streaming path (worker thread + token queue + UTF-8-safe "
             "decoding + stop strings), raw is `model.generate` on the same prompt ids.", "",
             "| dtype | raw generate tok/s | engine.stream tok/s | ratio (goal >= 0.95) | raw TTFT ms | stream TTFT ms |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        ratio = r["stream_tps"] / r["raw_tps"]
        lines.append(f"| {r['dtype']} | {r['raw_tps']:.1f} ({r['ms_per_token_raw']:.1f} ms/token) | "
                     f"{r['stream_tps']:.1f} | **{ratio:.3f}** {'✅' if ratio >= 0.95 else '❌'} | "
                     f"{r['raw_ttft'] * 1000:.0f} | {r['stream_ttft'] * 1000:.0f} |")
    ratio = load["peak_delta"] / load["weights"]
    lines += ["", "Peak resident memory while loading (sampled every 2 ms in a fresh process, minus the RSS "
              "before the load) against the bytes of the loaded weights:", "",
              "| rung | weights MiB | peak RSS growth MiB | RSS growth after load MiB | ratio (goal <= 1.3) | load s |",
              "|---|---|---|---|---|---|",
              f"| {load['rung']} | {load['weights'] / 2**20:.0f} | {load['peak_delta'] / 2**20:.0f} | "
              f"{load['after_delta'] / 2**20:.0f} | **{ratio:.2f}** {'✅' if ratio <= 1.3 else '❌'} | "
              f"{load['seconds']:.1f} |", "",
              "Reproduce: `make bench BENCH_ARGS=engine` (or `.venv/bin/python -m bench engine`).", "",
              "GPU figures (full-size Mistral-7B at fp16/8-bit/4-bit, the ladder under a capped memory "
              "fraction) come from `make gpu-check` on a card, which writes its own GPU section; no run on a GPU yet."]
    return "\n".join(lines)


if __name__ == "__main__":
    print(run())
