"""Text -> speech through tiny MMS-style VITS voices: Korean via uroman, English as is, WAV out."""
from __future__ import annotations

import io

import pytest
import soundfile as sf

from engine.media.speech import Speech, split_sentences, text_language
from engine.errors import SpeechError
from tests.media_fixtures import engine_config, voice_en, voice_ko  # noqa: F401


def read_back(speech: Speech):
    data, rate = sf.read(io.BytesIO(speech.wav), dtype="int16")
    info = sf.info(io.BytesIO(speech.wav))
    return data, rate, info


def test_korean_is_romanised_then_spoken(voice_ko):
    assert voice_ko.tokenizer.is_uroman                      # the flag mms-tts-kor's tokenizer carries
    speech = voice_ko.speak("안녕하세요. 만나서 반갑습니다!")
    assert speech.romanized
    assert speech.text_spoken.isascii() and "annyeonghaseyo" in speech.text_spoken
    assert speech.language == "ko" and speech.sentences == 2
    data, rate, info = read_back(speech)
    assert rate == speech.sample_rate == 16000
    assert info.subtype == "PCM_16" and info.channels == 1 and info.format == "WAV"
    assert len(data) > 0 and speech.seconds == pytest.approx(len(data) / rate)


def test_english_is_not_romanised(voice_en):
    assert not voice_en.tokenizer.is_uroman
    speech = voice_en.speak("Hello there. How are you today?")
    assert not speech.romanized and speech.text_spoken == "Hello there. How are you today?"
    data, rate, info = read_back(speech)
    assert rate == 16000 and info.subtype == "PCM_16" and len(data) > 0


def test_romanize_is_skipped_for_ascii(voice_ko):
    assert voice_ko.romanize("already roman") == ("already roman", False)
    roman, did = voice_ko.romanize("그림 😀 하나")
    assert did and roman.isascii() and "geurim" in roman


def test_long_text_is_spoken_sentence_by_sentence(voice_en):
    one = voice_en.speak("This is one sentence.")
    three = voice_en.speak("This is one sentence. This is one sentence. This is one sentence.")
    assert three.sentences == 3
    pauses = 2 * voice_en.pause_seconds
    assert three.seconds == pytest.approx(3 * one.seconds + pauses, rel=0.35)


def test_nothing_to_say(voice_en, voice_ko):
    with pytest.raises(SpeechError, match="no text"):
        voice_en.speak("   ")
    with pytest.raises(SpeechError, match="nothing it can pronounce"):
        voice_en.speak("안녕하세요")              # the English voice has no Hangul in its alphabet
    with pytest.raises(SpeechError, match="nothing it can pronounce"):
        voice_ko.speak("?!... ...")


def test_text_too_long(voice_en):
    with pytest.raises(SpeechError, match="at most 4000"):
        voice_en.speak("a" * 4001)


def test_script_picks_the_voice():
    assert text_language("안녕하세요, Mistral!") == "ko"
    assert text_language("Hello, world.") == "en"
    assert text_language("ㅋㅋㅋ") == "ko"


def test_split_sentences():
    assert split_sentences("하나. 둘! 셋?\n넷") == ["하나.", "둘!", "셋?", "넷"]
    long = ", ".join(["word"] * 200)
    parts = split_sentences(long, max_chars=100)
    assert all(len(p) <= 100 for p in parts) and len(parts) > 5
    assert " ".join(parts).replace(" ", "") == long.replace(" ", "")
    assert split_sentences("x" * 250, max_chars=100) == ["x" * 100, "x" * 100, "x" * 50]
