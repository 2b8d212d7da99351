"""Fixtures and file makers for the vision, speech and manager tests: tiny real models, real files.

Test modules import the fixtures they use by name (pytest finds fixtures in a module's namespace).
"""
from __future__ import annotations

import io
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf


# -- models (built once per machine, loaded once per test run) ------------------------------------------

@pytest.fixture(scope="session")
def engine_config():
    """The tiny random speech models (engine.demo_speech "tiny"): fast tests of the transformers speech path."""
    from config import EngineConfig

    return EngineConfig(max_context=1024, demo_speech="tiny")


@pytest.fixture(scope="session")
def vision_engine(engine_config):
    from engine.media.vision import VisionEngine

    return VisionEngine.load(engine_config, demo=True)


@pytest.fixture(scope="session")
def stt(engine_config):
    from engine.media.speech import SpeechToText

    return SpeechToText.load(engine_config, demo=True, max_new_tokens=8)


@pytest.fixture(scope="session")
def voice_ko(engine_config):
    from engine.media.speech import Voice

    return Voice.load(engine_config, "ko", demo=True)


@pytest.fixture(scope="session")
def voice_en(engine_config):
    from engine.media.speech import Voice

    return Voice.load(engine_config, "en", demo=True)


# -- audio files ------------------------------------------------------------------------------------------

