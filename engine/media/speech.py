"""Speech -> text with Whisper, text -> speech with MMS-TTS (VITS), on whatever device the app has.

Offline (--demo, or the configured models cannot be had) the real Whisper base runs through CTranslate2
(engine/media/whisper_ct2.py) and espeak-ng speaks (engine/media/espeak.py); engine.demo_speech "tiny" keeps
the tiny random models below for fast tests.

We resample to 16 kHz ourselves (the transformers pipeline would need torchaudio), cut long audio
into 30 s pieces, and answer silence with a "no speech heard" Transcript instead of an error.
Korean text is romanised with `uroman` before an MMS tokenizer that says `is_uroman`, once per
voice: VitsTokenizer would otherwise build a new Uroman (2 s) on every call.
"""
from __future__ import annotations

import copy
import io
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
import torch

from engine.serving import zerogpu
from config import EngineConfig
from engine.loading.loader import LoadReport, model_bytes
from engine.loading.memory import attempt
from engine.media.inputs import TARGET_RATE, AudioClip, AudioLimits, is_silent, load_audio, split_for_whisper
from engine.errors import MediaError
from engine.loading.sources import ModelSource, resolve_source
from engine.errors import SourceError, SpeechError

if TYPE_CHECKING:
    from engine.media.espeak import EspeakVoice
    from engine.media.whisper_ct2 import FasterWhisper

NO_SPEECH = "No speech heard: the recording is silent or too quiet."
DEMO_STT_NOTICE = "Demo speech recogniser with random weights: transcripts are noise, not words."
DEMO_TTS_NOTICE = "Demo voice with random weights: it makes noise, not speech."
LANGUAGE_NAMES = MappingProxyType({"ko": "ko", "korean": "ko", "kor": "ko", "한국어": "ko",
                                   "en": "en", "english": "en", "eng": "en", "영어": "en"})
_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
_SENTENCE_END = re.compile(r"(?<=[.!?…。！？])\s+|\n+")
# (what it is, load(why)): one way to get a speech model, given why the ones before it failed (for its notice)
Candidate = tuple[str, Callable[[str], Any]]


def speech_refused(message: str, sentence: str, **values: Any) -> SpeechError:
    """A SpeechError that also names its sentence (ui/i18n `speech_<sentence>`) and the values it needs, so a
    Korean page shows the whole line in Korean."""
    return SpeechError(message, values={"sentence": f"speech_{sentence}", **values})


def _first_that_loads(candidates: Sequence[Candidate], *, strict: bool = False) -> Any:
    """The first candidate that loads: configured model -> offline real model -> tiny demo. Each later one gets
    the reasons the ones before it failed (its notice says so). `strict` (engine.demo_fallback off): the first
    candidate's failure is raised as it is."""
    why: list[str] = []
    for i, (name, load) in enumerate(candidates):
        try:
            return load(" ".join(why))
        except SourceError as exc:
            if (strict and i == 0) or i == len(candidates) - 1:
                raise
            why.append(f"Could not load {name}: {exc}")
    raise SourceError("no speech model to load")


def _instead(why: str, what: str, notice: str = "") -> str:
    """The notice of a fallback: why the models before it failed, and what runs instead."""
    return " ".join(filter(None, [f"{why} -- {what} instead." if why else "", notice]))


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str | None          # "ko", "en", ...; None when nothing was heard
    seconds_audio: float
    no_speech: bool
    message: str                  # NO_SPEECH when no_speech, else ""
    seconds_compute: float = 0.0
    chunks: int = 0               # 30 s pieces sent to the model
    original_rate: int = 0
    resampled: bool = False
    model_id: str = ""

    @property
    def real_time_factor(self) -> float:
        return self.seconds_compute / self.seconds_audio if self.seconds_audio > 0 else 0.0


@dataclass(frozen=True)
class Speech:
    wav: bytes                    # RIFF WAV, 16-bit PCM, mono
    sample_rate: int
    seconds: float
    language: str                 # "ko" | "en"
    text_spoken: str              # what the VITS tokenizer saw (romanised for Korean voices)
    romanized: bool
    sentences: int
    model_id: str = ""


def _device_and_dtype() -> tuple[str, torch.dtype]:
    """Speech models are small: fp16 on a GPU, fp32 on the CPU (bf16 convolutions are slow there)."""
    return ("cuda:0", torch.float16) if torch.cuda.is_available() else ("cpu", torch.float32)


