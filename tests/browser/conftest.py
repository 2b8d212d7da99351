"""Debian's chromium for the browser tests (never `playwright install`). The fixtures themselves (`browser`,
`new_context`) live in tests/conftest.py, so a test outside this folder shares the run's one Playwright."""
from __future__ import annotations

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
