"""Issue 12 in a real browser: refusals are toasts that leave the page usable, nothing typed is lost, Korean
search as you type, no internals shown, a page that shows it is working, a per-chat history-turn setting."""
from __future__ import annotations

import time

import pytest
from gradio_client import Client

from tests.browser import pages
from tests.conftest import AppServer

CONFIG = {"generation": {"max_new_tokens": 4000, "temperature": 0.0}, "engine": {"max_context": 8192}}
SHORT = 8
TOASTS = "[data-testid=toast-body]"
# An "Error" pill a user can see: a status tracker showing Gradio's error span.
SHOWN_ERROR_PILLS = """() => Array.from(document.querySelectorAll('[data-testid=status-tracker] > span.error'))
  .filter(e => { const w = e.parentElement; const cs = getComputedStyle(w);
                 return cs.display !== 'none' && cs.opacity !== '0' && w.getBoundingClientRect().height > 0; })
  .length"""


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("dead-ends"), config=CONFIG, env={"HF_HUB_OFFLINE": "1"}).start()
    yield srv
    srv.stop()


def wait_toast(page, text: str, timeout: float = 15_000) -> str:
    page.wait_for_function("([sel, t]) => Array.from(document.querySelectorAll(sel)).some(e => e.innerText.includes(t))",
                           arg=[TOASTS, text], timeout=timeout)
    return "\n".join(page.locator(TOASTS).all_inner_texts())


def stored(server, page) -> dict:
    client = Client(server.url, verbose=False)
    token = pages.owner_token(page)
    sid = client.predict(owner_token=token, api_name="/list_sessions")[0]["id"]
    return client.predict(sid, owner_token=token, api_name="/get_session")


def test_refusals_are_toasts_and_the_page_stays_usable(server, new_context):
    page = pages.open_app(new_context(), server.url)
    page.fill("#chat-input textarea", "   ")
    page.keyboard.press("Enter")
    assert "The message is empty" in wait_toast(page, "empty")
    time.sleep(0.5)
    assert page.evaluate(SHOWN_ERROR_PILLS) == 0
    page.click("#new-chat", timeout=3000)           # nothing covers the page
    page.fill("#session-search input", "x", timeout=3000)
    pages.click_tab(page, "Image")
    page.click("#image-ask")
    assert "Add an image first" in wait_toast(page, "Add an image")
    time.sleep(0.5)
    assert page.evaluate(SHOWN_ERROR_PILLS) == 0
    page.click("#image-question textarea", timeout=3000)


def test_message_sent_while_a_reply_streams_is_refused_and_kept(server, new_context):
    page = pages.open_app(new_context(), server.url)
    pages.send(page, "Tell me a very long story.")
    page.wait_for_function(f"() => (document.querySelector('{pages.BOT}')?.innerText || '').length > 20")
    pages.send(page, "And a second question")
    assert "still being written" in wait_toast(page, "still being written")
    assert page.input_value("#chat-input textarea") == "And a second question"   # nothing typed is lost
    page.click("#stop")
    pages.wait_replies_done(page, 1, timeout=20_000)
    roles = [m["role"] for m in stored(server, page)["messages"]]
    assert roles == ["user", "assistant"]
    assert pages.user_texts(page) == ["Tell me a very long story."]


def test_chat_search_reacts_to_korean_ime_backspace_and_clearing(server, new_context):
    page = pages.open_app(new_context(), server.url)
    pages.set_max_tokens(page, SHORT)
    pages.send(page, "부산 여행 계획")
    pages.wait_replies_done(page, 1)
    page.click("#new-chat")
    pages.send(page, "Hello there")
    pages.wait_replies_done(page, 1)
    pages.wait_session_labels(page, lambda labels: len(labels) == 2)
    page.click("#session-search input")
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.imeSetComposition", {"text": "부", "selectionStart": 1, "selectionEnd": 1})
    cdp.send("Input.insertText", {"text": "부산"})           # what an IME commits: no Latin keystroke
    labels = pages.wait_session_labels(page, lambda ls: len(ls) == 1)
    assert "부산" in labels[0]
    page.keyboard.press("Backspace")
    page.keyboard.press("Backspace")                     # cleared: every chat again
    pages.wait_session_labels(page, lambda ls: len(ls) == 2)
    cdp.send("Input.insertText", {"text": "여행"})
    assert "부산" in pages.wait_session_labels(page, lambda ls: len(ls) == 1)[0]


def test_internals_never_reach_the_user(server, new_context, tmp_path):
    page = pages.open_app(new_context(), server.url)
    fake = tmp_path / "photo.png"
    fake.write_text("this is text, not a picture")
    pages.click_tab(page, "Image")
    page.set_input_files("#image-input input[type=file]", str(fake))
    time.sleep(1.0)
    page.fill("#image-question textarea", "What is this?")
    page.click("#image-ask")
    text = wait_toast(page, "cannot be used", timeout=60_000)
    for internal in ("Could not preprocess", "Expected", "/tmp", "ImageData", "Traceback"):
        assert internal not in text
    assert page.evaluate(SHOWN_ERROR_PILLS) == 0
    bad_wav = tmp_path / "broken.wav"
    bad_wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 8)
    pages.click_tab(page, "Voice")
    page.click("#voice-input button[aria-label='Upload file']")
    page.set_input_files("#voice-input input[type=file]", str(bad_wav))
    text = wait_toast(page, "cannot be used", timeout=120_000)
    assert "object at 0x" not in text and "BytesIO" not in text and "/tmp" not in text


def test_page_shows_it_is_working_and_esc_stops(server, new_context):
    page = pages.open_app(new_context(), server.url)
    assert page.locator("#chat-input .submit-button").count() == 1
    assert page.locator("#typing .typing").count() == 0
    pages.send(page, "Write a long poem.")
    page.wait_for_selector("#typing .typing", timeout=10_000)          # typing indicator
    page.wait_for_selector("#chat-input .stop-button", timeout=10_000)  # Stop in place of Send
    assert page.locator("#chat-input .submit-button").count() == 0
    page.wait_for_function(f"() => (document.querySelector('{pages.BOT}')?.innerText || '').length > 20")
    page.keyboard.press("Escape")
    texts = pages.wait_replies_done(page, 1, timeout=20_000)
    assert "stopped" in texts[0]
    page.wait_for_selector("#chat-input .submit-button", timeout=10_000)
    assert page.locator("#typing .typing").count() == 0


def test_history_turns_are_a_chat_setting_respected_and_shown(server, new_context):
    page = pages.open_app(new_context(), server.url)
    pages.set_max_tokens(page, SHORT)
    page.fill("#history-turns input[type=number]", "1")
    page.keyboard.press("Enter")
    pages.send(page, "First question")
    pages.wait_replies_done(page, 1)
    pages.send(page, "Second question")
    texts = pages.wait_replies_done(page, 2)
    assert "turns sent: 1" in texts[1]
    session = stored(server, page)
    assert session["settings"]["history_turns"] == 1
    reply = session["messages"][-1]["provenance"]
    assert reply["history_turns"] == 1 and reply["dropped_turns"] == 1
    pages.reload(page)
    pages.open_settings(page)
    assert page.input_value("#history-turns input[type=number]") == "1"
    page.fill("#history-turns input[type=number]", "5")
    page.keyboard.press("Enter")
    time.sleep(1.0)
    pages.send(page, "Third question")
    assert "turns sent: 3" in pages.wait_replies_done(page, 3)[2]
