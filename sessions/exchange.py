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


@dataclass
class ImportReport:
    """What an import did: ids written, sessions skipped (index in the file, reason), notes."""

    imported: list[str] = field(default_factory=list)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


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
        for message in session["messages"]:
            status = "" if message["status"] == "complete" else f" ({message['status']})"
            lines += ["", f"### {message['role'].capitalize()}{status} · {_when(message['created_at'])}", ""]
            lines.append(message["content"] or "*(no text)*")
            if message["attachments"]:
                lines += ["", "Attachments: " + ", ".join(f"`{ref}`" for ref in message["attachments"])]
            if message.get("provenance"):
                lines += ["", _provenance_line(message["provenance"])]
        blocks.append("\n".join(lines))
    return "\n\n---\n\n".join(blocks) + "\n"


def _session_list(text: str, limits: Limits) -> list[Any]:
    if not isinstance(text, str):
        raise InvalidSessionData(f"An import must be text, got {type(text).__name__}.")
    if len(text.encode("utf-8", "surrogatepass")) > limits.max_import_bytes:
        raise InvalidSessionData(f"The import file is larger than {limits.max_import_bytes} bytes.")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSessionData(f"The import file is not valid JSON: {exc}.") from exc
    if isinstance(data, list):
        return data
    if isinstance(data, dict) and "sessions" in data:
        if data.get("format", EXPORT_FORMAT) != EXPORT_FORMAT:
            raise InvalidSessionData(f"The import file has format {data.get('format')!r}, not {EXPORT_FORMAT!r}.")
        schema = data.get("schema", SCHEMA_VERSION)
        if schema != SCHEMA_VERSION:
            raise InvalidSessionData(
                f"The import file has schema {schema!r}; this app imports schema {SCHEMA_VERSION}."
            )
        if not isinstance(data["sessions"], list):
            raise InvalidSessionData("The import file's 'sessions' must be a list.")
        return data["sessions"]
    if isinstance(data, dict) and "messages" in data:
        return [data]
    raise InvalidSessionData("The import file holds no sessions (expected an export of this app).")


def _candidate(index: int, raw: Any, limits: Limits, now: float) -> Candidate:
    if not isinstance(raw, dict):
        raise InvalidSessionData(f"it is {type(raw).__name__}, not an object")
    title = clean_title(raw.get("title") or DEFAULT_TITLE, limits)
    settings = clean_settings(raw.get("settings"), limits)
    messages_raw = raw.get("messages")
    if not isinstance(messages_raw, list):
        raise InvalidSessionData("its 'messages' is missing or not a list")
    if len(messages_raw) > limits.max_messages:
        raise InvalidSessionData(f"it has {len(messages_raw)} messages; the limit is {limits.max_messages}")
    messages = [clean_message(m, limits, now=now, where=f"message {i}") for i, m in enumerate(messages_raw)]
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


def parse_import(text: str, limits: Limits) -> tuple[list[Candidate], list[tuple[int, str]]]:
    """Validate every session of an import; a bad one is skipped, never half-imported.

    Raises InvalidSessionData only when the file as a whole is unusable.
    """
    now = time.time()
    candidates, skipped = [], []
    for index, raw in enumerate(_session_list(text, limits)):
        try:
            candidates.append(_candidate(index, raw, limits, now))
        except InvalidSessionData as exc:
            skipped.append((index, str(exc).rstrip(".")))
    return candidates, skipped
