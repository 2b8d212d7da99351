"""Page helpers for the browser tests: what a person does on the Chat tab, in Playwright calls."""
from __future__ import annotations

import time
from pathlib import Path

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
BOT = "#chatbot [data-testid=bot]"
USER = "#chatbot [data-testid=user]"
DONE_MARK = "demo:tiny"  # the provenance line appears under a reply once it is saved


def open_app(ctx, url: str):
    page = ctx.new_page()
    page.goto(url, wait_until="load")
    wait_ready(page)
    return page


def wait_ready(page) -> None:
    """The first paint is done: owner known, last chat open."""
    page.wait_for_function("() => (document.querySelector('#chat-ready')?.textContent || '').includes('ready')")


def reload(page) -> None:
    page.reload(wait_until="load")
    wait_ready(page)


def send(page, text: str) -> None:
    page.fill("#chat-input textarea", text)
    page.keyboard.press("Enter")


def bot_texts(page) -> list[str]:
    return page.locator(BOT).all_inner_texts()


def user_texts(page) -> list[str]:
    return [t.strip() for t in page.locator(USER).all_inner_texts()]


def wait_replies_done(page, count: int, timeout: float = 60_000) -> list[str]:
    """Wait until `count` replies are shown and the last one is saved (its provenance line is there)."""
    page.wait_for_function(
        """([sel, n, mark]) => { const b = document.querySelectorAll(sel);
             return b.length === n && b[n - 1].innerText.includes(mark); }""",
        arg=[BOT, count, DONE_MARK], timeout=timeout)
    return bot_texts(page)


def open_settings(page) -> None:
    if not page.locator("#max-new-tokens").count():
        page.click("#chat-settings button")
        page.wait_for_selector("#max-new-tokens input[type=number]")


def set_max_tokens(page, n: int) -> None:
    open_settings(page)
    page.fill("#max-new-tokens input[type=number]", str(n))
    page.keyboard.press("Enter")


def session_labels(page) -> list[str]:
    return [t.strip() for t in page.locator("#session-list label").all_inner_texts()]


def wait_session_labels(page, predicate, timeout: float = 15.0) -> list[str]:
    deadline = time.time() + timeout
    labels = session_labels(page)
    while time.time() < deadline:
        labels = session_labels(page)
        if predicate(labels):
            return labels
        time.sleep(0.2)
    raise AssertionError(f"session list never matched: {labels}")


def owner_token(page) -> str:
    """The anonymous owner key shown under "Your private key" (what gradio_client passes as owner_token)."""
    if not page.locator("#owner-key textarea").count():
        page.get_by_text("owner_token").click()
        page.wait_for_selector("#owner-key textarea")
    deadline = time.time() + 10
    while time.time() < deadline:
        value = page.input_value("#owner-key textarea")
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("no owner key shown")


def screenshot(page, name: str, **kw) -> Path:
    """docs/screenshots/<name> when UPDATE_SCREENSHOTS=1 (so plain test runs leave the repo alone), else a temp file."""
    import os
    import tempfile

    folder = SHOTS if os.environ.get("UPDATE_SCREENSHOTS") == "1" else Path(tempfile.gettempdir()) / "ui-shots"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=folder / name, **kw)
    return folder / name


def click_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()
