"""Text paths stay linear: streaming detokenization per token at 8,000 vs 64 generated tokens, history
trimming of an 8 MB conversation, and the 8 MB, 20-turn /v1 request answered or refused.

Detokenization: the real Mistral v3 tokenizer (the demo model's), ids fed one at a time through
IncrementalDecoder + StopMatcher exactly as engine.stream does, timed over the 64 tokens ending at 64
and at 8,000 (the same 64-id unit repeated, so both windows decode the same text). The old decoder
(the whole reply decoded on every token) is timed the same way for comparison. Model time is not in
these figures: attention's own growth with context is the model's, not the text path's.
"""
from __future__ import annotations

import json
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from bench.load import DemoApp

TOKENS = 8000
WINDOW = 64
REPEATS = 15
GOAL_RATIO = 1.2
GOAL_SECONDS = 2.0
TURNS = 20
BODY_BYTES = 8 * 2 ** 20
TEXT = ("The reply goes on, with words, numbers 12345 and code `x = y + 1`. 안녕하세요, 반갑습니다! "
        "뷁 똠방각하 🇰🇷 😀 ") * 8


class WholeReplyDecoder:
    """The decoder this replaced (for comparison only): decodes every id on every token."""

    def __init__(self, decode):
        self._decode, self.ids, self._emitted = decode, [], 0

    def push(self, token_ids):
        self.ids.extend(token_ids)
        text = self._decode(self.ids)
        end = len(text)
        while end > self._emitted and text[end - 1] == "\ufffd":
            end -= 1
        piece, self._emitted = text[self._emitted:end], max(self._emitted, end)
        return piece


def _codec():
    from transformers import AutoTokenizer

    from engine.prompting.codec import TextCodec
    from engine.loading.demo.chat import demo_chat_model

    folder = demo_chat_model("tiny")
    return TextCodec.load(folder, AutoTokenizer.from_pretrained(str(folder)))


def _window_costs(codec, make_decoder, ids: list[int]) -> tuple[float, float]:
    """Seconds per token over the WINDOW tokens ending at WINDOW and at len(ids)."""
    from engine.prompting.textstream import StopMatcher

    decoder, stops = make_decoder(codec.decode), StopMatcher(["</end>"])
    early = late_start = 0.0
    t0 = time.perf_counter()
    for n, i in enumerate(ids, 1):
        stops.feed(decoder.push([i]))
        if n == WINDOW:
            early = (time.perf_counter() - t0) / WINDOW
        elif n == len(ids) - WINDOW:
            late_start = time.perf_counter()
    return early, (time.perf_counter() - late_start) / WINDOW


