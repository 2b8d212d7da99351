"""Upgrade session files written by older versions of the app.

Schema 1 (the first release) kept a whole chat in one document of TinyDB's
default table, with no version counter, no per-message status or time, and
the model name (if any) directly on assistant messages:

    {"_default": {"1": {"schema": 1,            # optional, absent in early files
                        "id": "<32 hex>", "title": "...", "created": 1690000000.0,
                        "messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "hello",
                                      "model": "mistral-7b"}]}}}

Schema 2 is schema 3 (record.py) without versions of messages: its files are
valid schema-3 files once renumbered. The store migrates on read and writes
the result atomically under the session's lock.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any, Callable, Mapping

from .errors import InvalidSessionData
from .model import DEFAULT_TITLE, SCHEMA_VERSION, clean_message, is_number
from .record import META, META_DOC_ID, file_schema, tables_from_session
from .storage import CorruptFile

Tables = dict[str, dict[str, Any]]


class FutureSchema(Exception):
    """The file was written by a newer app: leave it untouched, do not quarantine it."""


def _v1_to_v2(tables: Tables, owner_key: str, session_id: str, file_mtime: float) -> Tables:
    doc = next(iter(tables["_default"].values()))
    if str(doc.get("id", session_id)) != session_id:
        raise CorruptFile(f"its v1 record names session {str(doc.get('id'))[:40]!r}, not {session_id!r}")
    created = doc.get("created", file_mtime)
    if not is_number(created):
        created = file_mtime
    title = doc.get("title")
    title = " ".join(title.split())[:200] if isinstance(title, str) and title.strip() else DEFAULT_TITLE
    old_messages = doc.get("messages", [])
    if not isinstance(old_messages, list):
        raise CorruptFile("its v1 messages are not a list")
    messages = []
    for position, old in enumerate(old_messages):
        if not isinstance(old, dict):
            raise CorruptFile(f"v1 message {position} is not an object")
        new: dict[str, Any] = {
            "role": old.get("role"),
            "content": old.get("content"),
            "attachments": [],
            "status": "complete",
            "created_at": float(created),
        }
        if old.get("role") == "assistant":
            model = old.get("model")
            new["provenance"] = {
                "model": model if isinstance(model, str) and model.strip() else "unknown",
                "rung": "unknown",
                "migrated_from_schema": 1,
            }
        try:
            messages.append(clean_message(new, None, where=f"v1 message {position}"))
        except InvalidSessionData as exc:
            raise CorruptFile(str(exc)) from exc
    session = {
        "id": session_id,
        "title": title,
        "settings": {},
        "messages": messages,
        "version": 1,
        "created_at": float(created),
        "updated_at": max(float(created), float(file_mtime)),
    }
    return tables_from_session(session, owner_key, schema=2)


def _v2_to_v3(tables: Tables, owner_key: str, session_id: str, file_mtime: float) -> Tables:
    """Versions of messages arrived: a schema-2 chat is one with no forks, so only the number changes.
    (What the file holds is checked by record.session_from_tables afterwards, as for any file.)"""
    meta = tables.get(META, {}).get(str(META_DOC_ID))
    if not isinstance(meta, dict):
        raise CorruptFile("its meta record is not an object")
    return {**tables, META: {**tables[META], str(META_DOC_ID): {**meta, "schema": 3}}}


# from-schema -> step that produces the next schema
STEPS: Mapping[int, Callable[[Tables, str, str, float], Tables]] = MappingProxyType({1: _v1_to_v2, 2: _v2_to_v3})


def migrate(tables: Tables, owner_key: str, session_id: str, file_mtime: float) -> tuple[Tables, int]:
    """Bring `tables` to the current schema; returns (tables, schema it had)."""
    original = schema = file_schema(tables)
    if schema > SCHEMA_VERSION:
        raise FutureSchema(
            f"it was written by a newer version of the app (schema {schema}; this one reads up to {SCHEMA_VERSION})"
        )
    while schema < SCHEMA_VERSION:
        step = STEPS.get(schema)
        if step is None:
            raise CorruptFile(f"no migration from schema {schema}")
        tables = step(tables, owner_key, session_id, file_mtime)
        schema = file_schema(tables)
    return tables, original
