"""Named Gradio endpoints for gradio_client: chat, describe_image, transcribe, speak, and sessions.

The owner of a session call is the logged-in user when auth is on (the token is then ignored),
else the caller's `owner_token` (16-200 of A-Z a-z 0-9 - _; e.g. secrets.token_hex(16)), the same
key the browser shows under "Your private key".
"""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import gradio as gr
from gradio.data_classes import FileData
from gradio.utils import get_upload_folder

from engine.requests import Sampling
from ui.errors import Refusal, shown_to_user
from ui.i18n import lang_of
from ui.models import SwitchEndpoint
from ui.page import Shared
from ui.voice import speakable, spoken_language, write_wav

MAX_LIST = 200


def uploaded(file: Any, what: str) -> str:
    """The server path of a file the client uploaded; anything else is refused (no reading server files).
    The second check: api/guard.py has already turned a file field that names no upload into null (before
    Gradio could move it and name the path in its error); this holds for any way a value reaches us."""
    path = file.get("path") if isinstance(file, dict) else getattr(file, "path", None) if file else None
    refusal = Refusal("need_image" if what == "image" else "need_audio")   # never names the path it was given
    if not path or not isinstance(path, str) or "\x00" in path:
        raise refusal
    try:
        resolved = Path(path).resolve()
        if not (resolved.is_relative_to(Path(get_upload_folder()).resolve()) and resolved.is_file()):
            raise refusal
    except (OSError, ValueError, RuntimeError):
        raise refusal from None
    return str(resolved)


def public_session(session: dict) -> dict:
    """A session as the API returns it: everything but the internal owner id."""
    return {k: v for k, v in session.items() if k != "owner"}



def growing_text(stream) -> Iterator[str]:
    """The reply so far after each piece (what gradio_client streams); always at least one value."""
    text = ""
    try:
        for piece in stream:
            text += piece
            yield text
    finally:
        stream.close()
    if not text:
        yield text

