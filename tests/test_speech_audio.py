"""Audio checks before Whisper: decode anything soundfile reads, refuse bad files clearly, 16 kHz mono out."""
from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from engine.media.inputs import AudioLimits, clip_from_samples, is_silent, load_audio, resample, split_for_whisper
from engine.errors import MediaError
from tests.media_fixtures import tone, wav_bytes, wav_with_rate


def peak_hz(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


@pytest.mark.parametrize("data, words", [
    (b"", "empty"),
    (b"this is not audio, just some text pretending to be a recording" * 4, "not audio we can read"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, "not audio we can read"),
])
def test_not_audio(data, words):
    with pytest.raises(MediaError, match=words):
        load_audio(data)


def test_nan_samples_refused():
    samples = tone(0.5, 16000)
    samples[100:110] = np.nan
    with pytest.raises(MediaError, match="NaN"):
        load_audio(wav_bytes(samples, 16000, "FLOAT"))


def test_infinite_samples_refused():
    samples = tone(0.5, 16000)
    samples[5] = np.inf
    with pytest.raises(MediaError, match="NaN or infinity"):
        load_audio(wav_bytes(samples, 16000, "FLOAT"))


@pytest.mark.parametrize("rate", [1, 100, 3_999, 1_000_000, 2_000_000_000])
def test_absurd_sample_rate(rate):
    with pytest.raises(MediaError, match=f"sample rate of {rate} Hz"):
        load_audio(wav_with_rate(rate))


def test_sane_rate_from_the_same_writer_is_accepted():
    clip = load_audio(wav_with_rate(8000))  # guards the test above: the hand-made header itself is fine
    assert clip.original_rate == 8000 and clip.sample_rate == 16000


def test_too_long_refused_from_the_header():
    data = wav_bytes(np.zeros(16000 * 3, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match="at most 2 s"):
        load_audio(data, AudioLimits(max_seconds=2))


def test_too_big_refused():
    data = wav_bytes(np.zeros(16000, dtype=np.float32), 16000)
    with pytest.raises(MediaError, match="MB"):
        load_audio(data, AudioLimits(max_bytes=100))


def test_zero_length_wav_decodes_to_an_empty_clip():
    clip = load_audio(wav_bytes(np.zeros(0, dtype=np.float32), 16000))
    assert clip.samples.size == 0 and clip.seconds == 0.0


def test_resample_22050_keeps_pitch():
    rate = 22050
    clip = clip_from_samples(tone(1.0, rate, 440.0), rate)
    assert clip.sample_rate == 16000 and clip.original_rate == rate and clip.resampled
    assert len(clip.samples) == 16000
    assert abs(peak_hz(clip.samples, 16000) - 440.0) < 2.0


def test_stereo_44k_float_to_mono_16k():
    rate = 44100
    left, right = tone(2.0, rate, 300.0, 0.4), tone(2.0, rate, 300.0, 0.2)
    clip = load_audio(wav_bytes(np.stack([left, right], axis=1), rate, "FLOAT"))
    assert clip.channels == 2 and clip.original_rate == 44100
    assert clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert len(clip.samples) == 32000
    assert abs(float(np.abs(clip.samples[1000:-1000]).max()) - 0.3) < 0.02   # the mean of the two channels
    assert abs(peak_hz(clip.samples, 16000) - 300.0) < 2.0


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "PCM_U8"])
def test_int_and_float_wavs(subtype):
    clip = load_audio(wav_bytes(tone(0.5, 16000, 500.0, 0.5), 16000, subtype))
    assert not clip.resampled
    assert abs(float(np.abs(clip.samples).max()) - 0.5) < 0.02


def test_flac_and_ogg():
    for fmt in ("FLAC", "OGG"):
        buf = io.BytesIO()
        sf.write(buf, tone(0.5, 48000), 48000, format=fmt)
        clip = load_audio(buf.getvalue())
        assert clip.original_rate == 48000 and abs(len(clip.samples) - 8000) <= 1


def test_mp3_at_8k():
    """MP3 at a telephone's 8 kHz (libsndfile) comes out 16 kHz and as long as it went in; the model hearing such
    clips is measured in bench speech_real."""
    buf = io.BytesIO()
    sf.write(buf, tone(0.5, 8000), 8000, format="MP3")
    clip = load_audio(buf.getvalue())
    assert clip.original_rate == 8000 and clip.resampled and abs(len(clip.samples) - 8000) <= 160


def test_int16_array_from_a_caller():
    pcm = (tone(0.25, 8000) * 32767).astype(np.int16)
    clip = clip_from_samples(pcm, 8000)
    assert len(clip.samples) == 4000 and float(np.abs(clip.samples).max()) <= 1.0


def test_resample_is_identity_at_16k():
    x = tone(0.1, 16000)
    assert np.array_equal(resample(x, 16000), x)


def test_silence_detection():
    assert is_silent(np.zeros(16000, dtype=np.float32), 16000)
    assert is_silent(np.full(16000, 0.3, dtype=np.float32), 16000)            # DC offset only
    assert is_silent(np.random.default_rng(0).normal(0, 1e-4, 16000).astype(np.float32), 16000)
    assert not is_silent(tone(0.2, 16000, amplitude=0.1), 16000)
    assert is_silent(np.zeros(0, dtype=np.float32), 16000)


def test_long_audio_splits_into_30s_pieces_at_quiet_points():
    rate = 16000
    audio = np.concatenate([tone(27.0, rate), np.zeros(int(0.5 * rate), np.float32), tone(40.0, rate)])
    pieces = split_for_whisper(audio, rate)
    assert len(pieces) == 3
    assert all(len(p) <= 30 * rate for p in pieces)
    assert sum(len(p) for p in pieces) == len(audio)
    assert 27.0 * rate <= len(pieces[0]) <= 27.5 * rate      # cut inside the pause, not mid-tone
    assert len(split_for_whisper(audio[: 10 * rate], rate)) == 1
