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
    from config import EngineConfig

    return EngineConfig(max_context=1024)


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

def espeak_wav(path: Path, text: str, voice: str) -> Path:
    """Real synthetic speech (espeak-ng writes 22050 Hz mono 16-bit WAV)."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: apt-get install espeak-ng")
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def speech_files(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("speech")
    return {"ko": espeak_wav(tmp / "ko.wav", "안녕하세요. 만나서 반갑습니다.", "ko"),
            "en": espeak_wav(tmp / "en.wav", "Hello, how are you today?", "en")}


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
