"""Ours vs `transformers serve`, side by side on the same model folder (the bench-size demo model).

    python -m bench peer            (about 8 minutes on a quiet 2-core machine; writes docs/benchmarks.md)
    BENCH_PEER_QUICK=1 python -m bench.bench_peer   (tiny model, small counts: checks the bench itself runs)

Seven servers run at once, each started by this bench: this app (`app.py --demo`, engine.demo_size bench,
default config, and again with engine.precision 4bit beside `transformers serve --quantization bnb-4bit`), Hugging Face's `transformers serve FOLDER --continuous-batching` with its cache sized
explicitly (twice, see below) and with its default cache (a share of system RAM: its resident memory is the
figure to read there), and `transformers serve FOLDER` without continuous batching. The peer samples only
when the folder's generation_config.json says do_sample (it ignores a request's temperature otherwise, and
its continuous batching keeps the first request's sampling settings for all), so it serves a copy of the
folder with do_sample true for the sampled rows (temperature 0.7, top_p 0.95, what the app's clients send by
default) and the original folder (greedy) for the greedy rows (temperature 0). Every round visits the
servers in turn (interleaved), with the same streaming client (httpx, SSE, usage from
`stream_options.include_usage`). Figures: idle CPU (psutil cpu_times over IDLE_SECONDS with no client), one
client's decode tokens/s, aggregate tokens/s and first-token p50 for 8 and 32 clients (and for 8 clients
whose requests carry a seed, as lm-evaluation-harness sends, or a JSON schema, as agents do, with how many
replies kept to the schema), `hey` overload
(answered within hey's 20 s, by status), and resident memory after the runs. Load average is printed with
each round: on a shared machine, compare within a round.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.process import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[1]
QUICK = os.environ.get("BENCH_PEER_QUICK") == "1"
SIZE = "tiny" if QUICK else "bench"
ROUNDS = 1 if QUICK else 2
IDLE_SECONDS = 5 if QUICK else 20
SINGLE_TOKENS = 16 if QUICK else 64
LOADS = [(4, 8)] if QUICK else [(8, 64), (32, 32)]      # (clients, tokens each)
SAMPLED, GREEDY, SEEDED, SCHEMA = "sampled", "greedy", "seeded", "json schema"
TEMPERATURE = {SAMPLED: 0.7, GREEDY: 0.0, SEEDED: 0.7, SCHEMA: 0.0}
# What lm-evaluation-harness and agents add to a request (issue 23): a seed on every call; a JSON schema.
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"], "additionalProperties": False}
EXTRA = {SAMPLED: {"top_p": 0.95}, GREEDY: {}, SEEDED: {"top_p": 0.95, "seed": 1234},
         SCHEMA: {"response_format": {"type": "json_schema",
                                      "json_schema": {"name": "person", "schema": PERSON, "strict": True}}}}
MODES = (SAMPLED, GREEDY, SEEDED, SCHEMA)
SHAPE_LOADS = LOADS[:1]          # the seeded and schema rows: the first load only (time)
HEY = (20, 10) if QUICK else (200, 50)                   # (-n, -c)
HEY_TOKENS = 8
CB_PAGE, CB_BLOCKS, CB_BATCH_TOKENS = 256, 64, 512      # the peer's continuous-batching cache, explicit
PROMPT = [{"role": "user", "content": "Explain in a few sentences why the sky is blue. 하늘은 왜 파란가요?"}]


@dataclass
class Server:
    name: str
    settings: str
    argv: list[str]
    model: str
    health: str
    modes: tuple[str, ...] = (SAMPLED,)
    env: dict = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    process: ServerProcess | None = None
    results: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, folder: Path) -> None:
        argv = [a.replace("{port}", str(self.port)) for a in self.argv]
        self.process = ServerProcess(self.name, argv, cwd=folder, env=os.environ | {"PYTHONPATH": str(ROOT)} | self.env,
                                     log=folder / f"{self.name.replace(' ', '_')}.log")

    def ready(self) -> bool:
        return self.process.answers(self.url + self.health)

    def rss_mib(self) -> float:
        return self.process.rss_mib()

    def cpu_seconds(self) -> float:
        return self.process.cpu_seconds()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


def sampling_copy(folder: Path, work: Path) -> Path:
    """The model folder with do_sample true in generation_config.json (files linked, not copied)."""
    copy = work / "model-do-sample"
    copy.mkdir()
    for f in folder.iterdir():
        if f.name != "generation_config.json":
            (copy / f.name).symlink_to(f.resolve())
    config = json.loads((folder / "generation_config.json").read_text())
    (copy / "generation_config.json").write_text(json.dumps(config | {"do_sample": True}))
    return copy


def servers(folder: Path, sampling_folder: Path) -> list[Server]:
    cli = str(Path(sys.executable).parent / "transformers")

    def peer(where: Path, *extra: str) -> list[str]:
        return [cli, "serve", str(where), "--host", "127.0.0.1", "--port", "{port}", "--device", "cpu",
                "--dtype", "bfloat16", *extra]

    cb = ("--continuous-batching", "--cb-block-size", str(CB_PAGE), "--cb-num-blocks", str(CB_BLOCKS),
          "--cb-max-batch-tokens", str(CB_BATCH_TOKENS))
    cb_settings = " ".join(cb) + ", bf16"
    ours = [sys.executable, str(ROOT / "app.py"), "--demo", "--port", "{port}"]
    return [
        Server("ours", "app.py --demo, default config (engine.max_concurrent \"auto\", server.max_wait_s as shipped)",
               ours + ["--config", "config.json"], "local-chat", "/health", MODES, env={"APP_API_KEY": ""}),
        Server("transformers serve CB", f"{cb_settings}, folder with do_sample true",
               peer(sampling_folder, *cb), str(sampling_folder), "/health", (SAMPLED, SEEDED)),
        Server("transformers serve CB, greedy folder", f"{cb_settings}, the folder as built (do_sample false)",
               peer(folder, *cb), str(folder), "/health", (GREEDY, SCHEMA)),
        Server("ours 4-bit", "app.py --demo, engine.precision 4bit (bitsandbytes nf4, double quant, float32 compute on the CPU)",
               ours + ["--config", "config-4bit.json"], "local-chat", "/health", (SAMPLED,), env={"APP_API_KEY": ""}),
        Server("transformers serve CB 4-bit", f"{cb_settings}, --quantization bnb-4bit (nf4, double quant, float32 compute: "
               "transformers' default), folder with do_sample true",
               peer(sampling_folder, *cb, "--quantization", "bnb-4bit"), str(sampling_folder), "/health", (SAMPLED,)),
        Server("transformers serve CB, default cache", "--continuous-batching, bf16, folder with do_sample true, "
               "cache sized by transformers (a share of system RAM)",
               peer(sampling_folder, "--continuous-batching"), str(sampling_folder), "/health", (SAMPLED,)),
        Server("transformers serve plain", "no continuous batching, bf16, folder with do_sample true",
               peer(sampling_folder), str(sampling_folder), "/health", (SAMPLED,)),
    ]


async def sse_data(r: httpx.Response):
    """Each event's data. Lines split at "\n" only, as SSE does: httpx's aiter_lines also splits at U+2028,
    which a reply may hold raw (the peer's JSON leaves it so)."""
    buffer = ""
    async for text in r.aiter_text():
        *lines, buffer = (buffer + text).split("\n")
        for line in lines:
            line = line.rstrip("\r")
            if line.startswith("data: ") and line != "data: [DONE]":
                yield line[6:]


async def one_stream(http: httpx.AsyncClient, server: Server, tokens: int, mode: str) -> dict:
    """One streaming request: first-token seconds, tokens (from usage), seconds, status."""
    body = {"model": server.model, "messages": PROMPT, "max_tokens": tokens, "temperature": TEMPERATURE[mode],
            "stream": True, "stream_options": {"include_usage": True}} | EXTRA[mode]
    started, first, used, chunks, text = time.perf_counter(), None, None, 0, []
    async with http.stream("POST", server.url + "/v1/chat/completions", json=body) as r:
        if r.status_code != 200:
            await r.aread()
            return {"status": r.status_code, "ttft": None, "tokens": 0, "seconds": time.perf_counter() - started}
        async for data in sse_data(r):
            event = json.loads(data)
            if event.get("usage"):
                used = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    text.append(choice["delta"]["content"])
                    first = first or time.perf_counter() - started
    return {"status": 200, "ttft": first, "tokens": used if used is not None else chunks,
            "seconds": time.perf_counter() - started, "valid": valid_person("".join(text))}


def valid_person(text: str) -> bool:
    """Whether a reply is a JSON object of PERSON's shape (a reply cut by max_tokens is not)."""
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return (isinstance(value, dict) and set(value) == {"name", "age"} and isinstance(value["name"], str)
            and isinstance(value["age"], int))


async def load(server: Server, clients: int, tokens: int, mode: str = SAMPLED) -> dict:
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)
    async with httpx.AsyncClient(timeout=600, limits=limits) as http:
        started = time.perf_counter()
        outs = await asyncio.gather(*(one_stream(http, server, tokens, mode) for _ in range(clients)),
                                    return_exceptions=True)
        wall = time.perf_counter() - started
    ok = [o for o in outs if isinstance(o, dict) and o["status"] == 200]
    errors = len(outs) - len(ok)
    ttfts = [o["ttft"] for o in ok if o["ttft"] is not None]
    return {"tps": sum(o["tokens"] for o in ok) / wall, "ttft_p50": statistics.median(ttfts) if ttfts else None,
            "errors": errors, "valid": sum(o["valid"] for o in ok), "answered": len(ok), "single_tps": (ok[0]["tokens"] / ok[0]["seconds"]) if clients == 1 and ok else None}


