"""Locks that serialise writers across threads and processes.

A threading lock orders threads of one store (a waiting thread sleeps on it
instead of polling); a `filelock.FileLock` on a lock file orders processes,
and separate stores in one process (flock on Unix, LockFileEx on Windows).
Session locks are striped: a fixed set of lock files, chosen by hashing the
session, so writes to different sessions rarely wait for each other and lock
files never need deleting (deleting a lock file while someone waits on it is
the classic flock race; filelock's Unix lock keeps the file on release).
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from pathlib import Path
from typing import Iterator

from filelock import FileLock

from .errors import StorageFailure

# filelock polls a lock another process holds; the default 50 ms would add up to that to every
# contended write, which is far longer than a write takes.
POLL_SECONDS = 0.002

DEFAULT_STRIPES = 64


class StoreLocks:
    """All locks of one store root: session stripes plus one attachments lock.

    Lock order (to rule out deadlock): at most one session stripe, then
    optionally the attachments lock; never the reverse.
    """

    def __init__(self, folder: Path, stripes: int = DEFAULT_STRIPES) -> None:
        self.folder = folder
        self.stripes = stripes
        self._sessions = StripedLock(folder, "session", stripes)
        self._attachments = ThreadFileLock(folder / "attachments.lock")

    def session(self, owner_key: str, session_id: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive right to change one session's file."""
        return self._sessions.held(f"{owner_key}/{session_id}")

    def attachments(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive right to add or remove attachment files and their references."""
        return self._attachments.held()


class StripedLock:
    """A fixed set of lock files `<folder>/<name>-NN.lock`; a key always takes the same one (by hash), so
    different keys rarely wait for each other and no lock file is ever created or deleted per key."""

    def __init__(self, folder: Path, name: str, stripes: int) -> None:
        self._locks = [ThreadFileLock(folder / f"{name}-{i:02d}.lock") for i in range(stripes)]

    def held(self, key: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive right to change what `key` names, against threads and processes."""
        digest = hashlib.blake2b(key.encode(), digest_size=4).digest()
        return self._locks[int.from_bytes(digest, "big") % len(self._locks)].held()


class ThreadFileLock:
    """A threading lock in front of a file lock: threads of this store queue on the first (no
    polling), then one of them takes the file against other processes and stores."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread = threading.Lock()
        # is_singleton: stores in one process share the FileLock object of a path, so one waits on
        # another's hold (filelock refuses that between separate objects, as a deadlock); holds stay
        # per thread, so they still exclude each other.
        self._file = FileLock(path, mode=0o600, is_singleton=True, poll_interval=POLL_SECONDS)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Both locks, released in finally, also on errors."""
        with self._thread:
            try:
                self._file.acquire()
            except OSError as exc:
                raise StorageFailure(f"Could not open lock file {self.path.name}: {exc.strerror or exc}.") from exc
            try:
                yield
            finally:
                self._file.release()
