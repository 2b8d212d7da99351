"""Chat operations on stored sessions, shared by the Chat tab, the Image tab and the API endpoints.

The store is the source of truth: a user message is saved before the model starts, the reply is
saved when it ends (also when stopped, failed or abandoned), so a reload or restart loses nothing.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Iterator

from engine.errors import GenerationError
from sessions import SessionNotFound, StaleVersion
from sessions.model import DEFAULT_TITLE
from ui.chat_format import (continuable, context_sha256, engine_messages, last_user_index, settings_from,
                            short_title, turns_in)
from ui.documents import attach_document, card_reader, is_document_name, is_document_ref
from ui.errors import Refusal
from engine.requests import Reply, Sampling
from ui.services import Services, continued_provenance, provenance

STREAM_INTERVAL = 0.05  # seconds between UI updates while streaming


class _Held(threading.Event):
    """The mark `CancelBoard.hold` leaves: busy, though no reply runs yet."""


class CancelBoard:
    """Stop buttons find the running reply of their page: one threading.Event per page (session hash)."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self, key: str) -> threading.Event:
        """The event of a reply that begins now. A Stop pressed while its message waited (on the `hold`) is
        kept: the reply begins stopped and ends at once (an ended reply's event, set by the engine, is not)."""
        event = threading.Event()
        with self._lock:
            waiting = self._events.get(key)
            if isinstance(waiting, _Held) and waiting.is_set():
                event.set()
            self._events[key] = event
        return event

    def running(self, key: str) -> bool:
        """A reply (or a message about to be answered) is under way for this page."""
        with self._lock:
            return key in self._events

    def stop(self, key: str) -> bool:
        with self._lock:
            event = self._events.get(key)
        if event is None:
            return False
        event.set()
        return True

    def hold(self, key: str) -> None:
        """A message was saved and its reply is about to start: the page counts as busy until then."""
        with self._lock:
            self._events[key] = _Held()

    def release(self, key: str) -> bool:
        """Drop a `hold` whose reply never started (queue full, refused); True when nothing runs for the page."""
        with self._lock:
            if isinstance(self._events.get(key), _Held):
                del self._events[key]
            return key not in self._events

    def finish(self, key: str, event: threading.Event) -> None:
        with self._lock:
            if self._events.get(key) is event:
                del self._events[key]


class ReplyJob:
    """One reply being generated: iterate for the growing text, then `save()` it into the session.
    Continuing a reply (`extends`: the stored reply cut at the token limit), the text starts as that reply's
    and the saved message is that reply grown: same id, the continuation's provenance over the whole reply."""

    def __init__(self, convo: "Conversation", owner: str, session: dict, gen: Reply, replace: bool,
                 turns: int = 0, extends: dict | None = None, context: str = ""):
        self.convo, self.owner, self.session, self.gen = convo, owner, session, gen
        self.replace = replace or extends is not None
        self.turns = turns      # user turns in the conversation handed to the engine, before trimming
        self.context = context  # context_sha256 of that conversation: which branch the reply answers
        self.extends = extends
        self.text = extends["content"] if extends is not None else ""
        self.error: GenerationError | None = None
        self.finished = False
        self.saved: dict | None = None

    def __iter__(self) -> Iterator[str]:
        last = 0.0
        try:
            for piece in self.gen.stream:
                self.text += piece
                now = time.monotonic()
                if now - last >= STREAM_INTERVAL:
                    last = now
                    yield self.text
        except GenerationError as exc:
            self.error = exc
        self.finished = True
        yield self.text

    def close(self) -> None:
        """Stop generating (the engine frees its slot); used when the page goes away mid-reply."""
        if not self.finished:
            self.gen.stream.close()

    @property
    def status(self) -> str:
        reason = self.gen.stream.stats.finish_reason
        if self.error is not None or reason == "error":
            return "error"
        if reason == "cancelled" or not self.finished:
            return "stopped"
        return "complete"

    def save(self) -> dict:
        """Store the reply (append; for Retry a new version of the last reply, the old one kept; for Continue
        the last reply grown in place); idempotent."""
        if self.saved is not None:
            return self.saved
        stats = self.gen.stream.stats
        made = provenance(self.gen, stats, history_turns=max(1, self.turns - int(stats.dropped_turns)),
                          context_sha256=self.context)
        message = {"role": "assistant", "content": self.text, "status": self.status, "provenance": made}
        if self.extends is not None:
            message.update(id=self.extends["id"], created_at=self.extends["created_at"],
                           provenance=continued_provenance(self.extends.get("provenance"), made))
        store = self.convo.services.store
        messages = self.session["messages"]
        if self.extends is not None:
            self.saved = store.replace_last_assistant(self.owner, self.session["id"], message)
        elif self.replace and messages and messages[-1]["role"] == "assistant":
            self.saved = store.add_version(self.owner, self.session["id"], len(messages) - 1, message)
        else:
            self.saved = store.append(self.owner, self.session["id"], message)
        if stats.completion_tokens:
            self.convo.services.metrics.record(self.gen.model, stats)
        return self.saved


