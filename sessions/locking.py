"""Locks that serialise writers across threads and processes.

A threading lock orders threads of one store; fcntl.flock on a lock file
orders processes (and separate stores in one process, since every acquisition
opens its own file description). Session locks are striped: a fixed set of
lock files, chosen by hashing the session, so writes to different sessions
rarely wait for each other and lock files never need deleting (deleting a
lock file while someone waits on it is the classic flock race).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
from pathlib import Path
from typing import Iterator

from .errors import StorageFailure

DEFAULT_STRIPES = 64


class StoreLocks:
    """All locks of one store root: session stripes plus one attachments lock.

    Lock order (to rule out deadlock): at most one session stripe, then
    optionally the attachments lock; never the reverse.
    """

    def __init__(self, folder: Path, stripes: int = DEFAULT_STRIPES) -> None:
        self.folder = folder
        self.stripes = stripes
        self._thread_locks = [threading.Lock() for _ in range(stripes)]
        self._attachments_thread_lock = threading.Lock()

    def _stripe(self, owner_key: str, session_id: str) -> int:
        digest = hashlib.blake2b(f"{owner_key}/{session_id}".encode(), digest_size=4).digest()
        return int.from_bytes(digest, "big") % self.stripes

    @contextlib.contextmanager
    def session(self, owner_key: str, session_id: str) -> Iterator[None]:
        """Exclusive right to change one session's file."""
        index = self._stripe(owner_key, session_id)
        with self._thread_locks[index], _flock(self.folder / f"session-{index:02d}.lock"):
            yield

    @contextlib.contextmanager
    def attachments(self) -> Iterator[None]:
        """Exclusive right to add or remove attachment files and their references."""
        with self._attachments_thread_lock, _flock(self.folder / "attachments.lock"):
            yield


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """Hold an exclusive flock on `path`; released in finally, also on errors."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageFailure(f"Could not open lock file {path.name}: {exc.strerror or exc}.") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