def _report(model: Any, source: ModelSource, notice: str, seconds: float) -> LoadReport:
    gpu, cpu = model_bytes(model)
    device, dtype = _device_and_dtype()
    rung = "fp16" if device.startswith("cuda") else "cpu-float32"
    return LoadReport(model_id=source.model_id, folder=str(source.folder), rung=rung, device=device,
                      reason="speech models load whole at one precision (they are small)", seconds=seconds,
                      gpu_bytes=gpu, cpu_bytes=cpu, demo=source.demo, notice=notice)


def normalize_language(language: str | None) -> str | None:
    """'ko', 'Korean', '한국어' -> 'ko'; None/'auto'/'' -> None (detect). Other codes pass through lower-cased."""
    if language is None or not language.strip() or language.strip().lower() == "auto":
        return None
    key = language.strip().lower()
    return LANGUAGE_NAMES.get(key, key)


class SpeechToText:
    """A loaded Whisper model. Thread-safe: one transcription at a time per model."""

    def __init__(self, model: Any, processor: Any, report: LoadReport, *, languages: Sequence[str] = ("ko", "en"),
                 max_new_tokens: int = 440, batch_size: int = 4, limits: AudioLimits = AudioLimits()):
        self.model, self.processor, self.report = model, processor, report
        self.languages, self.max_new_tokens, self.batch_size, self.limits = tuple(languages), max_new_tokens, \
            batch_size, limits
        self._lock = threading.Lock()
        # The model work runs inside spaces.GPU on ZeroGPU (engine/serving/zerogpu.py), sized by the audio's length.
        self._gpu_transcribe = zerogpu.on_gpu(self._transcribe, lambda pieces, *rest: zerogpu.GpuSeconds().audio(
            sum(len(p) for p in pieces) / TARGET_RATE))

    @classmethod
    def from_source(cls, source: ModelSource, notice: str = "", **kwargs: Any) -> "SpeechToText":
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        started = time.perf_counter()
        device, dtype = _device_and_dtype()
        processor = WhisperProcessor.from_pretrained(str(source.folder))
        model = WhisperForConditionalGeneration.from_pretrained(
            str(source.folder), dtype=dtype, use_safetensors=True, trust_remote_code=False,
            device_map={"": device} if device != "cpu" else None).eval()
        return cls(model, processor, _report(model, source, notice, time.perf_counter() - started), **kwargs)

    @classmethod
    def load(cls, cfg: EngineConfig, *, demo: bool = False, **kwargs: Any) -> "SpeechToText | FasterWhisper":
        """engine.stt_model with a GPU, engine.stt_model_cpu without. On --demo, or when that model cannot be had,
        engine.demo_speech decides: the real offline Whisper base ("offline") or the tiny random one ("tiny")."""
        from engine.loading.demo.speech import demo_whisper_model
        from engine.media.whisper_ct2 import FasterWhisper

        model_id = cfg.stt_model if torch.cuda.is_available() else cfg.stt_model_cpu
        candidates: list[Candidate] = [(model_id, lambda why: cls.from_source(resolve_source(model_id), "",
                                                                              **kwargs))] if not demo else []
        if cfg.demo_speech == "offline":
            candidates.append(("the offline Whisper base", lambda why: FasterWhisper.load(
                notice=_instead(why, "running Whisper base (real weights, offline)"))))
        candidates.append(("the demo model", lambda why: cls.from_source(
            ModelSource("demo:whisper-tiny", demo_whisper_model(), True),
            _instead(why, "running a demo model", DEMO_STT_NOTICE), **kwargs)))
        return _first_that_loads(candidates, strict=not demo and not cfg.demo_fallback)

    def memory_bytes(self) -> int:
        gpu, cpu = model_bytes(self.model)
        return gpu or cpu

    def close(self) -> None:
        """Drop the weights (the manager calls this when it unloads the model)."""
        self.model = None

    def transcribe(self, audio: bytes | str | Path | AudioClip, language: str | None = None, *,
                   max_new_tokens: int | None = None) -> Transcript:
        """Audio (file bytes, a path, or an AudioClip) -> Transcript; silence gives no_speech=True, not an error."""
        clip = audio if isinstance(audio, AudioClip) else load_audio(audio, self.limits)
        lang = normalize_language(language)
        started = time.perf_counter()
        common = dict(seconds_audio=clip.seconds, original_rate=clip.original_rate, resampled=clip.resampled,
                      model_id=self.report.model_id)
        pieces = [p for p in split_for_whisper(clip.samples, TARGET_RATE) if not is_silent(p, TARGET_RATE)]
        if not pieces:
            return Transcript("", None, no_speech=True, message=NO_SPEECH, chunks=0,
                              seconds_compute=time.perf_counter() - started, **common)
        with self._lock:
            if self.model is None:
                raise speech_refused("the speech model was unloaded; try again", "unloaded")
            done, failure = attempt(self._gpu_transcribe, pieces, lang, max_new_tokens or self.max_new_tokens)
        if failure is not None:
            raise speech_refused(f"ran out of memory while transcribing ({failure}); the model is still loaded: "
                                 "try a shorter recording or again when other models are idle", "oom")
        texts, lang = done
        text = " ".join(t for t in texts if t).strip()
        return Transcript(text, lang, no_speech=not text, message="" if text else NO_SPEECH, chunks=len(pieces),
                          seconds_compute=time.perf_counter() - started, **common)

    def _transcribe(self, pieces: list[np.ndarray], lang: str | None, max_new_tokens: int) -> tuple[list[str], str | None]:
        features = self._features(pieces)
        lang = self._language(features[:1], lang)
        texts: list[str] = []
        for i in range(0, len(pieces), self.batch_size):
            texts += self._generate(features[i:i + self.batch_size], lang, max_new_tokens)
        return texts, lang

    def _features(self, pieces: list[np.ndarray]) -> torch.Tensor:
        fe = self.processor.feature_extractor
        out = fe(pieces, sampling_rate=TARGET_RATE, return_tensors="pt").input_features
        return out.to(self.model.device, dtype=self.model.dtype)

    def _language(self, features: torch.Tensor, hint: str | None) -> str | None:
        """The hint if the model knows it; else Whisper's own detection, limited to `languages` (ko, en)."""
        gen = self.model.generation_config
        known = getattr(gen, "lang_to_id", None)
        if not known or getattr(gen, "is_multilingual", True) is False:  # an English-only checkpoint
            if hint not in (None, "en"):
                raise speech_refused(f"this speech model understands English only, not {hint!r}", "language",
                                     language=hint)
            return "en"
        if hint is not None:
            if f"<|{hint}|>" not in known:
                raise speech_refused(f"language {hint!r} is not one this speech model knows; use ko, en or auto",
                                     "language", language=hint)
            return hint
        allowed = {k: v for k, v in known.items() if k.strip("<|>") in self.languages} or dict(known)
        limited = copy.deepcopy(gen)
        limited.lang_to_id = allowed
        with torch.inference_mode():
            lang_id = int(self.model.detect_language(features, generation_config=limited)[0])
        return next(k.strip("<|>") for k, v in allowed.items() if v == lang_id)

    def _generate(self, features: torch.Tensor, lang: str | None, max_new_tokens: int) -> list[str]:
        gen = self.model.generation_config
        limit = getattr(self.model.config, "max_target_positions", 448) - 8  # room for the 4-token prompt
        # Whisper counts `max_length` after its prompt; `max_new_tokens` would clash with the checkpoint's
        # max_length and log a warning on every call.
        kwargs: dict[str, Any] = {"max_length": min(max_new_tokens, limit), "return_dict_in_generate": True,
                                  "attention_mask": torch.ones(features.shape[0], features.shape[-1],
                                                               dtype=torch.long, device=features.device)}
        if getattr(gen, "lang_to_id", None) and getattr(gen, "is_multilingual", True) is not False:
            kwargs |= {"language": lang, "task": "transcribe"}
        with torch.inference_mode():
            out = self.model.generate(features, **kwargs)
        tokenizer = self.processor.tokenizer
        return [tokenizer.decode(seq, skip_special_tokens=True).strip() for seq in out.sequences]