def idle_cores(peers: list[Server]) -> list[float]:
    """CPU cores each server burns over the same IDLE_SECONDS with no client (all idle at once)."""
    before, t0 = [s.cpu_seconds() for s in peers], time.monotonic()
    time.sleep(IDLE_SECONDS)
    wall = time.monotonic() - t0
    return [(s.cpu_seconds() - b) / wall for s, b in zip(peers, before)]


def hey(server: Server) -> str:
    """`hey -n N -c C` with short replies: how many answered within hey's 20 s, by status."""
    if not shutil.which("hey"):
        return "hey not installed"
    n, c = HEY
    body = json.dumps({"model": server.model, "messages": PROMPT, "max_tokens": HEY_TOKENS})
    out = subprocess.run(["hey", "-n", str(n), "-c", str(c), "-m", "POST", "-T", "application/json", "-d", body,
                          server.url + "/v1/chat/completions"], capture_output=True, text=True, timeout=900).stdout
    statuses = dict(re.findall(r"\[(\d{3})\]\s+(\d+) responses", out))
    timeouts = sum(int(m) for m in re.findall(r"\[(\d+)\]\s+Post .*(?:Timeout|deadline)", out))
    answered = sum(int(v) for v in statuses.values())
    shown = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items())) or "none"
    return f"{answered} / {n} answered ({shown}); {timeouts} client timeouts"


