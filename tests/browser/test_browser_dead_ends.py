"""Issue 12 in a real browser: refusals are toasts that leave the page usable, nothing typed is lost, Korean
search as you type, no internals shown, a page that shows it is working, a per-chat history-turn setting."""
from __future__ import annotations

import time

import pytest
from gradio_client import Client

from tests.browser import pages
from tests.conftest import module_server

CONFIG = {"generation": {"max_new_tokens": 4000, "temperature": 0.0}, "engine": {"max_context": 8192}}
SHORT = 8
TOASTS = "[data-testid=toast-body]"
# An "Error" pill a user can see: a status tracker showing Gradio's error span.
SHOWN_ERROR_PILLS = """() => Array.from(document.querySelectorAll('[data-testid=status-tracker] > span.error'))
  .filter(e => { const w = e.parentElement; const cs = getComputedStyle(w);
                 return cs.display !== 'none' && cs.opacity !== '0' && w.getBoundingClientRect().height > 0; })
  .length"""


server = module_server("dead-ends", config=CONFIG, env={"HF_HUB_OFFLINE": "1"})


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
    page.fill("#chat-input textarea", "x" * 200_000)
    page.keyboard.press("Enter")
    assert "at most 32000" in wait_toast(page, "200000 characters")
    time.sleep(0.5)
    assert page.evaluate(SHOWN_ERROR_PILLS) == 0
    assert len(page.input_value("#chat-input textarea")) == 200_000     # nothing typed is lost
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
    kinds = page.locator(TOASTS, has_text="still being written").first.get_attribute("class").split()
    assert "info" in kinds and "error" not in kinds, kinds      # a normal situation: a notice, not a fault
    assert page.evaluate(SHOWN_ERROR_PILLS) == 0
    assert page.input_value("#chat-input textarea") == "And a second question"   # nothing typed is lost
    page.click("#retry")                 # refused too: a second reply would run beyond the reach of Stop
    time.sleep(1.0)
    page.click("#stop")
    shown = pages.wait_replies_done(page, 1, timeout=20_000)[0]
    time.sleep(2.0)
    assert "stopped" in shown and pages.bot_texts(page) == [shown]      # nothing runs on
    page.wait_for_selector("#chat-input .submit-button")                # Send is back
    roles = [m["role"] for m in stored(server, page)["messages"]]
    assert roles == ["user", "assistant"]
    assert pages.user_texts(page) == ["Tell me a very long story."]


def test_chat_search_reacts_to_korean_ime_backspace_and_clearing(server, new_context):
    page = pages.open_app(new_context(), server.url)
    pages.set_max_tokens(page, SHORT)
    pages.send(page, "부산 여행 계획")
    pages.wait_replies_done(page, 1)
    page.click("#new-chat")
    page.wait_for_function(f"() => document.querySelectorAll('{pages.USER}').length === 0")  # the new chat is shown
    pages.set_max_tokens(page, SHORT)     # a new chat starts from the defaults (4000 tokens here): a few are enough
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
    assert "stop" in page.get_attribute("#stop", "class")                # the Stop button turns red
    page.wait_for_function(f"() => (document.querySelector('{pages.BOT}')?.innerText || '').length > 20")
    page.keyboard.press("Escape")
    texts = pages.wait_replies_done(page, 1, timeout=20_000)
    assert "stopped" in texts[0]
    page.wait_for_selector("#chat-input .submit-button", timeout=10_000)
    assert page.locator("#typing .typing").count() == 0
    assert "secondary" in page.get_attribute("#stop", "class")


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


def test_korean_page_has_a_short_banner_that_closes_and_translated_labels(server, new_context):
    page = pages.open_app(new_context(locale="ko-KR"), server.url)
    page.wait_for_function("() => (document.querySelector('#model-banner')?.innerText || '').includes('모델:')")
    banner = page.inner_text("#model-banner")
    assert "무작위 가중치" in banner and "Demo model" not in banner
    assert "Error" not in banner and "/tmp" not in banner
    assert page.locator("#model-banner").bounding_box()["height"] < 90
    page.click("#model-banner .banner-close")
    page.wait_for_selector("#model-banner", state="hidden")
    pages.reload(page)
    assert not page.locator("#model-banner").is_visible()        # stays closed in this browser session
    pages.open_settings(page)
    assert "어댑터" in page.inner_text("#chat-adapter") and "Adapter" not in page.inner_text("#chat-adapter")
    # what a screen reader says for the message box (it said "MultimodalTextbox")
    assert page.evaluate("() => document.querySelector('#chat-input .sr-only')?.textContent.trim()") == "메시지"
    pages.click_tab(page, "이미지")
    assert page.inner_text("#image-answer-title").strip() == "답변"
    pages.click_tab(page, "음성")
    assert page.inner_text("#voice-answer-title").strip() == "답변 글"


