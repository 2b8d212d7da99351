"""Page helpers for the browser tests: what a person does on the Chat tab, in Playwright calls."""
from __future__ import annotations

import re

from pathlib import Path

from tests.waiting import CEILING, wait_for

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


def wait_js(page, js: str, what: str, arg=None, *, watch: str = "#chatbot", stall: float = 60.0,
            ceiling: float = CEILING):
    """Wait until the page function `js(arg)` returns something truthy (and return it).

    The wait lasts while the text of `watch` keeps changing (a reply streaming, a status moving) and fails
    after `stall` seconds without change, naming `what` and showing that text.
    """
    def shown() -> str:
        return page.evaluate("(sel) => [...document.querySelectorAll(sel)].map(e => e.innerText).join('\\n')", watch)

    return wait_for(lambda: page.evaluate(js, arg), what, progress=shown, stall=stall, ceiling=ceiling, poll=0.2,
                    detail=lambda: f"{watch} shows: {shown()[-1500:]!r}")


def wait_replies_done(page, count: int, timeout: float = 60_000) -> list[str]:
    """Wait until `count` replies are shown, the last one is saved (its provenance line is there) and Send is back
    (the step after a reply has run: until then the page is busy, and New chat or opening a chat does nothing).

    `timeout` (ms) is how long the chat may show no change at all (no new token) before this fails.
    """
    wait_js(page, """([sel, n, mark]) => { const b = document.querySelectorAll(sel);
                       return b.length === n && b[n - 1].innerText.includes(mark)
                              && !!document.querySelector('#chat-input .submit-button'); }""",
            f"{count} finished repl{'y' if count == 1 else 'ies'} (with '{DONE_MARK}') and Send back",
            [BOT, count, DONE_MARK], watch=BOT, stall=timeout / 1000)
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
    """The titles in the chat list, top to bottom."""
    return [t.strip() for t in page.locator("#session-list .chat-title").all_inner_texts()]


def chat_row(page, title: str):
    """The list row whose title contains `title`."""
    return page.locator("#session-list .chat-row").filter(has=page.locator(".chat-title", has_text=title))


def open_chat(page, title: str) -> None:
    chat_row(page, title).locator(".chat-open").click()


def rename_chat(page, title: str, new_title: str) -> None:
    """Hover the row, press its ✎, type the new title, Enter (as a person does)."""
    row = chat_row(page, title)
    row.hover()
    row.locator("[data-act=rename]").click()
    page.fill("#session-list input.chat-rename", new_title)
    page.keyboard.press("Enter")


def ask_delete(page, title: str) -> None:
    row = chat_row(page, title)
    row.hover()
    row.locator("[data-act=delete]").click()
    page.wait_for_selector("#delete-confirm", state="visible")


def wait_session_labels(page, predicate, timeout: float = 30.0) -> list[str]:
    """Wait until the session list's labels satisfy `predicate`; `timeout`: seconds without any change."""
    seen: list[list[str]] = []

    def matches() -> bool:
        seen.append(session_labels(page))
        return predicate(seen[-1])

    wait_for(matches, "the session list to match", progress=lambda: seen[-1] if seen else None, stall=timeout,
             poll=0.2, detail=lambda: f"session list: {seen[-1] if seen else None}")
    return seen[-1]


def owner_token(page) -> str:
    """The anonymous owner key shown under "Your private key" (what gradio_client passes as owner_token)."""
    if not page.locator("#owner-key textarea").count():
        # the accordion's own button: a refusal naming owner_token may be on the page too
        page.get_by_role("button", name=re.compile("owner_token")).click()
        page.wait_for_selector("#owner-key textarea")
    return wait_for(lambda: page.input_value("#owner-key textarea"), "the owner key to be shown", stall=30, poll=0.2)


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