def loadavg() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def measure() -> tuple[list[Server], list[str]]:
    from engine.loading.demo.chat import demo_chat_model

    folder = demo_chat_model(SIZE)
    work = Path(tempfile.mkdtemp(prefix="bench-peer-"))
    (work / "config.json").write_text(json.dumps({"engine": {"demo_size": SIZE},
                                                  "sessions": {"path": str(work / "sessions")}}))
    (work / "config-4bit.json").write_text(json.dumps({"engine": {"demo_size": SIZE, "precision": "4bit"},
                                                       "sessions": {"path": str(work / "sessions-4bit")}}))
    peers, notes = servers(folder, sampling_copy(folder, work)), []
    try:
        for s in peers:
            s.start(work)
        deadline = time.monotonic() + 600
        while not all(s.ready() for s in peers):
            if time.monotonic() > deadline:
                raise RuntimeError("the servers did not all answer within 600 s")
            time.sleep(1)
        ours = httpx.get(peers[0].url + "/health", timeout=10).json().get("concurrency") or {}
        peers[0].settings += f"; engine.max_concurrent resolved to {ours.get('why', '?')}"
        time.sleep(3)
        for s, cores in zip(peers, idle_cores(peers)):     # idle first: no client has connected yet
            s.results["idle"] = cores
        for s in peers:                                    # warm-up (first request compiles, allocates)
            asyncio.run(load(s, 1, 8, s.modes[0]))
        for rnd in range(1, ROUNDS + 1):
            notes.append(f"round {rnd}: load average {loadavg()} at start")
            for mode in MODES:
                for s in (s for s in peers if mode in s.modes):   # interleaved, server by server
                    single = asyncio.run(load(s, 1, SINGLE_TOKENS, mode))
                    s.results.setdefault((mode, "single"), []).append(single["single_tps"] or 0.0)
                    for clients, tokens in (LOADS if mode in (SAMPLED, GREEDY) else SHAPE_LOADS):
                        s.results.setdefault((mode, clients, tokens), []).append(
                            asyncio.run(load(s, clients, tokens, mode)))
        notes.append(f"hey rounds: load average {loadavg()} at start")
        for s in peers:
            s.results["hey"] = hey(s)
            s.results["rss"] = s.rss_mib()
    finally:
        for s in peers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)
    return peers, notes