def text_language(text: str) -> str:
    """'ko' when the text has any Hangul, else 'en': which MMS voice can read it."""
    return "ko" if _HANGUL.search(text) else "en"


def text_to_speak(text: str | None, max_chars: int) -> str:
    """The text stripped, or a SpeechError a person understands (empty, or longer than one request may speak);
    every voice checks its input with this."""
    text = (text or "").strip()
    if not text:
        raise speech_refused("there is no text to speak", "no_text")
    if len(text) > max_chars:
        raise speech_refused(f"the text is {len(text)} characters; at most {max_chars} can be spoken at once",
                             "too_long", n=len(text), limit=max_chars)
    return text


def split_sentences(text: str, max_chars: int = 250) -> list[str]:
    """Sentences (split after . ! ? … and at line breaks), long ones cut at commas, then spaces, to max_chars."""
    out: list[str] = []
    for sentence in (s.strip() for s in _SENTENCE_END.split(text)):
        while len(sentence) > max_chars:
            head = sentence[:max_chars]
            cut = max(head.rfind(", "), head.rfind("，"), head.rfind("、"))
            cut = cut + 1 if cut > max_chars // 3 else head.rfind(" ")
            cut = cut if cut > max_chars // 3 else max_chars
            out.append(sentence[:cut].strip())
            sentence = sentence[cut:].strip()
        if sentence:
            out.append(sentence)
    return out


