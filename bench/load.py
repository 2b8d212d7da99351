"""Load test: Debian `hey` against /v1/chat/completions of an app it starts with the demo model.

    python -m bench.load [--rounds 5] [--requests 1000] [--concurrency 50] [--max-tokens 8] [--size bench]
                         [--timeout 20] [--precision 4bit]   (make load)

Each round is `hey -n 1000 -c 50 -t 20 -m POST ...` (20 s is hey's own default wait) against the app with its
default config (admission by expected wait on: server.max_wait_s). Passes when every request is answered
within hey's wait, 200 or a documented busy answer (429/503 with Retry-After), with 0 client timeouts, the
server still answers /health after the last round, and its resident memory after the last round is within
10 % of round 2 (round 1 warms caches up). Prints a Markdown section, writes it to bench/results/load.md, and
returns it from run().
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "load.md"
BUSY = ("429", "503")


@dataclass
class Round:
    number: int
    seconds: float
    statuses: dict[str, int]
    errors: list[str]
    p50: float | None
    p95: float | None
    rps: float | None
    rss_mib: float
    alive: bool
    busy_checked: str = ""             # how a 429/503, if any, was checked for Retry-After

    @property
    def timeouts(self) -> int:
        """Requests hey gave up on (no answer within its -t seconds)."""
        return sum(int(m.group(1)) for e in self.errors
                   if (m := re.match(r"\[(\d+)\]", e)) and ("Timeout" in e or "deadline" in e))

    @property
    def failures(self) -> int:
        bad = sum(n for code, n in self.statuses.items() if code != "200" and code not in BUSY)
        return bad + sum(int(m.group(1)) for e in self.errors if (m := re.match(r"\[(\d+)\]", e)))


@dataclass
class Summary:
    rounds: list[Round] = field(default_factory=list)
    startup: float = 0.0
    settings: dict = field(default_factory=dict)


def parse_hey(text: str) -> tuple[dict[str, int], list[str], float | None, float | None, float | None]:
    """(status counts, error lines, p50 s, p95 s, requests/s) from hey's summary."""
    statuses = {m.group(1): int(m.group(2)) for m in re.finditer(r"\[(\d{3})\]\s+(\d+) responses", text)}
    errors = []
    if "Error distribution:" in text:
        tail = text.split("Error distribution:", 1)[1]
        errors = [ln.strip() for ln in tail.splitlines() if ln.strip().startswith("[")]

    def pct(p: str) -> float | None:
        m = re.search(rf"\s{p}% in ([\d.]+) secs", text)
        return float(m.group(1)) if m else None

    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return statuses, errors, pct("50"), pct("95"), float(rps.group(1)) if rps else None


class DemoApp:
    """`python app.py --demo` on a free port with its own config and data folder."""

    def __init__(self, folder: Path, config: dict):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (folder / "config.json").write_text(json.dumps(config))
        env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "APP_API_KEY": ""}
        self.server = ServerProcess("the app", [sys.executable, str(ROOT / "app.py"), "--demo", "--config",
                                                str(folder / "config.json"), "--port", str(self.port)],
                                    cwd=folder, env=env, log=folder / "server.log")

    def wait_ready(self, timeout: float = 180) -> float:
        started = time.time()
        while time.time() - started < timeout:
            if self.server.answers(self.url + "/health", timeout=10):
                return time.time() - started
            time.sleep(0.5)
        raise RuntimeError(f"the app did not answer /health within {timeout:.0f}s")

    def alive(self) -> bool:
        try:
            return self.server.answers(self.url + "/health", timeout=10)
        except RuntimeError:
            return False

    def rss_mib(self) -> float:
        return self.server.rss_mib()

    def stop(self) -> None:
        self.server.stop()


