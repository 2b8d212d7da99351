"""Chat sessions kept safe in TinyDB: crash-safe, per-owner, searchable.

Imports nothing else of the app; the only package that imports tinydb.
Modules: errors (exception classes), model (validation and limits), storage
(atomic files + TinyDB storage), locking (thread + file locks), record (file
layout), migrate (older schemas), search, exchange (export/import),
attachments (content-addressed files), store (SessionStore, the public API).
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
from .exchange import ImportReport
from .model import SCHEMA_VERSION, Limits
from .store import SessionStore

__all__ = [
    "AttachmentNotFound",
    "ImportReport",
    "InvalidSessionData",
    "Limits",
    "SCHEMA_VERSION",
    "SessionCorrupt",
    "SessionError",
    "SessionNotFound",
    "SessionStore",
    "SessionWarning",
    "StaleVersion",
    "StorageFailure",
]