def speak_in_sentences(text: str, say: Callable[[str], tuple[np.ndarray | None, int, str]], *, language: str,
                       model_id: str, sentence_chars: int, pause_seconds: float) -> Speech:
    """Checked text -> one 16-bit PCM WAV, sentence by sentence with a short pause between them; every voice
    (VITS, espeak-ng) speaks through this. `say(sentence)` -> (samples, or None when nothing in it can be
    pronounced; their sample rate; the text the voice read, romanised or not)."""
    import soundfile as sf

    pieces: list[np.ndarray] = []
    spoken: list[str] = []
    rate, romanized = 0, False
    for sentence in split_sentences(text, sentence_chars):
        wave, rate, said = say(sentence)
        if wave is None or wave.size == 0:
            continue
        if pieces:
            pieces.append(np.zeros(int(pause_seconds * rate), dtype=np.float32))
        pieces.append(wave)
        spoken.append(said)
        romanized |= said != sentence
    if not pieces:
        name = "Korean" if language == "ko" else "English"
        raise speech_refused(f"the {name} voice found nothing it can pronounce in this text", "unpronounceable")
    audio = np.clip(np.concatenate(pieces), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return Speech(buf.getvalue(), rate, len(audio) / rate, language, " ".join(spoken), romanized, len(spoken),
                  model_id)


class Voice:
    """One loaded MMS-TTS (VITS) voice. Thread-safe: one utterance at a time per voice."""

    def __init__(self, model: Any, tokenizer: Any, report: LoadReport, language: str, *,
                 max_chars: int = 4000, sentence_chars: int = 250, pause_seconds: float = 0.25):
        self.model, self.tokenizer, self.report, self.language = model, tokenizer, report, language
        self.max_chars, self.sentence_chars, self.pause_seconds = max_chars, sentence_chars, pause_seconds
        self._uroman: Any = None
        self._lock = threading.Lock()
        # Each sentence is synthesized inside spaces.GPU on ZeroGPU (engine/serving/zerogpu.py).
        self._gpu_synthesize = zerogpu.on_gpu(self._synthesize, lambda text: zerogpu.GpuSeconds().text(len(text)))

    @classmethod
    def from_source(cls, source: ModelSource, language: str, notice: str = "", **kwargs: Any) -> "Voice":
        from transformers import VitsModel, VitsTokenizer

        started = time.perf_counter()
        device, _ = _device_and_dtype()
        tokenizer = VitsTokenizer.from_pretrained(str(source.folder))
        # VITS runs in fp32 even on a GPU: its flows and HiFi-GAN decoder are unstable in fp16, and it is small.
        model = VitsModel.from_pretrained(str(source.folder), dtype=torch.float32, use_safetensors=True,
                                          trust_remote_code=False,
                                          device_map={"": device} if device != "cpu" else None).eval()
        report = _report(model, source, notice, time.perf_counter() - started)
        report.rung = "fp32" if device != "cpu" else "cpu-float32"
        return cls(model, tokenizer, report, language, **kwargs)

    @classmethod
    def load(cls, cfg: EngineConfig, language: str, *, demo: bool = False, **kwargs: Any) -> "Voice | EspeakVoice":
        """engine.tts_model_ko or engine.tts_model_en. On --demo, or when that model cannot be had,
        engine.demo_speech decides: espeak-ng, a real offline voice ("offline"), or a tiny random VITS ("tiny")."""
        from engine.loading.demo.speech import demo_tts_model
        from engine.media.espeak import EspeakVoice

        if language not in ("ko", "en"):
            raise SpeechError(f"no voice for language {language!r}; use ko or en")
        model_id = cfg.tts_model_ko if language == "ko" else cfg.tts_model_en
        candidates: list[Candidate] = [(model_id, lambda why: cls.from_source(
            resolve_source(model_id), language, "", **kwargs))] if not demo else []
        if cfg.demo_speech == "offline":
            candidates.append(("espeak-ng", lambda why: EspeakVoice.load(
                language, _instead(why, "speaking with espeak-ng (offline)"))))
        candidates.append(("the demo voice", lambda why: cls.from_source(
            ModelSource(f"demo:mms-tts-{language}-tiny", demo_tts_model(language), True), language,
            _instead(why, "running a demo model", DEMO_TTS_NOTICE), **kwargs)))
        return _first_that_loads(candidates, strict=not demo and not cfg.demo_fallback)

    @property
    def sample_rate(self) -> int:
        return int(self.model.config.sampling_rate)

    def memory_bytes(self) -> int:
        gpu, cpu = model_bytes(self.model)
        return gpu or cpu

    def close(self) -> None:
        self.model, self._uroman = None, None

    def romanize(self, text: str) -> tuple[str, bool]:
        """(text the tokenizer can read, whether uroman ran). Only for tokenizers that ask for it (is_uroman)."""
        if not getattr(self.tokenizer, "is_uroman", False) or text.isascii():
            return text, False
        if self._uroman is None:
            import uroman

            self._uroman = uroman.Uroman()
        lcode = getattr(self.tokenizer, "language", None)
        roman = self._uroman.romanize_string(text, lcode=lcode)
        # What uroman leaves non-ASCII (emoji, rare symbols) would make VitsTokenizer build its own Uroman.
        return "".join(c for c in roman if c.isascii()), True

    def speak(self, text: str) -> Speech:
        """Text -> 16-bit PCM WAV, sentence by sentence with a short pause between them."""
        text = text_to_speak(text, self.max_chars)
        with self._lock:
            if self.model is None:
                raise speech_refused("the voice was unloaded; try again", "unloaded")
            return speak_in_sentences(text, self._say, language=self.language, model_id=self.report.model_id,
                                      sentence_chars=self.sentence_chars, pause_seconds=self.pause_seconds)

    def _say(self, sentence: str) -> tuple[np.ndarray | None, int, str]:
        prepared, _ = self.romanize(sentence)
        wave, failure = attempt(self._gpu_synthesize, prepared)
        if failure is not None:
            raise speech_refused(f"ran out of memory while speaking ({failure}); the voice is still loaded: "
                                 "try a shorter text or again when other models are idle", "oom")
        return wave, self.sample_rate, prepared

    def _synthesize(self, text: str) -> np.ndarray | None:
        enc = self.tokenizer(text, return_tensors="pt")
        if enc["input_ids"].shape[-1] == 0 or not (enc["input_ids"] != self.tokenizer.pad_token_id).any():
            return None  # nothing in the voice's alphabet (punctuation only, or another script)
        enc = {k: v.to(self.model.device) for k, v in enc.items()}
        with torch.inference_mode():
            out = self.model(**enc)
        length = int(out.sequence_lengths[0])
        return out.waveform[0, :length].float().cpu().numpy()


def speech_model_ids(cfg: EngineConfig) -> dict[str, str]:
    """Which configured model each speech role uses on this machine (for /health and the Models tab)."""
    stt = cfg.stt_model if torch.cuda.is_available() else cfg.stt_model_cpu
    return {"stt": stt, "tts-ko": cfg.tts_model_ko, "tts-en": cfg.tts_model_en}


def speech_plan(cfg: EngineConfig, *, demo: bool) -> dict[str, tuple[str, bool]]:
    """Role -> (model that will answer, whether its weights are real), known before anything loads: the
    configured models, or on --demo what engine.demo_speech picks (a fallback at load time says so itself)."""
    if not demo:
        return {role: (model_id, True) for role, model_id in speech_model_ids(cfg).items()}
    if cfg.demo_speech == "tiny":
        return {"stt": ("demo:whisper-tiny", False), "tts-ko": ("demo:mms-tts-ko-tiny", False),
                "tts-en": ("demo:mms-tts-en-tiny", False)}
    from engine.loading.demo.whisper_base import OFFLINE_STT_ID
    from engine.media.espeak import VOICES

    return {"stt": (OFFLINE_STT_ID, True), "tts-ko": (f"espeak-ng:{VOICES['ko']}", True),
            "tts-en": (f"espeak-ng:{VOICES['en']}", True)}


def speech_status(plan: dict[str, tuple[str, bool]], rows: list[dict]) -> dict[str, dict]:
    """For /health and the Voice tab: per speech role the model answering (the loaded one's report when it has
    loaded, else the plan), whether its weights are real, and whether it is loaded."""
    out = {}
    loaded = {row["name"]: row for row in rows if row.get("name") in plan}
    for role, (model_id, real) in plan.items():
        row = loaded.get(role, {})
        report = str(row.get("report") or "")
        if row.get("loaded") and " at " in report:
            model_id, real = report.split(" at ", 1)[0], not row.get("demo")
        out[role] = {"model": model_id, "real_weights": bool(real), "loaded": bool(row.get("loaded"))}
    return out


__all__ = ["NO_SPEECH", "MediaError", "Speech", "SpeechError", "SpeechToText", "Transcript", "Voice",
           "normalize_language", "speak_in_sentences", "speech_model_ids", "speech_plan", "speech_refused",
           "speech_status", "split_sentences", "text_language"]
