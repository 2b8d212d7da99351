"""Image and Voice tabs in a real browser, with the demo LLaVA-NeXT, Whisper and VITS models."""
from __future__ import annotations

import shutil
import subprocess
import time

import httpx
import pytest

from tests.browser import pages
from tests.conftest import module_server

CONFIG = {"generation": {"max_new_tokens": 24}}
DONE = "no adapter"  # the provenance line under a finished answer


server = module_server("media-ui", config=CONFIG)


@pytest.fixture(scope="module")
def picture(tmp_path_factory):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (96, 64), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    draw.ellipse((10, 8, 54, 52), fill=(220, 40, 40))
    draw.rectangle((60, 20, 90, 56), fill=(40, 90, 220))
    path = tmp_path_factory.mktemp("img") / "shapes.png"
    img.save(path)
    return str(path)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """Real Korean speech from espeak-ng (a Debian package the Makefile installs)."""
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is missing: run `make system-packages`")
    path = tmp_path_factory.mktemp("wav") / "question.wav"
    subprocess.run([espeak, "-v", "ko", "-w", str(path), "안녕하세요, 오늘 날씨가 어때요?"], check=True)
    return str(path)


@pytest.mark.parametrize("locale,image_words,voice_words", [
    ("en-US", "Demo image model with random weights", "Demo speech models with random weights"),
    ("ko-KR", "무작위 가중치의 데모 이미지 모델", "무작위 가중치의 데모 음성 모델")])
def test_image_and_voice_tabs_say_their_demo_models_make_noise(server, new_context, locale, image_words,
                                                                voice_words):
    """--demo: both tabs say on the tab, before anything is asked, that their models are random, and how to get
    real ones (the config keys), in the page's language."""
    page = pages.open_app(new_context(locale=locale), server.url)
    pages.click_tab(page, "이미지" if locale == "ko-KR" else "Image")
    notice = page.locator("#image-random-notice")
    notice.wait_for(state="visible", timeout=30_000)
    assert image_words in notice.inner_text() and "engine.vision_model" in notice.inner_text()
    pages.click_tab(page, "음성" if locale == "ko-KR" else "Voice")
    notice = page.locator("#voice-random-notice")
    notice.wait_for(state="visible", timeout=30_000)
    assert voice_words in notice.inner_text() and "engine.tts_model_ko" in notice.inner_text()


def test_image_question_is_answered_and_sent_to_chat(server, new_context, picture):
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Image")
    page.set_input_files("#image-input input[type=file]", picture)
    page.wait_for_selector("#image-input img")
    assert "stop" not in page.get_attribute("#image-stop", "class").split()     # idle: Stop is not red
    page.fill("#image-question textarea", "What shapes do you see?")
    page.click("#image-ask")
    pages.wait_js(page, f"() => (document.querySelector('#image-answer')?.innerText || '').includes('{DONE}')",
                  "the image answer to finish", watch="#image-answer", stall=120)
    page.wait_for_function("() => !document.querySelector('#image-stop').classList.contains('stop')")
    answer = page.inner_text("#image-answer")
    assert "llava" in answer
    pages.screenshot(page, "image.png")
    page.click("#image-to-chat")
    pages.click_tab(page, "Chat")
    page.wait_for_function(f"() => document.querySelectorAll('{pages.BOT}').length === 1")
    assert "What shapes do you see?" in " ".join(pages.user_texts(page))
    assert page.locator("#chatbot [data-testid=user] img").count() == 1
    assert "llava" in pages.bot_texts(page)[0]
    assert pages.session_labels(page) == ["What shapes do you see?"]


def test_image_attached_in_the_chat_box_goes_to_the_image_model(server, new_context, picture):
    page = pages.open_app(new_context(), server.url)
    page.set_input_files("#chat-input input[type=file]", picture)
    page.wait_for_function("() => document.querySelectorAll('#chat-input img').length > 0 || "
                           "(document.querySelector('#chat-input')?.innerText || '').includes('shapes')")
    pages.send(page, "이 그림에 무엇이 있나요?")
    pages.wait_js(page, f"() => {{ const b = document.querySelectorAll('{pages.BOT}'); "
                  f"return b.length === 1 && b[0].innerText.includes('{DONE}'); }}",
                  "the image model's reply in the chat", watch=pages.BOT, stall=120)
    assert "llava" in pages.bot_texts(page)[0]
    assert page.locator("#chatbot [data-testid=user] img").count() == 1
    # the next text-only message goes back to the chat model, with the image turn in the history
    pages.send(page, "Thanks")
    pages.wait_js(page, f"() => {{ const b = document.querySelectorAll('{pages.BOT}'); "
                  f"return b.length === 2 && b[1].innerText.includes('{DONE}'); }}",
                  "the chat model's reply after the image turn", watch=pages.BOT)
    assert "demo:tiny" in pages.bot_texts(page)[1]


def test_voice_speech_is_transcribed_answered_and_played(server, new_context, speech_wav):
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Voice")
    assert "https://" in page.inner_text("#voice-https-note")
    page.click("#voice-input button[aria-label='Upload file']")
    page.set_input_files("#voice-input input[type=file]", speech_wav)
    pages.wait_js(page, "() => (document.querySelector('#voice-transcript textarea')?.value || '').length > 0",
                  "the transcript of the uploaded speech", watch="#voice-transcript", stall=120)
    page.click("#voice-reply")
    pages.wait_js(page, f"() => (document.querySelector('#voice-answer')?.innerText || '').includes('{DONE}')",
                  "the spoken question's answer", watch="#voice-answer")
    # the spoken reply arrives and plays by itself (autoplay on): the player's clock moves
    pages.wait_js(page, "() => !!document.querySelector('#voice-output [data-testid=download-link]')",
                  "the spoken reply's audio", watch="#voice-output", stall=120)
    page.wait_for_function("() => { const t = document.querySelector('#voice-output #time'); "
                           "return t && t.textContent.trim() !== '0:00'; }")
    href = page.get_attribute("#voice-output [data-testid=download-link]", "href")
    wav = httpx.get(href, timeout=30).content
    assert wav[:4] == b"RIFF" and wav[8:12] == b"WAVE" and len(wav) > 10_000
    pages.screenshot(page, "voice.png")


def test_voice_empty_transcript_is_refused_in_the_browser(server, new_context):
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Voice")
    page.fill("#voice-transcript textarea", "  ")
    page.click("#voice-reply")
    page.wait_for_function("() => Array.from(document.querySelectorAll('[data-testid=toast-body]'))"
                           ".some(e => e.innerText.includes('The message is empty'))", timeout=10_000)
    assert (page.inner_text("#voice-answer") or "").strip() == ""
