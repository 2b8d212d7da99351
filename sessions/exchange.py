"""Export sessions as JSON (to re-import) or Markdown (to read), and parse imports.

Parsing is separate from storing: this module turns an import file into
validated candidate sessions plus a list of what was skipped and why; the
store then gives fresh ids where needed and writes them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from .errors import InvalidSessionData
from .versions import all_messages, count
from .model import (
    DEFAULT_TITLE,
    SCHEMA_VERSION,
    SESSION_ID_RE,
    Limits,
    clean_message,
    clean_settings,
    clean_title,
    is_number,
)

EXPORT_FORMAT = "chat-sessions"
IMPORTABLE_SCHEMAS = (2, SCHEMA_VERSION)   # a schema-2 export is a schema-3 one without versions of messages


class ImportRefused(InvalidSessionData):
    """The import file as a whole is unusable. `reason` names the case so the UI picks its sentence (EN/KO),
    `values` fill it. Reasons: not_text, too_large, not_json, foreign, schema, empty."""

    def __init__(self, reason: str, message: str, **values: object) -> None:
        super().__init__(message)
        self.reason, self.values = reason, values


class ChatSkipped(InvalidSessionData):
    """One chat of an import file is unusable (the others go on). `reason` names the case so the UI picks its
    sentence (EN/KO), `values` fill it. Reasons: not_object, no_messages, too_many_messages."""

    def __init__(self, reason: str, message: str, **values: object) -> None:
        super().__init__(message)
        self.reason, self.values = reason, values


@dataclass
class ImportReport:
    """What an import did: ids written, sessions skipped (index in the file, reason in English), notes.
    `why` gives each skipped index its case and values (ChatSkipped; "invalid" for a message or setting the
    store refused, "storage" for a failed write), so the page can say it in the user's language."""

    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    why: dict[int, tuple[str, dict]] = field(default_factory=dict)

    def skip(self, index: int, exc: Exception, reason: str = "invalid") -> None:
        """Record a chat left out, with the store's English reason and its case for translation."""
        self.skipped.append((index, str(exc).rstrip(".")))
        self.why[index] = (exc.reason, dict(exc.values)) if isinstance(exc, ChatSkipped) else (reason, {})


@dataclass
class Candidate:
    """A validated session from an import file, not yet stored."""

    index: int
    session: dict[str, Any]
    wanted_id: str | None


def export_json(sessions: list[dict[str, Any]]) -> str:
    """A self-describing file; owners are left out (the importer becomes the owner)."""
    payload = {
        "format": EXPORT_FORMAT,
        "schema": SCHEMA_VERSION,
        "exported_at": time.time(),
        "sessions": [{k: v for k, v in s.items() if k not in ("owner", "schema")} for s in sessions],
    }
    return json.dumps(payload, ensure_ascii=False, indent=2)


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(ts))


def _provenance_line(prov: dict[str, Any]) -> str:
    parts = [f"model `{prov.get('model')}`", f"rung `{prov.get('rung')}`"]
    if prov.get("adapter"):
        parts.append(f"adapter `{prov['adapter']}`")
    if is_number(prov.get("tokens_per_second")):
        parts.append(f"{prov['tokens_per_second']:.1f} tokens/s")
    if is_number(prov.get("completion_tokens")):
        parts.append(f"{int(prov['completion_tokens'])} tokens")
    return "> " + " · ".join(parts)


def _transcript(messages: list[dict[str, Any]], quote: str) -> list[str]:
    """Markdown lines of a branch; after a message with versions, the versions not shown, quoted one level deeper."""
    lines: list[str] = []
    for message in messages:
        status = "" if message["status"] == "complete" else f" ({message['status']})"
        shown = f" · version {message['shown'] + 1} of {count(message)}" if "versions" in message else ""
        body = [f"### {message['role'].capitalize()}{status}{shown} · {_when(message['created_at'])}", "",
                message["content"] or "*(no text)*"]
        if message["attachments"]:
            body += ["", "Attachments: " + ", ".join(f"`{ref}`" for ref in message["attachments"])]
        if message.get("provenance"):
            body += ["", _provenance_line(message["provenance"])]
        lines += ["", *(f"{quote}{line}".rstrip() for line in body)]
        every = message.get("versions", [])
        for number, branch in enumerate(every):
            label = number + (1 if number >= message["shown"] else 0) + 1
            lines += ["", f"{quote}> **Version {label} of {count(message)}** (not shown)"]
            lines += _transcript(branch, quote + "> ")
    return lines


def export_markdown(sessions: list[dict[str, Any]]) -> str:
    """A readable transcript; not meant to be imported back."""
    blocks = []
    for session in sessions:
        lines = [
            f"# {session['title']}",
            "",
            f"*Created {_when(session['created_at'])} · updated {_when(session['updated_at'])} · "
            f"{len(session['messages'])} messages*",
        ]
        lines += _transcript(session["messages"], "")
        blocks.append("\n".join(lines))
    return "\n\n---\n\n".join(blocks) + "\n"


