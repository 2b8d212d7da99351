"""A server the benches start and measure: a free port, its output in a log file, "is it answering yet",
memory and CPU, and a clean stop. One place for what bench/load.py and bench/bench_peer.py both need
(bench code does not import tests/conftest.py's AppServer)."""
from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """`argv` started in `cwd` with `env`, stdout and stderr appended to `log`."""

    def __init__(self, name: str, argv: list[str], *, cwd: Path, env: dict, log: Path):
        self.name, self.log = name, log
        self._log = open(log, "ab")
        self.proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT)

    def answers(self, url: str, timeout: float = 5) -> bool:
        """Whether `url` answers 200 now; raises RuntimeError with the log's tail if the process has exited."""
        if self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                               f"{self.log.read_text(errors='replace')[-3000:]}")
        try:
            return httpx.get(url, timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def rss_mib(self) -> float:
        """Resident memory of the server and its children (transformers serve may fork workers)."""
        proc = psutil.Process(self.proc.pid)
        return sum(p.memory_info().rss for p in [proc, *proc.children(recursive=True)]) / 2 ** 20

    def cpu_seconds(self) -> float:
        t = psutil.Process(self.proc.pid).cpu_times()
        return t.user + t.system

    def stop(self, timeout: float = 30) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
