"""Wall time of the test suite: `make test` (pytest-xdist, 2 workers), the same in one process, and `make test-stress` 3 times.

    python -m bench.suite [serial] [parallel] [stress]      (default: all three; more than an hour on 2 cores)

Run it on an otherwise idle machine: anything else running makes the serial/parallel comparison meaningless.
Each mode's last result is kept in bench/results/suite.json, so modes can be run one at a time; the "suite"
section of docs/benchmarks.md shows all of them. Not a bench_*.py module: `make bench` does not run it.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
MODES = {
    "serial": ["make", "test", "PYTEST_WORKERS=0"],
    "parallel": ["make", "test"],
    "stress": ["make", "test-stress", "STRESS_RUNS=3"],
}
SUMMARY = re.compile(r"^=* ?(\d+ (?:passed|failed|errors?)\b.*?) in [\d.]+s", re.MULTILINE)


def measure(mode: str) -> dict:
    """Run one mode, its output to bench/results/suite-<mode>.log; wall time, exit code, pytest's summaries."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    log = RESULTS / f"suite-{mode}.log"
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call(MODES[mode], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    text = log.read_text(errors="replace")
    return {"mode": mode, "command": " ".join(MODES[mode]), "seconds": round(seconds), "exit": code,
            "load_before": round(load_before, 2), "date": time.strftime("%Y-%m-%d %H:%M"),
            "summaries": SUMMARY.findall(text), "stress_runs": re.findall(r"\[stress\] run \d+ \w+ after \d+ s|"
                                                                          r"\[stress\] run \d+ passed in \d+ s", text)}


def section(results: dict[str, dict]) -> str:
    rows = ["| mode | command | wall time | result | load average before |", "|---|---|---|---|---|"]
    for mode in MODES:
        r = results.get(mode)
        if r is None:
            continue
        result = "; ".join(r["stress_runs"] or r["summaries"]) or f"exit {r['exit']}"
        rows.append(f"| {mode} | `{r['command']}` | {r['seconds'] / 60:.1f} min | "
                    f"{'passed' if r['exit'] == 0 else 'FAILED'}: {result} | {r['load_before']} |")
    return ("## Test suite wall time\n\nWhole suite on this machine (`python -m bench.suite`): serial, with "
            "pytest-xdist on 2 workers (one file per worker at a time), and three stress runs in a row beside "
            "two CPU hogs (`make test-stress`). Measured on an otherwise idle machine.\n\n" + "\n".join(rows) + "\n")


def main(argv: list[str]) -> int:
    modes = argv or list(MODES)
    unknown = set(modes) - set(MODES)
    if unknown:
        print(f"unknown mode(s): {', '.join(sorted(unknown))}; choose from {', '.join(MODES)}")
        return 2
    store = RESULTS / "suite.json"
    results = json.loads(store.read_text()) if store.exists() else {}
    for mode in modes:
        print(f"[suite] {mode}: {' '.join(MODES[mode])} ...", flush=True)
        results[mode] = measure(mode)
        print(f"[suite] {mode}: {results[mode]}", flush=True)
        store.write_text(json.dumps(results, indent=1))
    from bench.__main__ import write_report

    write_report({"suite": section(results)})
    return 0 if all(results[m]["exit"] == 0 for m in modes) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
