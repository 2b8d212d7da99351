"""Benchmark: a warm start (venv installed, model files built) to a page that answers, and Ctrl+C to exit.

Runs `python app.py --demo` (the offline model) as a person would, HF_HUB_OFFLINE unset, with its own
config and data folder; times the first 200 from /health and, separately, the phase lines the app prints;
then sends SIGINT and times the exit. Goals (issue 12): ready <= 20 s, Ctrl+C <= 3 s on this machine.
Beside it, `import gradio` alone in a fresh process, with and without app.py's hook that skips gradio's stub
writer (IMPORT_PAIRS A/B pairs, order alternating): the process's CPU seconds.
"""
from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from bench.process import free_port

ROOT = Path(__file__).resolve().parents[1]
RUNS = 3
IMPORT_PAIRS = 5
READY_GOAL_S = 20.0
STOP_GOAL_S = 3.0


def one_start(folder: Path) -> dict:
    port = free_port()
    config = folder / "config.json"
    config.write_text(json.dumps({"sessions": {"path": str(folder / "sessions")},
                                  "engine": {"adapters_dir": str(folder / "adapters")}}))
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"} | {"PYTHONPATH": str(ROOT),
                                                                           "PYTHONUNBUFFERED": "1"}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--demo", "--config", str(config),
                             "--port", str(port)], cwd=folder, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    ready = None
    while time.monotonic() - started < 300 and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                ready = time.monotonic() - started
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    if ready is None:
        proc.kill()
        proc.wait()
        time.sleep(0.2)
        raise RuntimeError("the app never answered /health:\n" + "".join(lines[-20:]))
    stop_started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    stop = time.monotonic() - stop_started
    time.sleep(0.2)
    phases = {m.group(2): float(m.group(1)) for m in
              (re.match(r"^\[\s*([\d.]+) s\] (.*?)(?: \(.*|…)?$", line.strip()) for line in lines) if m}
    return {"ready": ready, "stop": stop, "rc": proc.returncode, "phases": phases,
            "traceback": any("Traceback" in line for line in lines)}


def import_cpu_seconds(with_hook: bool) -> float:
    """CPU seconds (user + system) of a fresh Python that imports gradio, with app.py's hook installed or not."""
    code = ("import app; app.skip_gradio_stub_writer(); " if with_hook else "") + \
        "import gradio, os; t = os.times(); print(t.user + t.system)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    return float(out.stdout.strip().splitlines()[-1])


def import_ab() -> list[tuple[float, float]]:
    """(with the hook, without) CPU seconds, IMPORT_PAIRS pairs; which one runs first alternates."""
    pairs = []
    for i in range(IMPORT_PAIRS):
        first = import_cpu_seconds(i % 2 == 0)
        second = import_cpu_seconds(i % 2 == 1)
        pairs.append((first, second) if i % 2 == 0 else (second, first))
    return pairs


def run() -> str:
    load = os.getloadavg()[0]
    pairs = import_ab()
    ratios = [hook / plain for hook, plain in pairs]
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-start-") as tmp:
        for i in range(RUNS):
            folder = Path(tmp) / str(i)
            folder.mkdir()
            runs.append(one_start(folder))
    ready = [r["ready"] for r in runs if r["ready"] is not None]
    stops = [r["stop"] for r in runs]
    names = ["starting", "importing torch, transformers and gradio", "loading the chat model", "building the page",
             "ready at http://127.0.0.1"]
    rows = []
    for name in names:
        seen = [next((v for k, v in r["phases"].items() if k.startswith(name)), None) for r in runs]
        seen = [s for s in seen if s is not None]
        rows.append(f"| {name} | {statistics.median(seen):.1f} s |" if seen else f"| {name} | not seen |")
    ok_ready = ready and statistics.median(ready) <= READY_GOAL_S
    ok_stop = max(stops) <= STOP_GOAL_S
    return "\n".join([
        "## Start and Ctrl+C",
        "",
        f"`python app.py --demo` (the offline SmolLM2-135M model, warm venv, model files already built), "
        f"{RUNS} runs one after another, HF_HUB_OFFLINE unset (no hub here: decided by one request). "
        f"Load average when it began: {load:.1f} on {psutil.cpu_count()} cores (other work shares the machine).",
        "",
        "| measure | median | all runs | goal |",
        "|---|---|---|---|",
        f"| process start to /health 200 | {statistics.median(ready):.1f} s | "
        f"{', '.join(f'{r:.1f}' for r in ready)} | <= {READY_GOAL_S:.0f} s "
        f"{'met' if ok_ready else 'NOT met'} |" if ready else "| process start to /health 200 | never | | |",
        f"| SIGINT to process exit | {statistics.median(stops):.2f} s | {', '.join(f'{s:.2f}' for s in stops)} | "
        f"<= {STOP_GOAL_S:.0f} s {'met' if ok_stop else 'NOT met'} |",
        "",
        f"Exit codes {sorted({r['rc'] for r in runs})}; a traceback on the terminal in "
        f"{sum(r['traceback'] for r in runs)} of {RUNS} runs.",
        "",
        f"`import gradio` in a fresh process, CPU seconds, {IMPORT_PAIRS} A/B pairs: with app.py's stub-writer hook "
        f"median {statistics.median(h for h, _ in pairs):.2f} s, without {statistics.median(p for _, p in pairs):.2f} s; "
        f"ratio per pair median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f}).",
        "",
        "When each phase line appeared (seconds since the process began, median):",
        "",
        "| phase | at |",
        "|---|---|",
        *rows,
    ])


if __name__ == "__main__":
    print(run())
