"""`python -m bench [name ...]`: run benchmarks and write docs/benchmarks.md.

Each bench/bench_<name>.py has `run() -> str` returning a Markdown section. Sections of benchmarks
not run this time are kept from the previous docs/benchmarks.md, so one bench can be re-run alone.
"""
from __future__ import annotations

import importlib
import pkgutil
import platform
import re
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "benchmarks.md"
MARK = "<!-- bench:{} -->"


def available() -> list[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if m.name.startswith("bench_"))


def previous_sections() -> dict[str, str]:
    if not OUT.exists():
        return {}
    parts = re.split(r"<!-- bench:([\w-]+) -->\n", OUT.read_text(encoding="utf-8"))
    return {parts[i]: parts[i + 1].rstrip() + "\n" for i in range(1, len(parts) - 1, 2)}


def machine() -> str:
    return (f"{platform.machine()}, {psutil.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.platform(terse=True)}")


def write_report(new: dict[str, str]) -> None:
    """Replace the named sections of docs/benchmarks.md, keeping the others (also used by bench/load.py)."""
    sections = previous_sections() | new
    header = ("# Benchmarks\n\nWritten by `make bench` (`python -m bench [name ...]`). Ratios are measured side by "
              "side in one run on the same machine, which is shared and noisy: compare ratios, not absolute "
              f"numbers across runs.\n\nMachine of the last run: {machine()}.\n\n")
    body = "\n".join(MARK.format(n) + "\n" + sections[n] for n in sorted(sections))
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(header + body, encoding="utf-8")
    print(f"[bench] wrote {OUT.relative_to(ROOT)}")


def stamp(name: str, text: str, seconds: float) -> str:
    return text.rstrip() + f"\n\n_{name}: measured {time.strftime('%Y-%m-%d')} in {seconds:.0f} s._\n"


def main(names: list[str]) -> int:
    names = names or available()
    unknown = set(names) - set(available())
    if unknown:
        print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; available: {', '.join(available())}")
        return 2
    for name in names:
        started = time.perf_counter()
        print(f"[bench] {name} ...", flush=True)
        module = importlib.import_module(f"bench.bench_{name}")
        section = stamp(name, module.run(), time.perf_counter() - started)
        print(section, flush=True)
        write_report({name: section})  # after each, so a later failure keeps what was measured
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