class Endpoints:
    def __init__(self, shared: Shared):
        self.shared = shared

    def _owner(self, request: gr.Request, owner_token: str) -> str:
        return self.shared.owners.resolve(request, owner_token)

    def chat(self, message: str, session_id: str = "", owner_token: str = "", system_prompt: str = "",
             max_new_tokens: int | None = None, temperature: float | None = None, adapter: str = "",
             top_p: float | None = None, seed: int | None = None, presence_penalty: float | None = None,
             frequency_penalty: float | None = None, top_k: int | None = None,
             repetition_penalty: float | None = None,
             request: gr.Request = None) -> Iterator[str]:  # type: ignore[assignment]
        """Stream the growing reply to `message`. With session_id (and an owner), the turn is saved in that chat.
        `adapter`: a LoRA adapter made for the loaded model (its name, as /v1/models lists it); "" is the base.
        The sampling options (None: the chat's or the configured default) hold for this reply only."""
        lang = lang_of(request)
        convo, services = self.shared.convo, self.shared.services
        cancel = threading.Event()
        asked = Sampling(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed,
                         presence_penalty=presence_penalty, frequency_penalty=frequency_penalty, top_k=top_k,
                         repetition_penalty=repetition_penalty)
        with shown_to_user(lang):
            if not (message or "").strip():
                raise Refusal("empty")
            adapter_name = (adapter or "").strip() or None
            if session_id:
                owner = self._owner(request, owner_token)
                settings = {"system_prompt": system_prompt} if system_prompt else None
                if adapter_name:
                    settings = {**(settings or {}), "adapter": services.check_adapter(adapter_name).name}
                services.chat.check_sampling(asked)     # refused before the message is saved
                convo.add_user(owner, session_id, message, settings=settings)
                job = convo.start_reply(owner, session_id, cancel, asked=asked)
            else:
                settings = {**services.default_settings(), "adapter": adapter_name}
                system = system_prompt or settings["system_prompt"]
                msgs = ([{"role": "system", "content": system}] if system.strip() else []) + \
                    [{"role": "user", "content": message}]
                job = None
                gen = services.reply(msgs, settings, cancel, asked=asked)
        if job is None:
            yield from growing_text(gen.stream)
            if gen.stream.stats.completion_tokens:
                services.metrics.record(gen.model, gen.stream.stats)
            return
        try:
            for text in job:
                yield text
        except GeneratorExit:
            job.close()
            job.save()
            raise
        with shown_to_user(lang):
            job.save()
        if job.error is not None:
            with shown_to_user(lang):
                raise job.error

    def describe_image(self, image: FileData, question: str = "", request: gr.Request = None) -> Iterator[str]:  # type: ignore[assignment]
        """Stream the image model's answer to `question` about `image` (handle_file("photo.jpg"))."""
        lang = lang_of(request)
        services = self.shared.services
        with shown_to_user(lang):
            path = uploaded(image, "image")
            gen = services.reply([{"role": "user", "content": question or ""}], services.default_settings(),
                                 threading.Event(), image=path)
        yield from growing_text(gen.stream)

    def transcribe(self, audio: FileData, language: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Speech -> text. Returns {text, language, no_speech, message, seconds_audio}."""
        with shown_to_user(lang_of(request)):
            tr = self.shared.services.transcribe(uploaded(audio, "audio"), language or None)
            return {"text": tr.text, "language": tr.language, "no_speech": tr.no_speech, "message": tr.message,
                    "seconds_audio": tr.seconds_audio}

    def speak(self, text: str, language: str = "auto", request: gr.Request = None) -> FileData:  # type: ignore[assignment]
        """Text -> a WAV file (language: auto, ko or en)."""
        with shown_to_user(lang_of(request)):
            if not (text or "").strip():
                raise Refusal("empty")
            text = speakable(text)
            speech = self.shared.services.speak(text, spoken_language(language or "auto", text))
            return FileData(path=write_wav(speech.wav), mime_type="audio/wav", orig_name="speech.wav")

    def list_sessions(self, owner_token: str = "", query: str = "", limit: int = 50,
                      request: gr.Request = None) -> list[dict]:  # type: ignore[assignment]
        """The owner's chats, newest first; with `query`, only those whose title or messages contain it."""
        with shown_to_user(lang_of(request)):
            owner = self._owner(request, owner_token)
            limit = max(1, min(int(limit or 50), MAX_LIST))
            store = self.shared.services.store
            if (query or "").strip():
                return store.search(owner, query, limit=limit)
            return store.list(owner, limit=limit)

    def new_session(self, title: str = "", owner_token: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """Start an empty chat; returns it (use its id as chat(session_id=...))."""
        with shown_to_user(lang_of(request)):
            return public_session(self.shared.convo.create(self._owner(request, owner_token), title or None))

    def get_session(self, session_id: str, owner_token: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        """One chat with all its messages, settings and each reply's provenance."""
        with shown_to_user(lang_of(request)):
            return public_session(self.shared.services.store.get(self._owner(request, owner_token), session_id))

    def rename_session(self, session_id: str, title: str, owner_token: str = "",
                       request: gr.Request = None) -> dict:  # type: ignore[assignment]
        with shown_to_user(lang_of(request)):
            session = self.shared.services.store.rename(self._owner(request, owner_token), session_id, title)
            return public_session(session)

    def delete_session(self, session_id: str, owner_token: str = "", request: gr.Request = None) -> dict:  # type: ignore[assignment]
        with shown_to_user(lang_of(request)):
            self.shared.services.store.delete(self._owner(request, owner_token), session_id)
            return {"deleted": session_id}


def register(shared: Shared) -> None:
    """Call inside the Blocks context: one gr.api per named endpoint."""
    e = Endpoints(shared)
    gr.api(e.chat, api_name="chat", concurrency_id="generate")
    gr.api(e.describe_image, api_name="describe_image", concurrency_id="generate")
    gr.api(e.transcribe, api_name="transcribe", concurrency_id="speech", concurrency_limit=1)
    gr.api(e.speak, api_name="speak", concurrency_id="speech", concurrency_limit=1)
    for fn in (e.list_sessions, e.new_session, e.get_session, e.rename_session, e.delete_session):
        gr.api(fn, api_name=fn.__name__, concurrency_limit=None)
    # Load another chat model (the Models tab's switch, for scripts); one switch at a time, as in the tab.
    gr.api(SwitchEndpoint(shared).switch_model, api_name="switch_model", concurrency_id="models", concurrency_limit=1)
