"""The on-disk layout of one session file (schema 3) and its conversions.

One TinyDB file per session, two tables:
  meta      doc 1: schema, id, owner_key, title, settings, version, created_at, updated_at
  messages  one document per message of the branch shown, in doc-id order; a message that heads
            a fork holds the hidden versions inside it (`versions`, `shown`: see versions.py)
Schema 2 was the same without versions (migrate.py only renumbers it).
Only the owner's hash is stored, never the owner string itself.
"""

from __future__ import annotations

from typing import Any

from .errors import InvalidSessionData
from .model import SCHEMA_VERSION, SESSION_ID_RE, Session, SessionSummary, is_number, clean_message
from .storage import CorruptFile

META = "meta"
MESSAGES = "messages"
META_DOC_ID = 1
META_KEYS = ("schema", "id", "owner_key", "title", "settings", "version", "created_at", "updated_at")


def file_schema(tables: dict[str, dict[str, Any]]) -> int:
    """The schema number a file was written with (v1 files had none or 1)."""
    meta = tables.get(META, {}).get(str(META_DOC_ID))
    if isinstance(meta, dict) and isinstance(meta.get("schema"), int):
        return meta["schema"]
    legacy = tables.get("_default", {})
    if len(legacy) == 1:
        doc = next(iter(legacy.values()))
        if isinstance(doc, dict) and doc.get("schema", 1) == 1:
            return 1
    raise CorruptFile("it is not a session file of any known schema")


def ordered_messages(messages_table: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    """Messages sorted by TinyDB doc id (their order in the chat)."""
    try:
        items = sorted((int(doc_id), doc) for doc_id, doc in messages_table.items())
    except ValueError as exc:
        raise CorruptFile("a message has a non-numeric document id") from exc
    return items


def session_from_tables(
    tables: dict[str, dict[str, Any]], *, owner: str | None, owner_key: str, session_id: str
) -> Session:
    """Check a current-schema file and build the public session dict.

    Structure is checked strictly (a file that fails is treated as corrupt);
    size limits are not, so lowering a limit never hides an old chat.
    """
    schema = file_schema(tables)
    if schema != SCHEMA_VERSION:
        raise CorruptFile(f"it has schema {schema}, expected {SCHEMA_VERSION}")
    meta = tables[META][str(META_DOC_ID)]
    if not isinstance(meta, dict):
        raise CorruptFile("its meta record is not an object")
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise CorruptFile(f"its meta record lacks {', '.join(missing)}")
    if meta["id"] != session_id or not SESSION_ID_RE.fullmatch(str(meta["id"])):
        raise CorruptFile(f"it names session {str(meta['id'])[:40]!r}, not its file name {session_id!r}")
    if meta["owner_key"] != owner_key:
        raise CorruptFile("it belongs to another owner's folder")
    if not isinstance(meta["title"], str) or not meta["title"]:
        raise CorruptFile("its title is not text")
    if not isinstance(meta["settings"], dict):
        raise CorruptFile("its settings are not an object")
    version = meta["version"]
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CorruptFile("its version is not a positive integer")
    if not (is_number(meta["created_at"]) and is_number(meta["updated_at"])):
        raise CorruptFile("its timestamps are not numbers")
    messages = []
    for position, (_, doc) in enumerate(ordered_messages(tables.get(MESSAGES, {}))):
        try:
            messages.append(clean_message(doc, None, where=f"Message {position}"))
        except InvalidSessionData as exc:
            raise CorruptFile(str(exc)) from exc
    return {
        "id": session_id,
        "owner": owner,
        "title": meta["title"],
        "settings": meta["settings"],
        "messages": messages,
        "version": version,
        "created_at": float(meta["created_at"]),
        "updated_at": float(meta["updated_at"]),
        "schema": SCHEMA_VERSION,
    }


def tables_from_session(session: dict[str, Any], owner_key: str, schema: int = SCHEMA_VERSION) -> dict[str, dict[str, Any]]:
    """Lay out a whole (already validated) session as tables (`schema`: for a migration step's output)."""
    meta = {
        "schema": schema,
        "id": session["id"],
        "owner_key": owner_key,
        "title": session["title"],
        "settings": session["settings"],
        "version": session["version"],
        "created_at": session["created_at"],
        "updated_at": session["updated_at"],
    }
    return {
        META: {str(META_DOC_ID): meta},
        MESSAGES: {str(index): message for index, message in enumerate(session["messages"], start=1)},
    }


def summary_of(session: Session) -> SessionSummary:
    """The list view of a session: no messages, no settings."""
    return {
        "id": session["id"],
        "title": session["title"],
        "created_at": session["created_at"],
        "updated_at": session["updated_at"],
        "version": session["version"],
        "message_count": len(session["messages"]),
    }
