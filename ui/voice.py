"""Voice tab: microphone or upload -> transcript (editable) -> reply -> spoken reply."""
from __future__ import annotations

import os
import re
import tempfile
import time
import uuid
from pathlib import Path
from functools import partial
from typing import Any, Iterator

import gradio as gr

from ui.conversation import STREAM_INTERVAL
from ui.chat_format import reply_content
from engine.requests import Sampling
from ui.errors import message_for, shown_to_user
from ui.i18n import lang_of, say, t
from ui.page import Shared
from ui.services import provenance
from engine.media.speech import speech_plan, speech_status

PRIVATE = {"api_visibility": "private"}
HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")
KEEP_WAV_SECONDS = 600
SPOKEN_MAX_TOKENS = 256    # a spoken reply is short: longer ones take minutes to listen to
SPOKEN_MAX_CHARS = 1500

QUIET = {"show_progress": "hidden", **PRIVATE}   # refusals are toasts, never "Error" pills


def spoken_language(choice: str, text: str) -> str:
    """auto: Korean when the reply has Hangul (the Korean voice reads romanised Hangul), else English."""
    if choice in ("ko", "en"):
        return choice
    return "ko" if HANGUL.search(text) else "en"


def speakable(text: str, limit: int = SPOKEN_MAX_CHARS) -> str:
    """At most `limit` characters, cut after the last sentence (or word) that fits."""
    text = text.strip()
    if len(text) <= limit:
        return text
    head = text[:limit]
    cut = max(head.rfind(". "), head.rfind("? "), head.rfind("! "), head.rfind("다. "), head.rfind("\n"))
    return head[: cut + 1] if cut > limit // 2 else head.rsplit(" ", 1)[0]


