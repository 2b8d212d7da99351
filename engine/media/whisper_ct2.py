"""Speech -> text with real Whisper base weights offline, run by CTranslate2 through faster-whisper.

Why this runtime: the only real Whisper weights installable here are in CTranslate2 format
(engine/loading/demo/whisper_base.py), and faster-whisper runs them on the CPU with float32 weights, long-form
audio (sequential 30 s windows that follow the timestamps, not blind cuts) and Silero VAD (bundled ONNX
file), so noise is not passed off as words. The app's own checks stay in front: `load_audio` decodes,
resamples to 16 kHz and enforces the limits; silence is answered before the model runs.
"""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from engine.loading.demo.whisper_base import OFFLINE_STT_ID, offline_whisper_model
from engine.loading.loader import LoadReport
from engine.media.inputs import TARGET_RATE, AudioClip, AudioLimits, is_silent, load_audio
from engine.media.speech import NO_SPEECH, Transcript, normalize_language, speech_refused

RUNTIME = "ctranslate2"
# float32 on the CPU, not int8: on espeak-ng Korean, int8 heard a short sentence as English (CER 2.00 against 0.45)
# and fp32 was closer on all three clips tried, for about 10 % more compute on English (docs/benchmarks.md).
CPU_COMPUTE = "float32"
_BYTES_PER_STORED_BYTE = {"float16": 1.0, "float32": 2.0, "int8": 0.5}   # model.bin holds float16 weights
# Whisper decodes these languages for the app; detection picks the likeliest among them (a Korean voice
# that Whisper base half-recognises is more often "Thai" than "English" when all 99 languages compete).
APP_LANGUAGES = ("ko", "en")
# The repetition guard (issue #26): greedy decoding looped on short espeak-ng Korean ("우리 우리 ..." to the 448-token
# limit: 668 characters, CER 37.17 on a 2.45 s clip). Two parts, measured in docs/benchmarks.md (speech section):
# 1. no 3-token sequence twice in one window (CTranslate2's no_repeat_ngram_size): a loop cannot start; the two
#    looping clips came back 17 and 14 characters long, the clean clips word for word as before, long English at
#    the same WER (0.05) and long Korean better (CER 0.85 -> 0.57: its "오는 오는 오는 에서서는" run is gone).
# 2. each window may write at most TOKENS_PER_SECOND per second of audio plus TOKENS_SLACK: the reference sentences
#    are 3-6 tokens a second, so a real sentence fits twice over and anything else that runs on stops early.
# Whisper's own temperature fallback (with compression_ratio_threshold 2.4) ran over 7 minutes on one 2.45 s clip
# on 2 shared cores without finishing; repetition_penalty 1.2 broke the loops too but wrote a worse first clip.
NO_REPEAT_NGRAM = 3
TOKENS_PER_SECOND, TOKENS_SLACK, WHISPER_MAX_NEW_TOKENS = 12, 24, 440


def token_cap(seconds: float) -> int:
    """New tokens one window may write for audio this long (a window holds at most 30 s)."""
    return min(WHISPER_MAX_NEW_TOKENS, math.ceil(TOKENS_PER_SECOND * min(seconds, 30.0)) + TOKENS_SLACK)


