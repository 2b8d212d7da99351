"""Shared fixtures: the tiny demo model, a loaded engine, and a real app server on a free port."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from engine.demo.chat import demo_chat_model

    return demo_chat_model("tiny")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """One loaded tiny demo ChatEngine for the whole run (cpu bf16); closed so its worker threads end."""
    from engine.chat import ChatEngine
    from engine.config import EngineConfig
    from engine.sources import resolve_source

    engine = ChatEngine.from_source(resolve_source("demo:tiny"), EngineConfig())
    yield engine
    engine.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """`python app.py` in a subprocess with its own config and data folder; stopped on close."""

    def __init__(self, tmp: Path, config: dict | None = None, args: tuple[str, ...] = ("--demo",),
                 env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        cfg = {"sessions": {"path": str(tmp / "sessions")}, "engine": {"adapters_dir": str(tmp / "adapters")}}
        for section, values in (config or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.config_path = tmp / "config.json"
        self.config_path.write_text(json.dumps(cfg))
        self.log_path = tmp / f"server-{self.port}.log"
        self.args, self.env = args, env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "AppServer":
        import httpx

        env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"} | self.env
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(self.config_path),
                                      "--port", str(self.port), *self.args], cwd=self.tmp, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"app did not answer /health in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory):
    """A demo app server shared by the tests of one module."""
    server = AppServer(tmp_path_factory.mktemp("app")).start()
    yield server
    server.stop()