def write_wav(data: bytes) -> str:
    """A temp WAV Gradio can serve; files older than ten minutes are swept on the way."""
    folder = Path(tempfile.gettempdir()) / "localchat-voice"
    folder.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - KEEP_WAV_SECONDS
    for old in folder.glob("*.wav"):
        try:
            if old.stat().st_mtime < cutoff:
                old.unlink()
        except OSError:
            pass
    path = folder / f"{uuid.uuid4().hex}.wav"
    tmp = path.with_suffix(".part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return str(path)


def speech_models_line(shared: Shared, lang: str) -> str:
    """Which speech models answer on this tab and whether their weights are real (the loaded model's own report
    once it has loaded, else what will load), in the page's language."""
    services = shared.services
    plan = speech_plan(services.cfg.engine, demo=bool(getattr(services.engine.report, "demo", False)))
    status = speech_status(plan, services.model_states())

    def name(role: str) -> str:
        row = status[role]
        return f"`{row['model']}` ({say(lang, 'speech_real' if row['real_weights'] else 'speech_random')})"

    return "🔊 " + say(lang, "speech_models", stt=name("stt"), tts_en=name("tts-en"), tts_ko=name("tts-ko"))


class VoiceHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    def transcribe(self, audio: Any, current: Any, heard: Any, request: gr.Request) -> tuple:
        """Audio -> (transcript box, what was heard). A transcript the user has edited is never replaced:
        they are told to clear it first (the upload itself already transcribed)."""
        lang = lang_of(request)
        if not audio:
            raise gr.Error(say(lang, "need_audio"), print_exception=False)
        if (current or "").strip() and (current or "") != (heard or ""):
            gr.Warning(say(lang, "transcript_edited"))
            return gr.skip(), gr.skip()
        with shown_to_user(lang):
            transcript = self.shared.services.transcribe(audio)
        if transcript.no_speech:
            gr.Warning(say(lang, "no_speech"))
            return "", ""
        return transcript.text, transcript.text

    def reply(self, transcript: Any, request: gr.Request) -> Iterator[tuple]:
        """One spoken turn answered by the chat model with the default system prompt and settings."""
        lang = lang_of(request)
        text = (transcript or "").strip()
        if not text:
            raise gr.Error(say(lang, "empty"), print_exception=False)
        services = self.shared.services
        key = (request.session_hash or "") + ":voice"
        cancel = self.shared.convo.cancels.start(key)
        try:
            yield say(lang, "working"), gr.skip()
            with shown_to_user(lang):
                settings = services.default_settings()
                system = settings["system_prompt"]
                messages = ([{"role": "system", "content": system}] if system.strip() else []) + \
                    [{"role": "user", "content": text}]
                spoken = Sampling(max_new_tokens=min(int(settings["max_new_tokens"]), SPOKEN_MAX_TOKENS))
                gen = services.reply(messages, settings, cancel, asked=spoken)
            answer, last, error = "", 0.0, None
            try:
                for piece in gen.stream:
                    answer += piece
                    if time.monotonic() - last >= STREAM_INTERVAL:
                        last = time.monotonic()
                        yield answer, gr.skip()
            except Exception as exc:  # noqa: BLE001 - shown below; the partial answer is kept
                error = exc
            stats = gen.stream.stats
            if stats.completion_tokens:
                services.metrics.record(gen.model, stats)
            status = "error" if error else ("stopped" if stats.finish_reason == "cancelled" else "complete")
            yield reply_content(answer, provenance(gen, stats), status, partial(say, lang)), answer
            if error is not None:
                raise gr.Error(message_for(error, lang) or str(error), print_exception=False)
        finally:
            self.shared.convo.cancels.finish(key, cancel)

    def speak(self, answer: Any, language: Any, autoplay: Any, request: gr.Request) -> Any:
        lang = lang_of(request)
        text = speakable(answer or "")
        if not text:
            return gr.Audio(value=None)
        with shown_to_user(lang):
            speech = self.shared.services.speak(text, spoken_language(str(language or "auto"), text))
        return gr.Audio(value=write_wav(speech.wav), autoplay=bool(autoplay))


def build_and_wire(shared: Shared) -> None:
    h = VoiceHandlers(shared)
    gr.Markdown(t("voice.https_note"), elem_id="voice-https-note")

    def models_line(request: gr.Request) -> str:
        return speech_models_line(shared, lang_of(request))

    models = gr.Markdown("", elem_id="voice-models")
    gr.on(None, models_line, None, models, **QUIET)   # no trigger: on page load; again after each use below
    with gr.Row():
        with gr.Column():
            audio = gr.Audio(label=t("voice.input"), sources=["microphone", "upload"], type="filepath",
                             elem_id="voice-input")
            transcribe = gr.Button(t("voice.transcribe"), elem_id="voice-transcribe")
            transcript = gr.Textbox(label=t("voice.transcript"), lines=3, elem_id="voice-transcript")
            with gr.Row():
                reply = gr.Button(t("voice.reply"), variant="primary", elem_id="voice-reply")
                language = gr.Radio(choices=[(t("voice.lang_auto"), "auto"), ("한국어", "ko"), ("English", "en")], value="auto",
                                    label=t("voice.language"), elem_id="voice-language")
        with gr.Column():
            gr.Markdown(t("voice.answer"), elem_id="voice-answer-title", elem_classes=["answer-title"])  # Markdown shows no label
            answer = gr.Markdown(label=t("voice.answer"), elem_id="voice-answer", min_height=120, container=True,
                                 show_label=True)
            autoplay = gr.Checkbox(value=True, label=t("voice.autoplay"), elem_id="voice-autoplay")
            spoken = gr.Audio(label=t("voice.spoken"), interactive=False, autoplay=True, elem_id="voice-output")
    answer_text = gr.State("")
    heard = gr.State("")        # the last machine transcript, to tell the user's edits from it
    for trigger in (transcribe.click, audio.stop_recording, audio.upload):
        trigger(h.transcribe, [audio, transcript, heard], [transcript, heard], **QUIET) \
            .then(models_line, None, models, **QUIET)
    for trigger in (reply.click, transcript.submit):
        trigger(h.reply, transcript, [answer, answer_text], concurrency_id="generate", **QUIET) \
            .success(h.speak, [answer_text, language, autoplay], spoken, **QUIET) \
            .then(models_line, None, models, **QUIET)
