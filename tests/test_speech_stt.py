"""Speech -> text through the tiny Whisper: real espeak-ng speech, silence, stereo, long audio, hints."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from engine.media.inputs import load_audio
from engine.errors import MediaError
from engine.media.speech import NO_SPEECH, Transcript, normalize_language
from engine.errors import SpeechError
from tests.media_fixtures import engine_config, speech_files, stt, tone, wav_bytes  # noqa: F401


@pytest.mark.parametrize("lang", ["ko", "en"])
def test_espeak_speech_is_transcribed(stt, speech_files, lang):
    path = speech_files[lang]
    info = sf.info(str(path))
    assert info.samplerate == 22050                      # what espeak-ng writes: so resampling must happen
    result = stt.transcribe(path)
    assert isinstance(result, Transcript)
    assert not result.no_speech and result.message == ""
    assert result.text                                   # noise from random weights, but text
    assert result.original_rate == 22050 and result.resampled
    assert result.seconds_audio == pytest.approx(info.frames / 22050, abs=1e-3)
    assert result.language in ("ko", "en")               # detection is limited to the app's languages
    assert result.chunks == 1 and result.seconds_compute > 0
    assert result.model_id == "demo:whisper-tiny"


def test_resampled_length(speech_files):
    info = sf.info(str(speech_files["ko"]))
    clip = load_audio(speech_files["ko"])
    assert len(clip.samples) == pytest.approx(info.frames * 16000 / 22050, abs=1)


def test_bytes_and_language_hint(stt, speech_files):
    result = stt.transcribe(speech_files["ko"].read_bytes(), language="Korean")
    assert result.language == "ko" and not result.no_speech
    assert stt.transcribe(speech_files["en"], language="en").language == "en"


def test_unknown_language_hint(stt, speech_files):
    with pytest.raises(SpeechError, match="not one this speech model knows"):
        stt.transcribe(speech_files["en"], language="klingon")


def test_language_names():
    assert normalize_language("auto") is None and normalize_language(None) is None and normalize_language(" ") is None
    assert normalize_language("한국어") == "ko" and normalize_language("English") == "en"


def test_silence_is_no_speech(stt):
    result = stt.transcribe(wav_bytes(np.zeros(16000 * 2, dtype=np.float32), 16000))
    assert result.no_speech and result.message == NO_SPEECH and result.text == ""
    assert result.language is None and result.chunks == 0 and result.seconds_audio == 2.0


def test_zero_length_wav_is_no_speech(stt):
    result = stt.transcribe(wav_bytes(np.zeros(0, dtype=np.float32), 16000))
    assert result.no_speech and result.message == NO_SPEECH and result.seconds_audio == 0.0


def test_stereo_44k_float(stt):
    rate = 44100
    rng = np.random.default_rng(1)
    left = tone(1.5, rate, 220.0, 0.3) + rng.normal(0, 0.02, int(1.5 * rate)).astype(np.float32)
    stereo = np.stack([left, left[::-1].copy()], axis=1)
    result = stt.transcribe(wav_bytes(stereo, rate, "FLOAT"))
    assert result.original_rate == 44100 and result.resampled and not result.no_speech
    assert result.seconds_audio == pytest.approx(1.5, abs=1e-3)


def test_long_audio_goes_in_30s_chunks(stt):
    audio = np.concatenate([tone(20, 16000, 300.0, 0.2), tone(25, 16000, 500.0, 0.2), tone(20, 16000, 700.0, 0.2)])
    result = stt.transcribe(wav_bytes(audio, 16000))
    assert result.chunks == 3 and result.seconds_audio == pytest.approx(65.0)
    assert not result.no_speech


def test_silent_chunks_are_skipped(stt):
    audio = np.concatenate([np.zeros(16000 * 40, np.float32), tone(5, 16000, 300.0, 0.2)])
    result = stt.transcribe(wav_bytes(audio, 16000))
    assert result.chunks == 1


def test_bad_audio_raises_media_error(stt):
    with pytest.raises(MediaError, match="not audio"):
        stt.transcribe(b"definitely not a wav file" * 10)
    with pytest.raises(MediaError, match="empty"):
        stt.transcribe(b"")


def test_real_time_factor(stt, speech_files):
    result = stt.transcribe(speech_files["en"])
    assert result.real_time_factor == pytest.approx(result.seconds_compute / result.seconds_audio)