class BusyProbe(threading.Thread):
    """One extra client posting while hey runs, until it gets a 429/503: hey does not show headers, so this
    checks that busy answers carry Retry-After. (After hey ends, one client alone is never refused.)"""

    def __init__(self, url: str, body: str):
        super().__init__(daemon=True)
        self.url, self.body, self.done, self.result = url, body, threading.Event(), "no busy answer seen by the probe"

    def run(self) -> None:
        while not self.done.is_set():
            try:
                r = httpx.post(self.url, content=self.body, headers={"Content-Type": "application/json"}, timeout=60)
            except httpx.HTTPError:
                continue
            if r.status_code in (429, 503):
                self.result = f"{r.status_code} with Retry-After: {r.headers.get('Retry-After')}"
                return


def run_round(n: int, app: DemoApp, body: str, args: argparse.Namespace) -> Round:
    url = app.url + "/v1/chat/completions"
    cmd = ["hey", "-n", str(args.requests), "-c", str(args.concurrency), "-t", str(args.timeout), "-m", "POST",
           "-H", "Content-Type: application/json", "-d", body, url]
    probe = BusyProbe(url, body)
    started = time.perf_counter()
    probe.start()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    seconds = time.perf_counter() - started
    probe.done.set()
    probe.join(70)
    if out.returncode != 0:
        raise RuntimeError(f"hey failed ({out.returncode}): {out.stderr[-2000:]}")
    statuses, errors, p50, p95, rps = parse_hey(out.stdout)
    rnd = Round(n, seconds, statuses, errors, p50, p95, rps, app.rss_mib(), app.alive())
    if any(code in statuses for code in BUSY):
        rnd.busy_checked = probe.result
    print(f"[load] round {n}: {seconds:.1f}s statuses={statuses} errors={errors} p50={p50} p95={p95} "
          f"rss={rnd.rss_mib:.0f} MiB alive={rnd.alive}", flush=True)
    return rnd


def markdown(s: Summary) -> str:
    a = s.settings
    ms = lambda v: f"{v * 1000:.0f}" if v is not None else "-"  # noqa: E731
    rows = [f"| {r.number} | {r.seconds:.1f} | {r.rps or 0:.1f} | {ms(r.p50)} | {ms(r.p95)} | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(r.statuses.items())) or '-'} | {r.timeouts} | {r.failures} | "
            f"{r.rss_mib:.0f} |" for r in s.rounds]
    # round 1 warms caches up: compare the last round with round 2 (with two rounds, with round 1)
    last, second = s.rounds[-1], s.rounds[min(1, len(s.rounds) - 2)] if len(s.rounds) > 1 else s.rounds[0]
    growth = (last.rss_mib - second.rss_mib) / second.rss_mib
    failures = sum(r.failures for r in s.rounds)
    busy = [f"round {r.number}: {r.busy_checked}" for r in s.rounds if r.busy_checked]
    ok_fail, ok_mem, ok_alive = failures == 0, abs(growth) <= 0.10, all(r.alive for r in s.rounds)
    timeouts = sum(r.timeouts for r in s.rounds)
    answered = sum(n for r in s.rounds for code, n in r.statuses.items() if code == "200" or code in BUSY)
    asked = a["requests"] * len(s.rounds)
    total = sum(r.seconds for r in s.rounds)
    mark = lambda ok: "✅" if ok else "❌"  # noqa: E731
    return "\n".join([
        "## Load test (`hey` against /v1/chat/completions, demo model)",
        "",
        f"`hey -n {a['requests']} -c {a['concurrency']} -t {a['timeout']} -m POST -H 'Content-Type: application/json' "
        f"-d '{a['body']}' .../v1/chat/completions`, {len(s.rounds)} rounds against one app started with "
        f"`python app.py --demo` ({a['model']}, {a['serving']} path, {a['slots']} slots ({a['why']}), queue "
        f"{a['queue']}, server.max_wait_s {a['max_wait_s']}); startup {s.startup:.0f} s, all rounds {total:.0f} s; "
        f"load average {a['loadavg']} before the first round.",
        "",
        "| round | seconds | requests/s | p50 ms | p95 ms | statuses | client timeouts | failures | server RSS MiB |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- answered (200, or 503/429 busy) within hey's {a['timeout']} s: **{answered} / {asked}**, client "
        f"timeouts **{timeouts}** {mark(answered == asked and timeouts == 0)}",
        f"- failures other than 429/503 busy answers: **{failures}** {mark(ok_fail)}"
        + (f" ({'; '.join(busy)})" if busy else ""),
        f"- server alive after every round: {mark(ok_alive)}",
        f"- RSS after round {last.number} vs round {second.number}: {last.rss_mib:.0f} vs {second.rss_mib:.0f} MiB, "
        f"**{growth:+.1%}** (goal within ±10%) {mark(ok_mem)}",
        "",
        "Reproduce: `make load` (`.venv/bin/python -m bench.load`).",
    ]) + "\n"