def markdown(peers: list[Server], notes: list[str]) -> str:
    names = [s.name for s in peers]
    rows = [("CPU used while idle (no client ever connected)",
             [f"{s.results['idle']:.3f} core ({IDLE_SECONDS} s)" for s in peers])]
    for mode in MODES:
        label = f"temperature {TEMPERATURE[mode]:g}" + "".join(
            f", {k} {v}" for k, v in EXTRA[mode].items() if k != "response_format") + (
            ", response_format json_schema (name, age)" if mode == SCHEMA else "")
        rows.append((f"{mode} ({label}): 1 client, decode tokens/s",
                     [" / ".join(f"{v:.1f}" for v in s.results[(mode, "single")]) if mode in s.modes else "-"
                      for s in peers]))
        for clients, tokens in (LOADS if mode in (SAMPLED, GREEDY) else SHAPE_LOADS):
            cells = []
            for s in peers:
                if mode not in s.modes:
                    cells.append("-")
                    continue
                runs = s.results[(mode, clients, tokens)]
                cell = " / ".join(f"{r['tps']:.1f} ({r['ttft_p50']:.1f} s)" if r["ttft_p50"] is not None
                                  else "failed" for r in runs)
                errors = sum(r["errors"] for r in runs)
                cell += f", {errors} errors" if errors else ""
                if mode == SCHEMA:       # whether the server kept to the schema, not only how fast it wrote
                    cell += f"; valid JSON of the schema: {sum(r['valid'] for r in runs)} / {sum(r['answered'] for r in runs)}"
                cells.append(cell)
            rows.append((f"{mode}: {clients} clients × {tokens} tokens, aggregate tok/s (TTFT p50)", cells))
    rows.append((f"`hey -n {HEY[0]} -c {HEY[1]}`, {HEY_TOKENS} tokens", [s.results["hey"] for s in peers]))
    rows.append(("server RSS after the runs", [f"{s.results['rss']:.0f} MiB" for s in peers]))
    lines = ["## Side by side with `transformers serve`", "",
             f"Same model folder (demo `{SIZE}`, random weights), same streaming client, rounds interleaved "
             f"(one figure per round, separated by ' / '). Load average: {'; '.join(notes)}.", "",
             "| figure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    lines += ["", "Settings: " + "; ".join(f"**{s.name}**: {s.settings}" for s in peers) + ".", "",
              "Reproduce: `.venv/bin/python -m bench peer` (about 8 minutes on a quiet 2-core machine)."]
    return "\n".join(lines) + "\n"


def run() -> str:
    return markdown(*measure())


if __name__ == "__main__":
    print(run())