def voiced(samples: np.ndarray) -> bool:
    """Whether Silero VAD (faster-whisper's bundled ONNX model, default settings) hears a voice anywhere."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    return bool(get_speech_timestamps(samples, VadOptions()))


class FasterWhisper:
    """Whisper (CTranslate2 format) loaded once; one transcription at a time per model (a lock)."""

    def __init__(self, model: object, report: LoadReport, *, languages: tuple[str, ...] = APP_LANGUAGES,
                 beam_size: int = 1, vad: bool = True, limits: AudioLimits = AudioLimits(),
                 decode: Mapping[str, object] | None = None):
        self.model, self.report, self.languages = model, report, tuple(languages)
        self.beam_size, self.vad, self.limits = beam_size, vad, limits
        self.decode = dict(decode or {})   # faster-whisper options over the app's (the bench measures variants)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path | None = None, *, model_id: str = OFFLINE_STT_ID, notice: str = "",
             threads: int | None = None, **kwargs: object) -> "FasterWhisper":
        """The packaged Whisper base (or a CTranslate2 Whisper `folder`): float32 on the CPU, fp16 on a GPU."""
        import ctranslate2
        from faster_whisper import WhisperModel

        started = time.perf_counter()
        folder = folder or offline_whisper_model()
        gpu = ctranslate2.get_cuda_device_count() > 0
        device, compute = ("cuda", "float16") if gpu else ("cpu", CPU_COMPUTE)
        model = WhisperModel(str(folder), device=device, compute_type=compute,
                             cpu_threads=threads or min(4, os.cpu_count() or 1), local_files_only=True)
        size = int((folder / "model.bin").stat().st_size * _BYTES_PER_STORED_BYTE[compute])
        report = LoadReport(model_id=model_id, folder=str(folder), rung=f"{RUNTIME}-{compute}", device=device,
                            reason="Whisper base, real weights (MIT), run by CTranslate2 with "
                                   f"{compute} weights", seconds=time.perf_counter() - started,
                            gpu_bytes=size if gpu else 0, cpu_bytes=0 if gpu else size,
                            demo=False, notice=notice, random_weights=False)
        return cls(model, report, **kwargs)  # type: ignore[arg-type]

    @property
    def real_weights(self) -> bool:
        return True

    def memory_bytes(self) -> int:
        return self.report.gpu_bytes or self.report.cpu_bytes

    def close(self) -> None:
        self.model = None

    def transcribe(self, audio: bytes | str | Path | AudioClip, language: str | None = None, *,
                   max_new_tokens: int | None = None) -> Transcript:
        """Audio -> Transcript. Silence, and noise in which VAD hears no voice, give no_speech=True."""
        clip = audio if isinstance(audio, AudioClip) else load_audio(audio, self.limits)
        hint = normalize_language(language)
        started = time.perf_counter()
        common = dict(seconds_audio=clip.seconds, original_rate=clip.original_rate, resampled=clip.resampled,
                      model_id=self.report.model_id)
        if is_silent(clip.samples, TARGET_RATE):
            return Transcript("", None, no_speech=True, message=NO_SPEECH, chunks=0,
                              seconds_compute=time.perf_counter() - started, **common)
        if self.vad and not voiced(clip.samples):   # noise, hum, music: no voice, so nothing to transcribe
            return Transcript("", None, no_speech=True, message=NO_SPEECH, chunks=0,
                              seconds_compute=time.perf_counter() - started, **common)
        with self._lock:
            if self.model is None:
                raise speech_refused("the speech model was unloaded; try again", "unloaded")
            texts, lang = self._run(clip.samples, hint, max_new_tokens)
        text = " ".join(texts).strip()
        return Transcript(text, lang if text else None, no_speech=not text, message="" if text else NO_SPEECH,
                          chunks=len(texts), seconds_compute=time.perf_counter() - started, **common)

    def _run(self, samples: np.ndarray, hint: str | None, max_new_tokens: int | None) -> tuple[list[str], str]:
        model = self.model
        if hint is not None and hint not in model.supported_languages:
            raise speech_refused(f"language {hint!r} is not one this speech model knows; use ko, en or auto",
                                 "language", language=hint)
        lang = hint or self.detect(samples)
        # One greedy pass per window at temperature 0: faster-whisper's default retries hard audio at five more
        # temperatures, which on a 2-core CPU made a 5 s clip take minutes (docs/benchmarks.md).
        # VAD has already said a voice is there (noise alone never gets here), so no window is dropped for
        # looking like silence: with that check on, clear espeak-ng Korean came back empty.
        options: dict[str, object] = {"language": lang, "task": "transcribe", "beam_size": self.beam_size,
                                      "temperature": 0.0, "vad_filter": self.vad, "no_speech_threshold": None,
                                      "condition_on_previous_text": False,
                                      "no_repeat_ngram_size": NO_REPEAT_NGRAM} | self.decode
        options.setdefault("max_new_tokens", min(max_new_tokens or WHISPER_MAX_NEW_TOKENS,
                                                 token_cap(len(samples) / TARGET_RATE)))
        segments, _ = model.transcribe(samples, **options)
        return [s.text.strip() for s in segments if s.text.strip()], lang

    def detect(self, samples: np.ndarray) -> str:
        """Whisper's language probabilities over the first 30 s, limited to the app's languages."""
        _, _, ranked = self.model.detect_language(samples)
        probs = dict(ranked)
        allowed = [code for code in self.languages if code in probs]
        return max(allowed, key=probs.__getitem__) if allowed else ranked[0][0]