def decode_import(data: bytes, limits: Limits) -> str:
    """An uploaded file's bytes as text (UTF-8, a BOM allowed), refused when too large or not text."""
    if len(data) > limits.max_import_bytes:
        raise ImportRefused("too_large", f"The import file is larger than {limits.max_import_bytes} bytes.",
                            limit_mb=max(1, limits.max_import_bytes // (1024 * 1024)))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ImportRefused("not_text", "The import file is not UTF-8 text (expected a JSON export of this app).") \
            from None


def _looks_like_session(item: Any) -> bool:
    return isinstance(item, dict) and "messages" in item


def _session_list(text: str, limits: Limits) -> list[Any]:
    if not isinstance(text, str):
        raise ImportRefused("not_text", f"An import must be text, got {type(text).__name__}.")
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_import_bytes:
        raise ImportRefused("too_large", f"The import file is larger than {limits.max_import_bytes} bytes.",
                            limit_mb=max(1, limits.max_import_bytes // (1024 * 1024)))
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportRefused("not_json", f"The import file is not valid JSON: {exc}.") from exc
    except RecursionError:
        raise ImportRefused("not_json", "The import file is not valid JSON: it is nested too deeply.") from None
    if isinstance(data, list):
        if not data:
            raise ImportRefused("empty", "The import file holds no chats.")
        if not any(_looks_like_session(item) for item in data):   # e.g. another app's list of conversations
            raise ImportRefused("foreign", "The import file holds no sessions (expected an export of this app).")
        return data
    if isinstance(data, dict) and "sessions" in data:
        if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise ImportRefused("foreign", f"The import file has format {str(data.get('format'))[:80]!r}, "
                                f"not {EXPORT_FORMAT!r}.")
        schema = data.get("schema", SCHEMA_VERSION)
        if schema not in IMPORTABLE_SCHEMAS:
            raise ImportRefused("schema", f"The import file has schema {repr(schema)[:20]}; this app imports "
                                f"schema {' or '.join(map(str, IMPORTABLE_SCHEMAS))}.", schema=str(schema)[:20],
                                ours=", ".join(map(str, IMPORTABLE_SCHEMAS)))
        if not isinstance(data["sessions"], list):
            raise ImportRefused("foreign", "The import file's 'sessions' must be a list.")
        if not data["sessions"]:
            raise ImportRefused("empty", "The import file holds no chats.")
        return data["sessions"]
    if _looks_like_session(data):
        return [data]
    raise ImportRefused("foreign", "The import file holds no sessions (expected an export of this app).")


def _candidate(index: int, raw: Any, limits: Limits, now: float) -> Candidate:
    if not isinstance(raw, dict):
        raise ChatSkipped("not_object", f"it is {type(raw).__name__}, not an object")
    title = clean_title(raw.get("title") or DEFAULT_TITLE, limits)
    settings = clean_settings(raw.get("settings"), limits)
    messages_raw = raw.get("messages")
    if not isinstance(messages_raw, list):
        raise ChatSkipped("no_messages", "its 'messages' is missing or not a list")
    if len(messages_raw) > limits.max_messages:
        raise ChatSkipped("too_many_messages", f"it has {len(messages_raw)} messages; the limit is {limits.max_messages}",
                          n=len(messages_raw), limit=limits.max_messages)
    messages = [clean_message(m, limits, now=now, where=f"message {i}") for i, m in enumerate(messages_raw)]
    total = sum(1 for _ in all_messages(messages))
    if total > limits.max_messages:
        raise ChatSkipped("too_many_messages", f"it has {total} messages with their versions; the limit is "
                          f"{limits.max_messages}", n=total, limit=limits.max_messages)
    created = raw.get("created_at") if is_number(raw.get("created_at")) else now
    updated = raw.get("updated_at") if is_number(raw.get("updated_at")) else created
    wanted = raw.get("id")
    session = {
        "title": title,
        "settings": settings,
        "messages": messages,
        "version": 1,
        "created_at": float(created),
        "updated_at": float(max(created, updated)),
    }
    return Candidate(index, session, wanted if isinstance(wanted, str) and SESSION_ID_RE.fullmatch(wanted) else None)


def parse_import(text: str, limits: Limits) -> tuple[list[Candidate], ImportReport]:
    """Validate every session of an import; a bad one is skipped (in the report), never half-imported.

    Raises InvalidSessionData only when the file as a whole is unusable.
    """
    now = time.time()
    candidates, report = [], ImportReport()
    for index, raw in enumerate(_session_list(text, limits)):
        try:
            candidates.append(_candidate(index, raw, limits, now))
        except InvalidSessionData as exc:
            report.skip(index, exc)
    return candidates, report
