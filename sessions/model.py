"""What a valid session, message, title and owner look like.

All input from callers (UI, API, import files) passes through these checks,
so the files only ever hold data the rest of the app can rely on, and a bad
request gets a message that says exactly what was wrong.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, NotRequired, TypedDict

from .errors import InvalidSessionData, SessionNotFound
from .versions import all_messages, check_fork

SCHEMA_VERSION = 3   # 3: messages may hold versions (sessions/versions.py); 2 files load unchanged
ROLES = ("user", "assistant", "system")
STATUSES = ("complete", "stopped", "error")
MESSAGE_KEYS = frozenset({"id", "role", "content", "attachments", "status", "created_at", "provenance", "versions",
                          "shown"})

SESSION_ID_RE = re.compile(r"[0-9a-f]{32}")
MESSAGE_ID_RE = re.compile(r"[0-9a-f]{32}")
ATTACHMENT_REF_RE = re.compile(r"[0-9a-f]{64}\.[a-z0-9]{1,10}")
SUFFIX_RE = re.compile(r"\.?([A-Za-z0-9]{1,10})")
DEFAULT_TITLE = "New chat"
MAX_OWNER_CHARS = 1000


# What the store hands out: plain JSON-able dicts, typed here so callers know the keys.
class Message(TypedDict):
    """One stored message, as clean_message makes it."""
    id: str
    role: str                   # one of ROLES
    content: str
    attachments: list[str]      # attachment refs (sha256.suffix)
    status: str                 # one of STATUSES
    created_at: float
    provenance: NotRequired[dict[str, object]]   # assistant messages only: how the reply was made
    versions: NotRequired[list[list["Message"]]]  # a fork: the versions not shown, each a branch (versions.py)
    shown: NotRequired[int]                       # with versions: which version (0-based) is shown


class Session(TypedDict):
    """A whole session (SessionStore.get and every write return one)."""
    id: str
    owner: str | None
    title: str
    settings: dict[str, object]   # plain JSON, as the caller stored it
    messages: list[Message]
    version: int
    created_at: float
    updated_at: float
    schema: int


class SessionSummary(TypedDict):
    """A session in the list view (SessionStore.list): no messages, no settings."""
    id: str
    title: str
    created_at: float
    updated_at: float
    version: int
    message_count: int


class SearchHit(TypedDict):
    """One session found by SessionStore.search: where the query first matched."""
    session_id: str
    title: str
    snippet: str
    updated_at: float
    message_index: int | None   # None: the title matched


@dataclass(frozen=True)
class Limits:
    """Size limits; generous defaults, lower them for public deployments."""

    max_message_chars: int = 100_000  # characters of one message's content
    max_title_chars: int = 200  # characters of a title after strip
    max_messages: int = 10_000  # messages per session (bounds one file's write cost)
    max_attachments_per_message: int = 16
    max_settings_bytes: int = 64_000  # JSON size of a session's settings
    max_provenance_bytes: int = 16_000  # JSON size of one provenance dict
    max_attachment_bytes: int = 50 * 1024 * 1024  # one stored attachment
    max_import_bytes: int = 100 * 1024 * 1024  # one import file

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidSessionData(f"Limits.{name} must be a positive integer, got {value!r}.")


def owner_key(owner: Any) -> str:
    """Hash an owner into a folder name: no owner string can escape the root."""
    if not isinstance(owner, str):
        raise InvalidSessionData(f"The owner must be a string, got {type(owner).__name__}.")
    if not owner.strip():
        raise InvalidSessionData("The owner must not be empty.")
    if len(owner) > MAX_OWNER_CHARS:
        raise InvalidSessionData(f"The owner is longer than {MAX_OWNER_CHARS} characters.")
    return hashlib.sha256(owner.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def check_session_id(session_id: Any) -> str:
    """Accept only ids we could have made; anything else is simply not found."""
    if not isinstance(session_id, str):
        raise InvalidSessionData(f"A session id must be a string, got {type(session_id).__name__}.")
    if not SESSION_ID_RE.fullmatch(session_id):
        raise SessionNotFound(f"No chat with id {session_id[:40]!r}.")
    return session_id


def new_session_id() -> str:
    return secrets.token_hex(16)


def new_message_id() -> str:
    return secrets.token_hex(16)


def check_expected_version(expected: Any) -> int | None:
    if expected is None:
        return None
    if not isinstance(expected, int) or isinstance(expected, bool) or expected < 1:
        raise InvalidSessionData(f"expected_version must be a positive integer or None, got {expected!r}.")
    return expected


def check_encodable(text: str, what: str) -> str:
    """Refuse text that cannot be written as UTF-8 (a lone surrogate such as \\ud800), before any write."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidSessionData(
            f"{what} holds a character that cannot be stored as UTF-8 (U+{ord(text[exc.start]):04X}, "
            "a lone surrogate); remove it and try again."
        ) from None
    return text


def clean_title(title: Any, limits: Limits) -> str:
    if not isinstance(title, str):
        raise InvalidSessionData(f"A title must be text, got {type(title).__name__}.")
    check_encodable(title, "The title")
    title = " ".join(title.split())
    if not title:
        raise InvalidSessionData("A title must not be empty.")
    if len(title) > limits.max_title_chars:
        raise InvalidSessionData(
            f"A title may have at most {limits.max_title_chars} characters; this one has {len(title)}."
        )
    return title


