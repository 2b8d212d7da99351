"""Every failure a user can cause or meet becomes one clear sentence in a Gradio error toast."""
from __future__ import annotations

import html
import re
from contextlib import contextmanager
from typing import Any, Iterator

import gradio as gr

from engine.generation import GenerationError
from engine.prompt import PromptError
from sessions import InvalidSessionData, SessionError, SessionNotFound, StaleVersion


# What a library may put in its message that a user must never see: object reprs and server file paths.
_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_CLASS = re.compile(r"\s*\((?:\w+\.)*\w+(?:Error|Exception)\)")    # "(LocalEntryNotFoundError)"
_PATH = re.compile(r"(?<![\w/])(?:/[\w.\-]+){2,}/?")


def plain_detail(text: str) -> str:
    """A library's error text without Python reprs or file paths (replaced by "the file")."""
    text = _REPR.sub("the file", text)
    text = _PATH.sub("the file", text)
    text = _CLASS.sub("", text)
    return re.sub(r"\s{2,}", " ", text).strip()


class Refusal(Exception):
    """A request the UI turns down; `key` names the sentence in ui.i18n (SAY_EN/SAY_KO)."""

    def __init__(self, key: str, **values: Any):
        super().__init__(key)
        self.key, self.values = key, values


class ModelUnavailable(RuntimeError):
    """An optional model (image, speech) is missing or failed to load; str(exc) says why."""

    def __init__(self, what: str, detail: str):
        super().__init__(f"{what}: {detail}")
        self.what, self.detail = what, detail


def _media_error() -> type[Exception]:
    try:
        from engine.media import MediaError
    except ImportError:  # pragma: no cover - engine/media.py ships with issue 5
        return ValueError
    return MediaError


def message_for(exc: BaseException, lang: str) -> str | None:
    """The user-facing sentence for a known failure, or None for a bug (which Gradio reports as such)."""
    from ui.i18n import say

    detail = plain_detail(str(exc)).rstrip(".")
    if isinstance(exc, Refusal):
        return say(lang, exc.key, **exc.values)
    if isinstance(exc, ModelUnavailable):
        return say(lang, "unavailable", what=exc.what, detail=exc.detail.rstrip("."))
    if type(exc).__name__ == "EngineBusy":
        return say(lang, "busy", seconds=getattr(exc, "retry_after", 2))
    if isinstance(exc, PromptError):
        return say(lang, "prompt", detail=detail)
    if isinstance(exc, GenerationError):
        return say(lang, "generation", detail=detail.removeprefix("generation failed: "))
    if isinstance(exc, StaleVersion):
        return say(lang, "stale")
    if isinstance(exc, SessionNotFound):
        return say(lang, "no_session")
    if isinstance(exc, InvalidSessionData):
        return str(exc)
    if isinstance(exc, SessionError):
        return say(lang, "session_store", detail=detail)
    if isinstance(exc, _media_error()):
        return say(lang, "media", detail=detail)
    if type(exc).__name__ == "SpeechError":
        return say(lang, "speech", detail=detail)
    return None


@contextmanager
def shown_to_user(lang: str) -> Iterator[None]:
    """Re-raise known failures as gr.Error (a toast with one clear sentence); let bugs through."""
    try:
        yield
    except gr.Error:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped or re-raised unchanged
        text = message_for(exc, lang)
        if text is None:
            raise
        title = "오류" if lang == "ko" else "Error"
        raise gr.Error(html.escape(text), title=title, print_exception=False) from None
