"""Take chats with you and keep system prompts: export a chat from the chat list as JSON, import the
file back as a new chat beside the old one, a foreign file refused with one line, a preset
saved from one chat's settings and picked in another. Real app (demo:tiny, shared server), real Chromium.
The Korean lines are checked on the handlers (tests/test_ui_exchange_presets.py): a second page costs seconds."""
from __future__ import annotations

import json
from pathlib import Path

from tests.browser import pages

NOTE = "#preset-note"
RESULT = "#exchange-result"
IMPORT = "#chat-exchange input[type=file]"     # the Import button's own file input
PIRATE = "Answer like a pirate, in one line."
MESSAGES = [{"role": "user", "content": "제주도 3일 일정 짜줘"},
            {"role": "assistant", "content": "첫날은 성산일출봉, 둘째 날은 한라산.",
             "provenance": {"model": "mistralai/Mistral-7B-Instruct-v0.3", "rung": "4bit", "completion_tokens": 14}}]


def wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function("([sel, text]) => (document.querySelector(sel)?.innerText || '').includes(text)",
                           arg=[selector, text])


def export_json(page, folder: Path) -> Path:
    """Export this chat as JSON (the default choices) and download the file the page offers."""
    page.click("#export-run")
    link = page.locator("#export-file a[download]")
    link.wait_for()
    with page.expect_download() as got:
        link.click()
    target = folder / got.value.suggested_filename
    got.value.save_as(target)
    return target


def row_ids(page) -> list[str]:
    return page.locator("#session-list .chat-row").evaluate_all("(rows) => rows.map((r) => r.dataset.id)")


def test_export_import_refuse_and_a_preset_applied_to_another_chat(app_server, new_context, tmp_path):
    page = pages.open_app(new_context(), app_server.url)
    # a chat to start from, brought in by Import (a reply from the model would only cost time here)
    start = tmp_path / "start.json"
    start.write_text(json.dumps({"format": "chat-sessions", "sessions": [{"title": "Plan a trip to Jeju",
                                                                          "messages": MESSAGES}]}), encoding="utf-8")
    page.click("#chat-exchange button")
    page.set_input_files(IMPORT, str(start))
    wait_text(page, RESULT, "1 chat imported.")
    pages.wait_session_labels(page, lambda labels: labels == ["Plan a trip to Jeju"])
    pages.open_chat(page, "Plan a trip to Jeju")
    page.wait_for_function(f"() => document.querySelectorAll('{pages.BOT}').length === 1")
    (original,) = row_ids(page)

    # export this chat: JSON with everything in it
    as_json = export_json(page, tmp_path)
    data = json.loads(as_json.read_text(encoding="utf-8"))
    assert as_json.name == "Plan-a-trip-to-Jeju.json" and data["format"] == "chat-sessions"
    (chat,) = data["sessions"]
    assert chat["id"] == original and chat["title"] == "Plan a trip to Jeju"
    assert [(m["role"], m["content"]) for m in chat["messages"]] == [(m["role"], m["content"]) for m in MESSAGES]
    assert chat["messages"][1]["provenance"]["rung"] == "4bit"

    # import it back: a second chat beside the first, which stays as it was and stays shown
    page.set_input_files(IMPORT, str(as_json))
    wait_text(page, RESULT, "1 chat imported.")
    pages.wait_session_labels(page, lambda labels: labels == ["Plan a trip to Jeju"] * 2)
    ids = row_ids(page)
    assert original in ids and len(set(ids)) == 2
    assert pages.user_texts(page) == ["제주도 3일 일정 짜줘"]

    # another app's file: refused with one line, nothing added
    foreign = tmp_path / "conversations.json"
    foreign.write_text(json.dumps([{"title": "from elsewhere", "mapping": {}}]), encoding="utf-8")
    page.set_input_files(IMPORT, str(foreign))
    wait_text(page, RESULT, "⚠️ This file is not a chat export of this app. Nothing was imported.")
    assert len(row_ids(page)) == 2

    # a preset from this chat's settings; the same name again is refused
    pages.open_settings(page)
    page.fill("#system-prompt textarea", PIRATE)
    page.fill("#temperature input[type=number]", "0.3")
    page.keyboard.press("Enter")
    page.fill("#preset-name input", "Pirate")
    page.click("#preset-save")
    wait_text(page, NOTE, "Preset “Pirate” saved.")
    page.fill("#preset-name input", "pirate")
    page.click("#preset-save")
    wait_text(page, NOTE, "⚠️ A preset named “pirate” already exists: pick another name.")

    # open the imported copy (default settings) and pick the preset there
    copy = next(i for i in ids if i != original)
    page.locator(f"#session-list .chat-row[data-id='{copy}'] .chat-open").click()
    page.wait_for_selector(f"#session-list .chat-row[data-id='{copy}'] .chat-open[aria-current=true]")
    page.wait_for_function("(text) => document.querySelector('#system-prompt textarea').value !== text", arg=PIRATE)
    page.click("#preset-pick input")
    page.get_by_role("option", name="Pirate").click()
    wait_text(page, NOTE, "Preset “Pirate” applied to this chat.")
    assert page.input_value("#system-prompt textarea") == PIRATE
    assert page.input_value("#temperature input[type=number]") == "0.3"
    pages.screenshot(page, "chat-export-presets.png", full_page=True)

    # kept in the chat: New chat shows the defaults, opening the copy again reads its settings from the store
    page.click("#new-chat")
    page.wait_for_function("(text) => document.querySelector('#system-prompt textarea').value !== text", arg=PIRATE)
    page.locator(f"#session-list .chat-row[data-id='{copy}'] .chat-open").click()
    page.wait_for_function("(text) => document.querySelector('#system-prompt textarea').value === text", arg=PIRATE)
    assert page.input_value("#temperature input[type=number]") == "0.3"