def espeak_wav(path: Path, text: str, voice: str, wpm: int = 175) -> Path:
    """Real synthetic speech (espeak-ng writes 22050 Hz mono 16-bit WAV) at `wpm` words a minute."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(path), text], check=True,
                   capture_output=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def speech_files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("speech")
    return {"ko": espeak_wav(tmp / "ko.wav", "안녕하세요. 만나서 반갑습니다.", "ko"),
            "en": espeak_wav(tmp / "en.wav", "Hello, how are you today?", "en")}


# -- clips for the real speech models (tests/test_speech_real.py, bench/bench_speech_real.py) ---------------

EN_SHORT = ("Hello, how are you today?",
            "The weather is nice and I would like to go for a walk in the park.",
            "Please tell me a short story about a brave little dog.",
            "What is the capital of France?")
KO_SHORT = ("안녕하세요. 만나서 반갑습니다.", "저는 서울에 살고 있습니다.", "오늘은 날씨가 아주 좋습니다.",
            "내일은 도서관에 갈 예정입니다.")
# Long-form (LONG_WPM): about 70 s of English and 40 s of Korean, so words lie on both sides of 30 s.
LONG_WPM = 160
EN_LONG = ("My grandmother lived in a small house near the sea. Every morning she walked along the beach and "
           "collected shells. She kept them in glass jars on the kitchen window. When the sun came through the "
           "jars, the whole room turned blue and green. In the afternoon she baked bread and sang old songs. "
           "The neighbours often came by to talk about the fishing boats. On rainy days we played cards and "
           "drank hot tea by the fire. She taught me how to plant tomatoes in the garden. She also taught me "
           "to be patient and to listen to other people. Many years later, I still think of her whenever I "
           "see the ocean. Her house is gone now, but the jars of shells are on my own window. Every evening "
           "the light turns them gold before the night arrives. Last summer my daughter asked me about the "
           "shells, so I told her these stories. She listened quietly and then asked to see the sea. We drove "
           "to the coast the next weekend and walked on the same beach. Now she keeps her own jar of shells "
           "beside her bed.")
KO_LONG = ("안녕하세요. 저는 서울에 살고 있습니다. 오늘은 날씨가 아주 좋습니다. 우리는 공원에서 산책을 했습니다. "
           "저녁에는 친구와 함께 밥을 먹었습니다. 내일은 도서관에 갈 예정입니다. 주말에는 가족과 함께 바다에 "
           "갈 것입니다. 바다에서 사진을 많이 찍고 싶습니다. 그리고 맛있는 생선을 먹을 것입니다. 다음 달에는 "
           "부산에 사는 할머니를 만나러 갈 것입니다. 할머니는 항상 저를 반갑게 맞아 주십니다.")
# espeak-ng's Korean voice variants: Whisper base mistakes the default one for Thai or Japanese (and among
# ko/en for English) on short clips; the Klatt variant is heard as Korean (docs/benchmarks.md has both).
VOICE = {"en": "en-us", "ko": "ko+klatt"}


def espeak_clip(folder: Path, name: str, text: str, lang: str, *, voice: str | None = None,
                tempo: float | None = None, rate: int | None = None, noise: float | None = None,
                fmt: str = "wav", wpm: int = 175) -> Path:
    """Real speech by espeak-ng (22050 Hz), then sox: `tempo` (speed, pitch kept), white noise mixed in at
    `noise` amplitude, resampled to `rate`; written as WAV, MP3 (libsndfile) or WebM/Opus at 48 kHz (FFmpeg's
    libopus through PyAV, as browsers record)."""
    out = folder / f"{name}.{ {'wav': 'wav', 'mp3': 'mp3', 'webm': 'webm'}[fmt]}"
    if out.exists():
        return out
    raw = espeak_wav(folder / f"{name}.raw.wav", text, voice or VOICE[lang], wpm)
    step = raw
    if tempo:
        step = _sox(step, folder / f"{name}.tempo.wav", "tempo", "-s", str(tempo))
    if noise:
        seconds = sf.info(str(step)).duration
        hiss = folder / f"{name}.noise.wav"
        subprocess.run(["sox", "-R", "-n", "-r", str(sf.info(str(step)).samplerate), "-c", "1", "-b", "16", str(hiss),
                        "synth", f"{seconds:.3f}", "whitenoise", "vol", str(noise)], check=True, timeout=60)
        mixed = folder / f"{name}.mixed.wav"
        subprocess.run(["sox", "-m", str(step), str(hiss), str(mixed)], check=True, timeout=60)
        step = mixed
    target = 48_000 if fmt == "webm" else rate
    if target:
        step = _sox(step, folder / f"{name}.rate.wav", "rate", "-h", str(target))
    if fmt == "wav":
        shutil.copyfile(step, out)
    elif fmt == "mp3":
        samples, sr = sf.read(str(step), dtype="float32")
        sf.write(str(out), samples, sr, format="MP3")
    else:
        webm_opus(step, out)
    return out


def _sox(src: Path, dst: Path, *effect: str) -> Path:
    subprocess.run(["sox", str(src), str(dst), *effect], check=True, capture_output=True, timeout=120)
    return dst


def webm_opus(src: Path, dst: Path) -> Path:
    """A 48 kHz mono WAV as WebM/Opus (what Chrome's MediaRecorder makes), encoded by FFmpeg's libopus (PyAV)."""
    import av

    samples, rate = sf.read(str(src), dtype="float32")
    with av.open(str(dst), mode="w", format="webm") as container:
        stream = container.add_stream("libopus", rate=rate, layout="mono")
        frame_size = 960
        for start in range(0, len(samples), frame_size):
            chunk = samples[start:start + frame_size]
            frame = av.AudioFrame.from_ndarray(chunk[None, :].astype(np.float32), format="flt", layout="mono")
            frame.rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return dst


def normalized_words(text: str) -> str:
    """Lower case, punctuation out, single spaces: what word and character error rates compare."""
    import re

    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def error_rate(reference: str, heard: str, lang: str) -> float:
    """Word error rate for English, character error rate (spaces dropped) for Korean."""
    import jiwer

    ref, hyp = normalized_words(reference), normalized_words(heard)
    if lang == "ko":
        ref, hyp = ref.replace(" ", ""), hyp.replace(" ", "")
        return float(jiwer.cer(ref, hyp)) if hyp else 1.0
    return float(jiwer.wer(ref, hyp)) if hyp else 1.0


def wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def wav_with_rate(rate: int, frames: int = 1600) -> bytes:
    """A valid 16-bit mono WAV whose header claims `rate` (soundfile refuses to write absurd rates)."""
    data = (np.sin(np.arange(frames) / 5.0) * 8000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tone(seconds: float, rate: int, freq: float = 440.0, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


# -- image files ------------------------------------------------------------------------------------------

def image_bytes(img, fmt: str = "PNG", **save) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **save)
    return buf.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb's calling card)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + \
        chunk(b"IEND", b"")