def run(rounds: int = 5, requests: int = 1000, concurrency: int = 50, max_tokens: int = 8,
        timeout: int = 20, size: str = "bench", precision: str = "auto") -> str:
    if shutil.which("hey") is None:
        raise SystemExit("hey is not installed: `make system-packages` (Debian package hey)")
    args = argparse.Namespace(rounds=rounds, requests=requests, concurrency=concurrency, timeout=timeout)
    body = json.dumps({"model": "local-chat", "max_tokens": max_tokens,
                       "messages": [{"role": "user", "content": "Say hello. 안녕하세요?"}]}, ensure_ascii=False)
    folder = Path(tempfile.mkdtemp(prefix="load-"))
    app = DemoApp(folder, {"sessions": {"path": str(folder / "sessions")},
                           # bench: the random model with a realistic decode speed (tiny answers too fast to queue)
                           "engine": {"adapters_dir": str(folder / "adapters"), "demo_size": size,
                                      "precision": precision}})
    summary = Summary()
    try:
        summary.startup = app.wait_ready()
        health = httpx.get(app.url + "/health", timeout=10).json()
        summary.settings = {"requests": requests, "concurrency": concurrency, "body": body,
                            "model": f"{health['model']} at {health['rung']}",
                            "serving": health["serving"], "slots": health["queue"]["slots"],
                            "queue": health["queue"]["max_waiting"], "timeout": timeout,
                            "why": (health.get("concurrency") or {}).get("why", "set"),
                            "max_wait_s": health["queue"].get("max_wait_s"),
                            "loadavg": " / ".join(f"{x:.1f}" for x in os.getloadavg())}
        for n in range(1, rounds + 1):
            summary.rounds.append(run_round(n, app, body, args))
    finally:
        app.stop()
        shutil.rmtree(folder, ignore_errors=True)
    text = markdown(summary)
    out = results_file(precision)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return text


def results_file(precision: str) -> Path:
    return OUT if precision == "auto" else OUT.with_name(f"load-{precision}.md")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--concurrency", type=int, default=50)
    p.add_argument("--max-tokens", type=int, default=8)
    p.add_argument("--timeout", type=int, default=20, help="seconds hey waits for one answer (hey's default: 20)")
    p.add_argument("--size", default="bench", choices=("tiny", "bench"), help="demo model size")
    p.add_argument("--precision", default="auto", help="engine.precision of the app under load (e.g. 4bit)")
    a = p.parse_args(argv)
    started = time.perf_counter()
    text = run(a.rounds, a.requests, a.concurrency, a.max_tokens, a.timeout, a.size, a.precision)
    print(text)
    print(f"[load] wrote {results_file(a.precision).relative_to(ROOT)}")
    from bench.__main__ import stamp, write_report

    name = "load" if a.precision == "auto" else f"load-{a.precision}"     # its own section of docs/benchmarks.md
    write_report({name: stamp(name, text, time.perf_counter() - started)})
    return 0 if "❌" not in text else 1


if __name__ == "__main__":
    sys.exit(main())