class Conversation:
    def __init__(self, services: Services):
        self.services = services
        self.cancels = CancelBoard()

    @property
    def store(self) -> Any:
        return self.services.store

    # ------------------------------------------------------------ sessions
    def settings(self, session: dict | None) -> dict:
        return settings_from(session["settings"] if session else None, self.services.default_settings())

    def create(self, owner: str, title: str | None = None) -> dict:
        return self.store.create(owner, title, settings=self.services.default_settings())

    def open(self, owner: str, session_id: str | None) -> dict | None:
        """The session, else the owner's newest, else None (a first visit)."""
        if session_id:
            try:
                return self.store.get(owner, session_id)
            except SessionNotFound:
                pass
        newest = self.store.list(owner, limit=1)
        if not newest:
            return None
        try:
            return self.store.get(owner, newest[0]["id"])
        except SessionNotFound:
            return None

    def save_settings(self, owner: str, session: dict, settings: dict) -> dict:
        """Keep a chat's system prompt and sampling settings; a no-op when nothing changed."""
        current = self.settings(session)
        wanted = settings_from(settings, current)
        if wanted == current and all(k in session["settings"] or wanted[k] is None for k in wanted):
            return session
        return self.store.update_settings(owner, session["id"], wanted)

    # ------------------------------------------------------------ messages
    def add_user(self, owner: str, session_id: str | None, text: str, *, image_path: str | None = None,
                 settings: dict | None = None, edit: bool = False, expected_version: int | None = None) -> dict:
        """Save the user's message (after an edit: a new version of the last one; the old text, its reply and
        what followed are kept as a version)."""
        text = text.strip()
        if not text and not image_path:
            raise Refusal("empty")
        self.services.chat.check_text(text)     # the door's own check, before the message is stored
        session = self.store.get(owner, session_id) if session_id else self.create(owner)
        if settings:
            session = self.save_settings(owner, session, settings)
        attachments = ([self._put_image(image_path)] if not is_document_name(image_path) else    # ui/documents.py
                       attach_document(self.services, self.store, image_path, text, self.settings(session))) \
            if image_path else []
        if edit:
            index = last_user_index(session["messages"])
            if index is None:
                raise Refusal("nothing_to_edit")
            return self.replace_user(owner, session, index, text, attachments or None, expected_version)
        if session["title"] == DEFAULT_TITLE and not any(m["role"] == "user" for m in session["messages"]):
            session = self.store.rename(owner, session["id"], short_title(text or "🖼"))
        return self.store.append(owner, session["id"], {"role": "user", "content": text, "attachments": attachments})

    def replace_user(self, owner: str, session: dict, index: int, text: str, attachments: list[str] | None = None,
                     expected_version: int | None = None) -> dict:
        """Edit & resend: the edited message (same images unless new) becomes a new version of message `index`;
        the earlier text with its reply and all that followed is kept as a version (‹ n/m › under the reply)."""
        messages = session["messages"]
        if not 0 <= index < len(messages) or messages[index]["role"] != "user":
            raise Refusal("nothing_to_edit")
        if not text.strip() and not (attachments or messages[index]["attachments"]):
            raise Refusal("empty")
        keep = messages[index]["attachments"] if attachments is None else attachments
        return self.store.add_version(owner, session["id"], index,
                                      {"role": "user", "content": text.strip(), "attachments": keep},
                                      expected_version=expected_version)

    def show_version(self, owner: str, session_id: str, index: int, number: int, head: str | None = None) -> dict:
        """‹ n/m ›: show version `number` of stored message `index`; the next prompt is that branch. `head`: the id
        of the message the click was drawn on; another one there now (changed in another tab) is refused."""
        session = self.store.get(owner, session_id)
        messages = session["messages"]
        if head is not None and not (0 <= index < len(messages) and messages[index]["id"] == head):
            raise Refusal("stale")
        return self.store.show_version(owner, session_id, index, number, expected_version=session["version"])

    def _put_image(self, path: str) -> str:
        checked = self.services.chat.check_image(path)  # the door's own check, before the image is stored
        suffix = {"JPEG": "jpg", "MPO": "jpg"}.get(checked.format, checked.format.lower() or "png")
        return self.store.put_attachment(Path(path).read_bytes(), suffix)

    def start_reply(self, owner: str, session_id: str, cancel: threading.Event, *, replace: bool = False,
                    extend: bool = False, expected_version: int | None = None,
                    asked: Sampling = Sampling()) -> ReplyJob:
        """Begin the reply to the last user message (replace=True: Retry, a new version of the last reply;
        extend=True: Continue, the last reply, cut at the token limit, goes on from where it stopped)."""
        session = self.store.get(owner, session_id)
        if expected_version is not None and (replace or extend) and session["version"] != expected_version:
            raise StaleVersion(session_id, expected_version, session["version"])
        messages = session["messages"]
        if extend and not continuable(messages):
            raise Refusal("nothing_to_continue")
        index = last_user_index(messages)
        if index is None:
            raise Refusal("nothing_to_retry")
        if not (replace or extend) and index != len(messages) - 1:
            raise Refusal("nothing_to_retry")
        settings = self.settings(session)
        history = engine_messages(messages[: index + 1], settings["system_prompt"], card_reader(self.store, owner))
        context = context_sha256(history)
        image_refs = [ref for ref in messages[index].get("attachments", []) if not is_document_ref(ref)]
        image = str(self.store.attachment_path(owner, image_refs[0])) if image_refs else None
        extends = messages[-1] if extend else None
        gen = self.services.reply(history, settings, cancel, asked=asked, image=image,
                                  reply_prefix=extends["content"] if extends is not None else "")
        return ReplyJob(self, owner, session, gen, replace, turns_in(history), extends, context)
