"""Benchmark: does a write cost in proportion to its session, not to all sessions?

Builds two stores in a temp folder (10 and 1,000 sessions of 50 messages, one
owner), then alternates appends between them so both see the same machine
noise, and times list/search/open at 1,000 sessions. Every append is the real
one: TinyDB file, flock, temp file, fsync, rename, fsync of the folder.
"""

from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import tinydb

from sessions import SessionStore

OWNER = "bench-user"
MESSAGES_PER_SESSION = 50
APPENDS = 300  # per store
TARGETS = 10  # appends go round-robin to this many sessions in each store, so both grow alike
GOAL_RATIO = 1.5
IMPORT_CHUNK = 100


def _message(i: int, rng: random.Random) -> dict:
    text = " ".join(rng.choice(["안녕하세요", "모델", "hello", "adapter", "quantized", "세션", "token"]) for _ in range(40))
    if i % 2 == 0:
        return {"role": "user", "content": f"question {i}: {text}", "created_at": 1_700_000_000.0 + i}
    return {
        "role": "assistant",
        "content": f"answer {i}: {text}",
        "created_at": 1_700_000_000.0 + i,
        "provenance": {"model": "mistralai/Mistral-7B-Instruct-v0.3", "rung": "4bit", "adapter": None,
                       "prompt_tokens": 120, "completion_tokens": 80, "tokens_per_second": 21.3, "seconds": 3.8},
    }


def _populate(root: Path, sessions: int, rng: random.Random) -> float:
    """Fill a store through its own import path (validation + atomic TinyDB writes)."""
    store = SessionStore(root)
    start = time.perf_counter()
    for first in range(0, sessions, IMPORT_CHUNK):
        batch = [
            {"title": f"chat {n}", "created_at": 1_700_000_000.0 + n, "updated_at": 1_700_000_000.0 + n,
             "messages": [_message(i, rng) for i in range(MESSAGES_PER_SESSION)]}
            for n in range(first, min(sessions, first + IMPORT_CHUNK))
        ]
        report = store.import_json(OWNER, json.dumps({"sessions": batch}))
        if report.skipped:
            raise RuntimeError(f"benchmark data was refused: {report.skipped[:3]}")
    return time.perf_counter() - start


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f}"


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure() -> dict:
    rng = random.Random(7)
    with tempfile.TemporaryDirectory(prefix="bench-sessions-") as tmp:
        roots = {10: Path(tmp) / "s10", 1000: Path(tmp) / "s1000"}
        build = {n: _populate(root, n, rng) for n, root in roots.items()}
        time.sleep(2.2)  # let files age past the summary cache's 2 s "racy" window

        opened = {n: _timed(lambda r=root: SessionStore(r)) for n, root in roots.items()}
        stores = {n: SessionStore(root, check_on_open=False) for n, root in roots.items()}
        list_cold = {n: _timed(lambda s=s: s.list(OWNER)) for n, s in stores.items()}
        list_warm = {n: min(_timed(lambda s=s: s.list(OWNER)) for _ in range(5)) for n, s in stores.items()}
        search = {n: _timed(lambda s=s: s.search(OWNER, "안녕하세요")) for n, s in stores.items()}

        targets = {n: [x["id"] for x in rng.sample(s.list(OWNER, limit=1000), TARGETS)] for n, s in stores.items()}
        times: dict[int, list[float]] = {10: [], 1000: []}
        for k in range(APPENDS):
            for n in (10, 1000) if k % 2 == 0 else (1000, 10):
                sid = targets[n][k % TARGETS]
                message = {"role": "user", "content": f"bench append {k}"}
                start = time.perf_counter()
                stores[n].append(OWNER, sid, message)
                times[n].append(time.perf_counter() - start)
        list_after = {n: _timed(lambda s=s: s.list(OWNER)) for n, s in stores.items()}
        counts = {n: len(s.list(OWNER, limit=1000)) for n, s in stores.items()}

    p50 = {n: statistics.median(t) for n, t in times.items()}
    p90 = {n: statistics.quantiles(t, n=10)[-1] for n, t in times.items()}
    return {
        "build": build, "open": opened, "list_cold": list_cold, "list_warm": list_warm, "search": search,
        "list_after": list_after, "p50": p50, "p90": p90, "counts": counts, "ratio": p50[1000] / p50[10],
    }


def run() -> str:
    """Measure and return the Markdown section for docs/benchmarks.md."""
    r = measure()
    met = r["ratio"] <= GOAL_RATIO
    rows = [
        ("sessions in the store (50 messages each)", str(r["counts"][10]), str(r["counts"][1000])),
        ("`append` p50 (ms)", _ms(r["p50"][10]), _ms(r["p50"][1000])),
        ("`append` p90 (ms)", _ms(r["p90"][10]), _ms(r["p90"][1000])),
        ("`list` first call, files read (ms)", _ms(r["list_cold"][10]), _ms(r["list_cold"][1000])),
        ("`list` cached summaries, best of 5 (ms)", _ms(r["list_warm"][10]), _ms(r["list_warm"][1000])),
        (f"`list` right after {APPENDS} appends (ms)", _ms(r["list_after"][10]), _ms(r["list_after"][1000])),
        ("`search` over all messages (ms)", _ms(r["search"][10]), _ms(r["search"][1000])),
        ("open with start-up check of every file (ms)", _ms(r["open"][10]), _ms(r["open"][1000])),
        ("build through `import_json` (s)", f"{r['build'][10]:.2f}", f"{r['build'][1000]:.2f}"),
    ]
    table = "\n".join(
        ["| measure | 10 sessions | 1,000 sessions |", "|---|---:|---:|"] + [f"| {a} | {b} | {c} |" for a, b, c in rows]
    )
    return f"""## Sessions store

{APPENDS} appends per store, alternating between the two stores, round-robin over
{TARGETS} sessions in each (so sessions grow alike); each append is durable on
return (temp file, fsync, rename, fsync of the folder, under flock). One TinyDB
file per session. Python {platform.python_version()}, tinydb {tinydb.__version__},
{os.cpu_count()} CPU cores, {sys.platform}, temp folder on the local disk.

{table}

Goal: `append` p50 at 1,000 sessions <= {GOAL_RATIO} x p50 at 10 sessions.
Measured ratio: **{r['ratio']:.2f}** -> goal **{'met' if met else 'NOT met'}**.

`list` reads each file once, then trusts an in-memory summary while the file's
stat (inode, size, times) is unchanged and the file is older than 2 s; `search`
reads every file of the owner each time.

Reproduce: `make bench` or `.venv/bin/python -m bench sessions`
(this section alone: `.venv/bin/python -m bench.bench_sessions`).
"""


if __name__ == "__main__":
    print(run())