def test_voice_keeps_a_transcript_the_user_edited(server, new_context, tmp_path):
    import shutil
    import subprocess

    wav = tmp_path / "hello.wav"
    subprocess.run([shutil.which("espeak-ng"), "-v", "en", "-w", str(wav), "hello there"], check=True)
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Voice")
    page.click("#voice-input button[aria-label='Upload file']")
    page.set_input_files("#voice-input input[type=file]", str(wav))
    page.wait_for_function("() => (document.querySelector('#voice-transcript textarea')?.value || '').length > 0",
                           timeout=120_000)
    page.fill("#voice-transcript textarea", "my own careful words")
    page.click("#voice-transcribe")
    assert "kept" in wait_toast(page, "kept")
    time.sleep(1.0)
    assert page.input_value("#voice-transcript textarea") == "my own careful words"


@pytest.mark.parametrize("locale", ["en-US", "ko-KR"])
def test_phone_width_and_dark_mode(server, browser, locale):
    ctx = browser.new_context(locale=locale, viewport={"width": 390, "height": 844}, color_scheme="dark",
                              device_scale_factor=2)
    try:
        page = pages.open_app(ctx, server.url)
        pages.set_max_tokens(page, SHORT)
        page.click("#chat-settings button")                   # fold the settings again
        pages.send(page, "코드 예시를 보여 주세요" if locale == "ko-KR" else "Show me a code example")
        pages.wait_replies_done(page, 1)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 392   # nothing wider than a phone
        box = page.locator("#chat-input").bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 392
        dark = page.evaluate("() => { const c = getComputedStyle(document.querySelector('gradio-app') || document.body)"
                             ".backgroundColor.match(/\\d+/g).map(Number); return (c[0] + c[1] + c[2]) / 3; }")
        assert dark < 80, f"background brightness {dark}: not following the system's dark mode"
        page.evaluate("window.scrollTo(0, 0)")
        pages.screenshot(page, f"chat-390-{locale[:2]}.png")
    finally:
        ctx.close()


@pytest.mark.parametrize("locale", ["en-US", "ko-KR"])
def test_desktop_screenshots(server, new_context, locale):
    page = pages.open_app(new_context(locale=locale), server.url)
    ko = locale == "ko-KR"
    pages.set_max_tokens(page, SHORT)
    pages.send(page, "제주도 맛집 추천" if ko else "Restaurants in Jeju")        # a second chat in the list
    pages.wait_replies_done(page, 1)
    page.click("#new-chat")
    pages.set_max_tokens(page, SHORT)
    page.click("#chat-settings button")
    pages.send(page, "부산에서 하루 여행 계획을 짜 주세요" if ko else "Plan a day trip in Busan")
    pages.wait_replies_done(page, 1)
    pages.wait_session_labels(page, lambda labels: len(labels) == 2)
    page.wait_for_selector("#chat-input .submit-button")                      # idle again: Send is back
    assert "turns sent: 1" in pages.bot_texts(page)[0] or "보낸 대화: 1턴" in pages.bot_texts(page)[0]
    page.evaluate("window.scrollTo(0, 0)")
    other = pages.chat_row(page, "제주도" if ko else "Jeju")
    other.hover()                                                              # its rename / delete actions
    assert other.locator("[data-act=delete]").is_visible()
    pages.screenshot(page, f"chat-desktop-{locale[:2]}.png")


def test_replies_render_markdown_with_highlighted_code_and_a_copy_button(server, new_context):
    """A reply with a fenced code block (written into the real store, as the model would have)."""
    from sessions import SessionStore

    page = pages.open_app(new_context(), server.url)
    owner = f"anon:{pages.owner_token(page)}"
    store = SessionStore(server.tmp / "sessions")
    session = store.create(owner, "code")
    store.append(owner, session["id"], {"role": "user", "content": "Show me Python", "attachments": []})
    store.append(owner, session["id"], {"role": "assistant", "status": "complete",
                                        "provenance": {"model": "demo:tiny", "rung": "cpu-bfloat16"},
                                        "content": "Here:\n\n```python\ndef add(a, b):\n    return a + b\n```\n"})
    pages.reload(page)
    page.wait_for_selector("#chatbot pre code")
    assert page.locator("#chatbot pre code span").count() >= 3          # highlighted tokens, not plain text
    assert page.locator("#chatbot pre button, #chatbot .copy_code_button").count() >= 1