def measure_decoding() -> dict:
    from engine.prompting.textstream import IncrementalDecoder

    codec = _codec()
    unit = codec.encode(TEXT)[:WINDOW]
    ids = (unit * (TOKENS // WINDOW + 1))[:TOKENS]
    new = [_window_costs(codec, IncrementalDecoder, ids) for _ in range(REPEATS)]
    old = [_window_costs(codec, WholeReplyDecoder, ids) for _ in range(2)]
    return {"new_early": statistics.median(e for e, _ in new), "new_late": statistics.median(l for _, l in new),
            "ratio": statistics.median(l / e for e, l in new),   # paired per run: drift hits both windows alike
            "old_early": statistics.median(e for e, _ in old), "old_late": statistics.median(l for _, l in old)}


def big_chat(short_last: bool) -> list[dict]:
    """TURNS user turns (with replies) filling BODY_BYTES; the last question short or as long as the rest."""
    per = BODY_BYTES // (2 * TURNS)
    messages = []
    for i in range(TURNS - 1):
        messages += [{"role": "user", "content": f"question {i} " + "lorem ipsum " * (per // 12)},
                     {"role": "assistant", "content": f"answer {i} " + "dolor sit " * (per // 10)}]
    last = "and the last question?" if short_last else "last " + "lorem ipsum " * (per // 6)
    return messages + [{"role": "user", "content": last}]


def measure_trimming() -> dict:
    """In process: engine trimming of the 8 MB chat (short last question), galloping trim vs the old loop."""
    from transformers import AutoModelForCausalLM

    from engine.loading.demo.chat import demo_chat_model
    from engine.serving.generation import Generator, trim_history

    codec = _codec()
    model = AutoModelForCausalLM.from_pretrained(str(demo_chat_model("tiny")))
    generator = Generator(model, codec, max_context=4096)
    messages = big_chat(short_last=True)
    t0 = time.perf_counter()
    kept, dropped = trim_history(messages, generator.prompt_counter(), max_turns=TURNS, max_prompt_tokens=3584)
    new = time.perf_counter() - t0
    t0 = time.perf_counter()
    old_dropped = _old_trim(messages, generator.count_prompt_tokens, max_turns=TURNS, max_prompt_tokens=3584)
    old = time.perf_counter() - t0
    return {"new": new, "old": old, "dropped": dropped, "same": dropped == old_dropped}


def measure_template_trimming(turns: int = 999) -> dict:
    """In process: SmolLM2's chat template (each count renders it), `turns` short turns, galloping vs the old loop."""
    from transformers import AutoTokenizer

    from engine.prompting.codec import TextCodec
    from engine.serving.generation import PromptCounter, trim_history
    from engine.loading.sources import resolve_source

    folder = resolve_source("demo:smollm2").folder
    codec = TextCodec.load(folder, AutoTokenizer.from_pretrained(str(folder)))
    messages = [m for i in range(turns - 1) for m in ({"role": "user", "content": f"question {i}"},
                                                      {"role": "assistant", "content": f"answer {i}"})]
    messages.append({"role": "user", "content": "and the last question?"})
    counter = PromptCounter(codec)
    t0 = time.perf_counter()
    _, dropped = trim_history(messages, counter, max_turns=10 ** 6, max_prompt_tokens=8128)
    new = time.perf_counter() - t0
    t0 = time.perf_counter()
    old_dropped = _old_trim(messages, PromptCounter(codec), max_turns=10 ** 6, max_prompt_tokens=8128)
    old = time.perf_counter() - t0
    return {"turns": turns, "new": new, "old": old, "counts": counter.calls, "dropped": dropped,
            "same": dropped == old_dropped}


def _old_trim(messages, count_tokens, *, max_turns, max_prompt_tokens) -> int:
    """The loop this replaced (for comparison only): the whole kept conversation counted per dropped turn."""
    from engine.prompting.mistral import normalize_messages

    msgs = normalize_messages(messages)
    system = [m for m in msgs if m["role"] == "system"]
    turns = [m for m in msgs if m["role"] != "system"]
    pairs = [turns[i:i + 2] for i in range(0, len(turns), 2)]
    dropped = max(0, len(pairs) - max_turns)
    while dropped < len(pairs) - 1 and count_tokens(system + [m for p in pairs[dropped:] for m in p]) > max_prompt_tokens:
        dropped += 1
    return dropped


def measure_request() -> list[dict]:
    """The 8 MB, 20-turn body over HTTP: default limits, and max_message_chars raised so trimming runs."""
    rows = []
    for label, limit in (("default (max_message_chars 32000)", None), ("max_message_chars 1000000", 1_000_000)):
        with tempfile.TemporaryDirectory() as tmp:
            config = {"sessions": {"path": str(Path(tmp) / "s")},
                      "engine": {"adapters_dir": str(Path(tmp) / "a"), "demo_size": "tiny"}}
            if limit:
                config["generation"] = {"max_message_chars": limit}
            app = DemoApp(Path(tmp), config)
            try:
                app.wait_ready()
                small = {"model": "local-chat", "max_tokens": 2, "temperature": 0,
                         "messages": [{"role": "user", "content": "hi"}]}
                httpx.post(app.url + "/v1/chat/completions", timeout=300, json=small).raise_for_status()  # warm-up
                t0 = time.perf_counter()
                httpx.post(app.url + "/v1/chat/completions", timeout=300, json=small).raise_for_status()
                rows.append({"server": label, "last": "(a one-word chat, for comparison)", "bytes": len(json.dumps(small)),
                             "status": 200, "seconds": time.perf_counter() - t0, "answer": "reply"})
                for short_last in (True, False):
                    body = json.dumps({"model": "local-chat", "max_tokens": 2, "temperature": 0,
                                       "messages": big_chat(short_last)})
                    t0 = time.perf_counter()
                    r = httpx.post(app.url + "/v1/chat/completions", content=body, timeout=120,
                                   headers={"Content-Type": "application/json"})
                    seconds = time.perf_counter() - t0
                    error = r.json().get("error") if r.status_code != 200 else None
                    rows.append({"server": label, "last": "short" if short_last else "as long as the rest",
                                 "bytes": len(body.encode()), "status": r.status_code, "seconds": seconds,
                                 "answer": (error or {}).get("code") or (error or {}).get("param") or "reply"})
            finally:
                app.stop()
    return rows


def run() -> str:
    d = measure_decoding()
    t = measure_trimming()
    tt = measure_template_trimming()
    requests = measure_request()
    ratio, old_ratio = d["ratio"], d["old_late"] / d["old_early"]
    lines = ["## Text paths (CPU, real Mistral v3 tokenizer)", "",
             f"Streaming detokenization (IncrementalDecoder + StopMatcher), ids one at a time, µs per token over the "
             f"{WINDOW} tokens ending at {WINDOW} and at {TOKENS:,}; median of {REPEATS} runs, the ratio the median "
             "of each run's own ratio (the old whole-reply decoder: 2 runs).", "",
             f"| decoder | at {WINDOW} | at {TOKENS:,} | ratio (goal <= {GOAL_RATIO}) |", "|---|---|---|---|",
             f"| window (now) | {d['new_early'] * 1e6:.1f} | {d['new_late'] * 1e6:.1f} | **{ratio:.2f}** "
             f"{'✅' if ratio <= GOAL_RATIO else '❌'} |",
             f"| whole reply (before) | {d['old_early'] * 1e6:.1f} | {d['old_late'] * 1e6:.1f} | {old_ratio:.1f} |", "",
             f"History trimming in process, 8 MB chat of {TURNS} turns with a short last question, 4,096-token "
             f"context: galloping trim {t['new']:.3f} s, the old drop-one-and-recount loop {t['old']:.1f} s "
             f"(both dropped {t['dropped']} turns: {'same' if t['same'] else 'DIFFERENT'} result).", "",
             f"History trimming on a chat template (SmolLM2's, every count renders it), {tt['turns']} short turns, "
             f"8,128-token budget: galloping from the newest then bisecting {tt['new']:.3f} s in {tt['counts']} counts, "
             f"the old loop {tt['old']:.2f} s (both dropped {tt['dropped']}: "
             f"{'same' if tt['same'] else 'DIFFERENT'} result).", "",
             f"The 8 MB, {TURNS}-turn request over HTTP (`python app.py --demo` with engine.demo_size tiny: Mistral "
             "prompt path; temperature 0, so the plain generate path; max_tokens 2; after one small warm-up "
             f"request; goal: answered or refused in under {GOAL_SECONDS:.0f} s):", "",
             "| server | last message | body MB | status | answer | seconds |", "|---|---|---|---|---|---|"]
    for r in requests:
        ok = "✅" if r["seconds"] < GOAL_SECONDS else "❌"
        lines.append(f"| {r['server']} | {r['last']} | {r['bytes'] / 2**20:.2f} | {r['status']} | {r['answer']} | "
                     f"**{r['seconds']:.2f}** {ok} |")
    lines += ["", "Reproduce: `.venv/bin/python -m bench text`."]
    return "\n".join(lines)