def _json_copy(value: Any, what: str, max_bytes: int) -> Any:
    """Deep-copy through JSON: proves the value is storable and bounds its size."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSessionData(f"{what} must be plain JSON data (text, numbers, lists, objects): {exc}.") from exc
    size = len(check_encodable(text, what).encode("utf-8"))
    if size > max_bytes:
        raise InvalidSessionData(f"{what} is too large ({size} bytes; the limit is {max_bytes}).")
    return json.loads(text)


def clean_settings(settings: Any, limits: Limits) -> dict[str, Any]:
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise InvalidSessionData(f"Session settings must be an object, got {type(settings).__name__}.")
    for key in settings:
        if not isinstance(key, str):
            raise InvalidSessionData(f"Session settings keys must be text, got {key!r}.")
    return _json_copy(settings, "Session settings", limits.max_settings_bytes)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def clean_message(message: Any, limits: Limits | None, *, now: float | None = None, where: str = "The message",
                  depth: int = 0) -> dict[str, Any]:
    """Validate one message and fill defaults (id, status, created_at, attachments); its versions too.

    With limits=None only the structure is checked: used when reading files
    already stored, so lowering a limit never turns old chats into "corrupt".
    """
    if not isinstance(message, dict):
        raise InvalidSessionData(f"{where} must be an object, got {type(message).__name__}.")
    unknown = sorted(str(k) for k in message if k not in MESSAGE_KEYS)
    if unknown:
        raise InvalidSessionData(
            f"{where} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(MESSAGE_KEYS))}."
        )
    role = message.get("role")
    if role not in ROLES:
        raise InvalidSessionData(f"{where} has role {role!r}; it must be one of {', '.join(ROLES)}.")
    content = message.get("content")
    if not isinstance(content, str):
        raise InvalidSessionData(f"{where} content must be text, got {type(content).__name__}.")
    check_encodable(content, where)
    if limits is not None and len(content) > limits.max_message_chars:
        raise InvalidSessionData(
            f"{where} is too long ({len(content)} characters; the limit is {limits.max_message_chars})."
        )
    attachments = message.get("attachments", [])
    if not isinstance(attachments, list):
        raise InvalidSessionData(f"{where} attachments must be a list of references.")
    if limits is not None and len(attachments) > limits.max_attachments_per_message:
        raise InvalidSessionData(
            f"{where} has {len(attachments)} attachments; the limit is {limits.max_attachments_per_message}."
        )
    for ref in attachments:
        if not isinstance(ref, str) or not ATTACHMENT_REF_RE.fullmatch(ref):
            raise InvalidSessionData(f"{where} has an invalid attachment reference {str(ref)[:80]!r}.")
    status = message.get("status", "complete")
    if status not in STATUSES:
        raise InvalidSessionData(f"{where} has status {status!r}; it must be one of {', '.join(STATUSES)}.")
    created_at = message.get("created_at", time.time() if now is None else now)
    if not is_number(created_at) or created_at < 0:
        raise InvalidSessionData(f"{where} created_at must be a non-negative number (seconds since 1970).")
    message_id = message.get("id") or new_message_id()
    if not isinstance(message_id, str) or not MESSAGE_ID_RE.fullmatch(message_id):
        raise InvalidSessionData(f"{where} id must be 32 lowercase hex characters.")
    cleaned: dict[str, Any] = {
        "id": message_id,
        "role": role,
        "content": content,
        "attachments": list(dict.fromkeys(attachments)),
        "status": status,
        "created_at": float(created_at),
    }
    provenance = message.get("provenance")
    if role == "assistant":
        if not isinstance(provenance, dict):
            raise InvalidSessionData(
                f"{where} is an assistant reply without provenance; it needs an object with at least 'model' and 'rung'."
            )
        for key in ("model", "rung"):
            if not isinstance(provenance.get(key), str) or not provenance[key].strip():
                raise InvalidSessionData(f"{where} provenance needs a non-empty text field {key!r}.")
        if limits is None:  # read from a JSON file: already plain JSON, freshly parsed
            cleaned["provenance"] = provenance
        else:
            cleaned["provenance"] = _json_copy(provenance, f"{where} provenance", limits.max_provenance_bytes)
    elif provenance is not None:
        raise InvalidSessionData(f"{where} has provenance, but only assistant messages may carry it.")
    cleaned.update(check_fork(message, where, depth, lambda raw, at, level: clean_message(
        raw, limits, now=now, where=at, depth=level)))
    return cleaned


def attachment_refs(messages: list[dict[str, Any]]) -> set[str]:
    """Every attachment a list of messages refers to, hidden versions included (they keep their files)."""
    return {ref for message in all_messages(messages) for ref in message.get("attachments", ())}


def clean_suffix(suffix: Any) -> str:
    """'.PNG' -> 'png'; a suffix can never carry a path separator."""
    if not isinstance(suffix, str) or not SUFFIX_RE.fullmatch(suffix):
        raise InvalidSessionData(
            f"An attachment suffix must be 1-10 letters or digits, like '.png' or 'wav'; got {str(suffix)[:20]!r}."
        )
    return suffix.lstrip(".").lower()
