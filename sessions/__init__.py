"""Chat sessions kept safe in TinyDB: crash-safe, per-owner, searchable.

Imports nothing else of the app; the only package that imports tinydb.
Modules: errors (exception classes), model (validation and limits), storage
(atomic files + TinyDB storage), locking (thread + file locks), record (file
layout), migrate (older schemas), search, exchange (export/import),
attachments (content-addressed files), store (SessionStore, the public API),
presets (PresetStore: named system prompts + settings per owner).
"""

from .errors import (
    AttachmentNotFound,
    InvalidSessionData,
    SessionCorrupt,
    SessionError,
    SessionNotFound,
    SessionWarning,
    StaleVersion,
    StorageFailure,
)
from .exchange import ImportRefused, ImportReport, decode_import
from .model import SCHEMA_VERSION, Limits, Message, SearchHit, Session, SessionSummary
from .presets import Preset, PresetError, PresetStore
from .store import SessionStore

__all__ = [
    "AttachmentNotFound",
    "ImportRefused",
    "ImportReport",
    "InvalidSessionData",
    "Limits",
    "Message",
    "Preset",
    "PresetError",
    "PresetStore",
    "SCHEMA_VERSION",
    "SearchHit",
    "Session",
    "SessionCorrupt",
    "SessionError",
    "SessionNotFound",
    "SessionStore",
    "SessionSummary",
    "SessionWarning",
    "StaleVersion",
    "StorageFailure",
    "decode_import",
]
