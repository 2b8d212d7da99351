"""Shared fixtures: the tiny demo model, a loaded engine, and a real app server on a free port."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.waiting import CEILING, combined, file_size, process_work, wait_for

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    from engine.loading.demo.chat import demo_chat_model

    return demo_chat_model("tiny")


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """One loaded tiny demo ChatEngine for the whole run (cpu bf16); closed so its worker threads end."""
    from engine.chat import ChatEngine
    from config import EngineConfig
    from engine.loading.sources import resolve_source

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
        # demo:tiny (random weights) keeps app tests fast; tests on real text set engine.demo_size "smollm2",
        # tests on real speech engine.demo_speech "offline".
        cfg = {"sessions": {"path": str(tmp / "sessions")},
               "engine": {"adapters_dir": str(tmp / "adapters"), "demo_size": "tiny", "demo_speech": "tiny"}}
        for section, values in (config or {}).items():
            cfg.setdefault(section, {}).update(values)
        self.config_path = tmp / "config.json"
        self.config_path.write_text(json.dumps(cfg))
        self.log_path = tmp / f"server-{self.port}.log"
        self.args, self.env = args, env or {}
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120, ceiling: float = CEILING) -> "AppServer":
        """Run the app and wait for /health. A busy machine gets more time as long as the app moves (its log
        grows or it burns CPU while importing and loading); it fails after `timeout` seconds with no progress,
        or at `ceiling`, or at once if the app exits, with the log in the message."""
        import httpx

        env = os.environ | {"PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"} | self.env
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(self.config_path),
                                      "--port", str(self.port), *self.args], cwd=self.tmp, env=env,
                                     stdout=self._log, stderr=subprocess.STDOUT)

        def healthy() -> bool:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return httpx.get(self.url + "/health", timeout=5).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, f"the app at {self.url} to answer /health",
                 progress=combined(file_size(self.log_path), process_work(self.proc.pid)),
                 stall=timeout, ceiling=ceiling, poll=0.5, detail=lambda: f"server log:\n{self.log()}")
        return self

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


def module_server(folder: str, *, name: str = "server", **options) -> Any:
    """A module-scoped fixture `name`: one app server for a test file (AppServer's config/args/env `options`),
    its data under a fresh `folder` of the run's temporary directory, stopped after the file's last test."""
    @pytest.fixture(scope="module", name=name)
    def server(tmp_path_factory):
        srv = AppServer(tmp_path_factory.mktemp(folder), **options).start()
        yield srv
        srv.stop()

    return server


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """One default demo app server for the whole run (each start costs seconds of CPU): for tests that need no
    config of their own and leave no state others could see (sessions under random owners, no adapters)."""
    server = AppServer(tmp_path_factory.mktemp("app")).start()
    yield server
    server.stop()


# Playwright: one browser per test run, for tests/browser and any other test that needs a page (one
# sync Playwright may run per process).
@pytest.fixture(scope="session")
def browser():
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run `make system-packages` (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_context(browser):
    """new_context(locale="en-US") -> a fresh browser profile (own localStorage); closed after the test."""
    contexts = []

    def make(locale: str = "en-US"):
        ctx = browser.new_context(locale=locale, viewport={"width": 1400, "height": 1000})
        # A ceiling for plain UI steps (click, fill, selector); waits on the model use pages.wait_js, which
        # follows the reply as it grows instead.
        ctx.set_default_timeout(90_000)
        contexts.append(ctx)
        return ctx

    yield make
    for ctx in contexts:
        ctx.close()
