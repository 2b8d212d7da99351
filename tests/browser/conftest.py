"""Playwright fixtures: Debian's chromium (never `playwright install`), one browser per test run."""
from __future__ import annotations

import shutil

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="session")
def browser():
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
