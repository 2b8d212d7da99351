"""Text -> speech with espeak-ng: a real, small, offline voice for English and Korean (formant synthesis).

It is the offline voice beside MMS-TTS (which needs the hub once): the Debian package `espeak-ng` (the
Makefile installs it) reads Hangul itself, so nothing is romanised. The text goes in on stdin, never as an
argument (a reply that starts with "-" is text, not an option), and each sentence is one run of the program.
"""
from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from engine.errors import SourceError, SpeechError
from engine.loading.loader import LoadReport
from engine.media.speech import Speech, speak_in_sentences, speech_refused, text_to_speak

ESPEAK = "espeak-ng"
VOICES = {"ko": "ko", "en": "en-us"}
INSTALL = "apt-get install espeak-ng (make test installs it)"


def espeak_version() -> str:
    """'eSpeak NG text-to-speech: 1.51 ...' or SourceError when the program is missing."""
    exe = shutil.which(ESPEAK)
    if exe is None:
        raise SourceError(f"the offline voice needs the espeak-ng program: {INSTALL}")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=20)
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else ESPEAK


class EspeakVoice:
    """One espeak-ng voice ("ko" or "en"); thread-safe (each call is its own process)."""

    def __init__(self, language: str, report: LoadReport, *, max_chars: int = 4000, sentence_chars: int = 250,
                 pause_seconds: float = 0.25, words_per_minute: int = 165):
        if language not in VOICES:
            raise SpeechError(f"no voice for language {language!r}; use ko or en")
        self.language, self.report = language, report
        self.max_chars, self.sentence_chars, self.pause_seconds = max_chars, sentence_chars, pause_seconds
        self.words_per_minute = words_per_minute
        self._closed = threading.Event()

    @classmethod
    def load(cls, language: str, notice: str = "", **kwargs: object) -> "EspeakVoice":
        started = time.perf_counter()
        version = espeak_version()
        report = LoadReport(model_id=f"espeak-ng:{VOICES.get(language, language)}", folder="", rung="formant",
                            device="cpu", reason=f"{version.split(' Data at')[0]}, a real offline voice "
                                                 "(formant synthesis, no weights)",
                            seconds=time.perf_counter() - started, demo=False, notice=notice,
                            random_weights=False)
        return cls(language, report, **kwargs)  # type: ignore[arg-type]

    @property
    def real_weights(self) -> bool:
        return True

    def memory_bytes(self) -> int:
        return 0

    def close(self) -> None:
        self._closed.set()

    def speak(self, text: str) -> Speech:
        """Text -> 16-bit PCM WAV, sentence by sentence with a short pause between them."""
        text = text_to_speak(text, self.max_chars)
        if self._closed.is_set():
            raise speech_refused("the voice was unloaded; try again", "unloaded")
        return speak_in_sentences(text, self._synthesize, language=self.language, model_id=self.report.model_id,
                                  sentence_chars=self.sentence_chars, pause_seconds=self.pause_seconds)

    def _synthesize(self, sentence: str) -> tuple[np.ndarray, int, str]:
        """One run of espeak-ng on one sentence (stdin in, WAV out): (samples, rate, the sentence)."""
        import soundfile as sf

        exe = shutil.which(ESPEAK)
        if exe is None:
            raise speech_refused(f"the offline voice needs the espeak-ng program: {INSTALL}", "voice_failed")
        with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
            out = Path(tmp) / "say.wav"
            try:
                subprocess.run([exe, "-v", VOICES[self.language], "-s", str(self.words_per_minute), "-w", str(out),
                                "--stdin"], input=sentence.encode("utf-8"), capture_output=True, check=True,
                               timeout=60)
            except subprocess.TimeoutExpired:
                raise speech_refused("the voice took too long on this text; try a shorter one", "voice_slow") from None
            except subprocess.CalledProcessError:
                raise speech_refused("the voice could not speak this text", "voice_failed") from None
            samples, rate = sf.read(str(out), dtype="float32", always_2d=False)
        return np.asarray(samples, dtype=np.float32), int(rate), sentence
