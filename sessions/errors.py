"""Exceptions and warnings of the session store.

Every failure the store can report is one of these classes, with a plain
English message, so the UI can show (or translate) it without guessing.
"""

from __future__ import annotations


class SessionError(Exception):
    """Base class: anything the session store refuses or cannot do."""


class SessionNotFound(SessionError):
    """No such session for this owner (another owner's id reads the same)."""


class SessionCorrupt(SessionNotFound):
    """The session's file was damaged; it was moved aside, not overwritten.

    A subclass of SessionNotFound because, to the caller, the chat is gone
    from the list; the message says where the damaged file now lies.
    """


class AttachmentNotFound(SessionNotFound):
    """No such attachment among this owner's sessions."""


class StaleVersion(SessionError):
    """A write based on an old copy of the session was refused.

    Raised instead of clobbering newer messages, e.g. from a browser tab left
    open across a restart.
    """

    def __init__(self, session_id: str, expected: int, current: int) -> None:
        self.session_id = session_id
        self.expected = expected
        self.current = current
        super().__init__(
            f"This chat was changed elsewhere (you had version {expected}, "
            f"the saved chat is at version {current}). Reload the chat and try again; "
            "nothing was overwritten."
        )


class InvalidSessionData(SessionError, ValueError):
    """Input (message, title, settings, owner, import file) failed validation."""


class StorageFailure(SessionError):
    """The disk refused a read or write (full, read-only, permissions)."""


class SessionWarning(UserWarning):
    """Something was repaired or moved aside; the UI should tell the user."""
