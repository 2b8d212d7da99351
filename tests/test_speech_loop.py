"""The voice loop offline on real weights: a spoken English question -> transcript (Whisper base) -> the chat
model's reply (SmolLM2) -> a spoken reply (espeak-ng), judged by what Whisper hears in that reply (through the API);
the same loop in the browser's Voice tab; one app server started with `--demo` for the module.
"""
from __future__ import annotations

import io

import httpx
import pytest
from openai import OpenAI

from tests.browser import pages
from tests.conftest import module_server
from tests.media_fixtures import error_rate, espeak_clip

CONFIG = {"engine": {"demo_size": "smollm2", "demo_speech": "offline"},
          "generation": {"temperature": 0.0, "max_new_tokens": 16}}
QUESTION = "What is the capital of France?"
MAX_WER = 0.35     # bench speech_real: espeak-ng English is heard at a WER of about 0.1


server = module_server("speech-loop", config=CONFIG)


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory):
    # at 140 words a minute: at espeak-ng's default 175, Whisper base hears "the capital and friends"
    return espeak_clip(tmp_path_factory.mktemp("loop"), "question", QUESTION, "en", wpm=140)


def test_health_says_the_speech_models_are_real(server):
    """--demo: /health names Whisper base and espeak-ng with real weights; with engine.demo_speech "tiny" (the
    shared test app's setting) the plan names the tiny random models."""
    from config import EngineConfig
    from engine.media.speech import speech_plan, speech_status

    speech = httpx.get(server.url + "/health", timeout=30).json()["speech"]
    assert speech["stt"]["model"] == "offline:whisper-base" and speech["stt"]["real_weights"] is True
    assert speech["tts-en"]["model"] == "espeak-ng:en-us" and speech["tts-en"]["real_weights"] is True
    assert speech["tts-ko"]["model"].startswith("espeak-ng:ko") and speech["tts-ko"]["real_weights"] is True
    tiny = speech_status(speech_plan(EngineConfig(demo_speech="tiny"), demo=True), [])
    assert tiny["stt"] == {"model": "demo:whisper-tiny", "real_weights": False, "loaded": False}


def test_spoken_question_gets_a_spoken_answer_through_the_api(server, question_wav):
    client = OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0, timeout=600)
    with open(question_wav, "rb") as f:
        heard = client.audio.transcriptions.create(model="whisper-1", file=f, response_format="verbose_json")
    assert heard.language == "en" and error_rate(QUESTION, heard.text, "en") <= MAX_WER, heard.text
    reply = client.chat.completions.create(model="local-chat", temperature=0, max_tokens=16,
                                           messages=[{"role": "user", "content": heard.text}])
    answer = reply.choices[0].message.content
    assert "Paris" in answer, (heard.text, answer)
    spoken = client.audio.speech.create(model="tts-1", voice="en", input=answer, response_format="wav")
    wav = spoken.read()
    assert wav[:4] == b"RIFF" and len(wav) > 20_000
    # judged by what it hears: the spoken reply, transcribed again, is the reply
    again = client.audio.transcriptions.create(model="whisper-1", file=("reply.wav", io.BytesIO(wav)),
                                               language="en")
    assert "paris" in again.text.lower() and error_rate(answer, again.text, "en") <= MAX_WER, (answer, again.text)


def test_voice_tab_hears_answers_and_speaks_with_real_models(server, new_context, question_wav):
    page = pages.open_app(new_context(), server.url)
    pages.click_tab(page, "Voice")
    line = page.locator("#voice-models")
    line.wait_for(state="visible")
    page.wait_for_function("() => (document.querySelector('#voice-models')?.innerText || '').includes('whisper')")
    assert "offline:whisper-base" in line.inner_text() and "real weights" in line.inner_text()
    assert "random" not in line.inner_text()
    page.click("#voice-input button[aria-label='Upload file']")
    page.set_input_files("#voice-input input[type=file]", str(question_wav))
    pages.wait_js(page, "() => (document.querySelector('#voice-transcript textarea')?.value || '')"
                        ".toLowerCase().includes('capital')",
                  "the transcript of the spoken question", watch="#voice-transcript", stall=180)
    page.click("#voice-reply")
    pages.wait_js(page, "() => (document.querySelector('#voice-answer')?.innerText || '').includes('Paris')",
                  "the answer naming Paris", watch="#voice-answer", stall=180)
    pages.wait_js(page, "() => !!document.querySelector('#voice-output [data-testid=download-link]')",
                  "the spoken reply's audio", watch="#voice-output", stall=180)
    href = page.get_attribute("#voice-output [data-testid=download-link]", "href")
    wav = httpx.get(href, timeout=30).content
    # a spoken reply of its own length: what Whisper hears in espeak-ng's reply is judged by the API test above
    assert wav[:4] == b"RIFF" and len(wav) > 20_000
