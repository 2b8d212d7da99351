"""Every failure a user can cause or meet becomes one clear sentence in a Gradio error toast."""
from __future__ import annotations

import html
import re
from contextlib import contextmanager
from typing import Any, Iterator

import gradio as gr

from engine.errors import EngineError
from engine.media.documents import DOCUMENT_CODES
from sessions import ImportRefused, InvalidSessionData, PresetError, SessionError, SessionNotFound, StaleVersion


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


# Refusals that are normal situations, not faults: shown as an info toast (gr.Info), never a red one.
NOTICE_KEYS = frozenset({"reply_running", "compare_reply_running"})


class Refusal(Exception):
    """A request the UI turns down; `key` names the sentence in ui.i18n (SAY_EN/SAY_KO)."""

    def __init__(self, key: str, **values: Any):
        super().__init__(key)
        self.key, self.values = key, values


# An engine error's code -> the sentence (ui.i18n key) a person reads; codes not listed fall back by status.
MESSAGE_KEYS: dict[str, str] = {
    "server_busy": "busy", "model_not_available": "unavailable",
    "invalid_media": "media", "invalid_image": "media", "invalid_audio": "media", "invalid_input": "speech",
    "generation_failed": "generation", "out_of_memory": "generation", "remote_server_error": "generation",
    "out_of_range": "bad_number", "message_too_long": "too_long",
    "adapter_not_found": "adapter_unknown", "adapter_base_mismatch": "adapter_other_base",
    **{code: code for code in DOCUMENT_CODES},     # a document refused: one sentence per reason
    "model_switching": "switching", "model_switch_failed": "switch_failed",
}


# The sentence for whole numbers, where the error says the value must be one (values["integer"]).
INTEGER_KEYS: dict[str, str] = {"bad_number": "bad_integer"}
DETAIL_KEYS = ("busy", "unavailable", "media", "speech", "generation")   # sentences that need no values


def engine_message(exc: EngineError, lang: str) -> str:
    """The sentence for an engine error, chosen by its code (and its status when the code has no own key)."""
    from ui.i18n import say

    detail = plain_detail(str(exc)).rstrip(".")
    key = MESSAGE_KEYS.get(exc.code)
    if key is not None and exc.values is not None:   # the error carries what its sentence needs
        key = exc.values.get("sentence", key)        # and, where one code has several cases, which sentence
        if exc.values.get("integer"):
            key = INTEGER_KEYS.get(key, key)
        # a value may quote what a library said (a model switch's reason): no server path, no repr
        return say(lang, key, **{k: plain_detail(v) if isinstance(v, str) else v for k, v in exc.values.items()})
    if key not in DETAIL_KEYS:
        key = "prompt" if exc.status < 500 else "generation"
    if key == "busy":
        return say(lang, "busy", seconds=exc.retry_after or 2)
    if key == "unavailable":
        what = getattr(exc, "what", "") or ("chat" if lang != "ko" else "채팅")
        return say(lang, "unavailable", what=what, detail=detail)
    if key == "generation":
        return say(lang, "generation", detail=detail.removeprefix("generation failed: "))
    return say(lang, key, detail=detail)


def message_for(exc: BaseException, lang: str) -> str | None:
    """The user-facing sentence for a known failure, or None for a bug (which Gradio reports as such)."""
    from ui.i18n import say

    if isinstance(exc, Refusal):
        return say(lang, exc.key, **exc.values)
    if isinstance(exc, EngineError):
        return engine_message(exc, lang)
    if isinstance(exc, StaleVersion):
        return say(lang, "stale")
    if isinstance(exc, SessionNotFound):
        return say(lang, "no_session")
    if isinstance(exc, ImportRefused):      # the store names the case; the sentence is ours (EN/KO)
        return say(lang, f"import_{exc.reason}", **exc.values)
    if isinstance(exc, PresetError):
        return say(lang, f"preset_{exc.reason}", **exc.values)
    if isinstance(exc, InvalidSessionData):
        return str(exc)
    if isinstance(exc, SessionError):
        return say(lang, "session_store", detail=plain_detail(str(exc)).rstrip("."))
    return None


def refusal_line(exc: Exception, lang: str) -> str:
    """A known failure as a result line under a control ("⚠️ " and its sentence, HTML-escaped); a bug is
    raised again, for Gradio to report as one."""
    text = message_for(exc, lang)
    if text is None:
        raise exc
    return f"⚠️ {html.escape(text, quote=False)}"


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
        if isinstance(exc, Refusal) and exc.key in NOTICE_KEYS:
            # A normal situation: an info toast, and the event still stops (what follows it must not run).
            gr.Info(html.escape(text), title="알림" if lang == "ko" else "Please wait")
            raise gr.Error(html.escape(text), visible=False, print_exception=False) from None
        title = "오류" if lang == "ko" else "Error"
        raise gr.Error(html.escape(text), title=title, print_exception=False) from None
