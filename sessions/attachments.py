"""Attachment files (images, audio) stored once by content hash, with references.

Layout under <root>/attachments/:
  <sha256>.<suffix>                  the bytes, written once (same bytes -> same ref)
  refs/<ref>/<owner_key>.<session>   one empty marker per session that refers to it

Markers make "who uses this file" a directory listing of one attachment,
so deleting a session costs in proportion to its own attachments, not to all
sessions. Protocol (crash-safe in the direction that loses nothing): a marker
is created BEFORE the session file that refers to it is written, and removed
AFTER the session stops referring to it. A crash in between leaves an extra
marker (a file kept too long, never one deleted too early);
collect_garbage() later removes such leftovers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterable

from config.files import TMP_MARK, fsync_dir

from .errors import AttachmentNotFound, InvalidSessionData, StorageFailure
from .locking import StoreLocks
from .model import ATTACHMENT_REF_RE, Limits, clean_suffix
from .storage import atomic_write_bytes


class AttachmentStore:
    """The attachments folder of one store root."""

    def __init__(self, folder: Path, locks: StoreLocks, limits: Limits) -> None:
        self.folder = folder
        self.refs_folder = folder / "refs"
        self.locks = locks
        self.limits = limits
        self.refs_folder.mkdir(parents=True, exist_ok=True)

    # -- names -----------------------------------------------------------
    @staticmethod
    def check_ref(ref: object) -> str:
        if not isinstance(ref, str) or not ATTACHMENT_REF_RE.fullmatch(ref):
            raise AttachmentNotFound(f"No attachment {str(ref)[:80]!r}.")
        return ref

    @staticmethod
    def marker_name(owner_key: str, session_id: str) -> str:
        return f"{owner_key}.{session_id}"

    # -- writing ---------------------------------------------------------
    def put(self, data: bytes, suffix: str) -> str:
        """Store bytes once; the same bytes always give the same ref."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidSessionData(f"Attachment data must be bytes, got {type(data).__name__}.")
        data = bytes(data)
        if not data:
            raise InvalidSessionData("An attachment must not be empty.")
        if len(data) > self.limits.max_attachment_bytes:
            raise InvalidSessionData(
                f"The attachment is {len(data)} bytes; the limit is {self.limits.max_attachment_bytes}."
            )
        ref = f"{hashlib.sha256(data).hexdigest()}.{clean_suffix(suffix)}"
        path = self.folder / ref
        with self.locks.attachments():
            if path.exists():
                os.utime(path)  # fresh again: collect_garbage's grace period restarts
            else:
                atomic_write_bytes(path, data)
        return ref

    def add_refs(self, owner_key: str, session_id: str, refs: Iterable[str]) -> None:
        """Record that a session refers to `refs` (call BEFORE writing the session)."""
        refs = sorted(set(refs))
        if not refs:
            return
        marker = self.marker_name(owner_key, session_id)
        with self.locks.attachments():
            missing = [ref for ref in refs if not (self.folder / ref).is_file()]
            if missing:
                raise InvalidSessionData(
                    f"Attachment {missing[0]} is not stored (it may have been removed); upload it again."
                )
            try:
                for ref in refs:
                    ref_dir = self.refs_folder / ref
                    ref_dir.mkdir(exist_ok=True)
                    marker_path = ref_dir / marker
                    with open(marker_path, "a"):
                        pass
                    os.utime(marker_path)
                    fsync_dir(ref_dir)
                fsync_dir(self.refs_folder)
            except OSError as exc:
                raise StorageFailure(f"Could not record attachment use: {exc.strerror or exc}.") from exc

    def drop_refs(self, owner_key: str, session_id: str, refs: Iterable[str]) -> list[str]:
        """Forget a session's use of `refs` (AFTER writing it); delete files nobody uses.

        Returns the refs whose files were deleted.
        """
        refs = sorted(set(refs))
        removed: list[str] = []
        if not refs:
            return removed
        marker = self.marker_name(owner_key, session_id)
        with self.locks.attachments():
            for ref in refs:
                ref_dir = self.refs_folder / ref
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(ref_dir / marker)
                if self._unused(ref_dir):
                    self._remove(ref)
                    removed.append(ref)
            fsync_dir(self.folder)
        return removed

    def existing(self, refs: Iterable[str]) -> set[str]:
        return {ref for ref in refs if (self.folder / ref).is_file()}

    # -- reading ---------------------------------------------------------
    def path_for_owner(self, owner_key: str, ref: str, refers: Callable[[str], bool]) -> Path:
        """The file, if one of this owner's sessions refers to it (`refers(session_id)`)."""
        ref = self.check_ref(ref)
        path = self.folder / ref
        ref_dir = self.refs_folder / ref
        prefix = owner_key + "."
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(ref_dir):
                if entry.name.startswith(prefix) and refers(entry.name[len(prefix):]) and path.is_file():
                    return path
        raise AttachmentNotFound(f"No attachment {ref!r} in your chats.")

    # -- garbage collection ----------------------------------------------
    def remove_leftover_temps(self) -> int:
        """Delete temp files of puts that crashed (under the lock no put is in flight)."""
        count = 0
        with self.locks.attachments():
            for entry in list(os.scandir(self.folder)):
                if entry.is_file() and entry.name.startswith(".") and TMP_MARK in entry.name:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)
                        count += 1
        return count

    def reconcile(self, referenced: dict[str, set[str]], min_age_s: float) -> list[str]:
        """Make markers match `referenced` (ref -> marker names) and delete unused files.

        Only markers and files older than `min_age_s` are removed, so an upload
        or an append in flight (marker written, session not yet) is never hit.
        """
        cutoff = time.time() - min_age_s
        removed: list[str] = []
        with self.locks.attachments():
            for ref, markers in referenced.items():
                if (self.folder / ref).is_file():
                    ref_dir = self.refs_folder / ref
                    ref_dir.mkdir(exist_ok=True)
                    for marker in markers:
                        with open(ref_dir / marker, "a"):
                            pass
            for ref_dir in list(self.refs_folder.iterdir()):
                keep = referenced.get(ref_dir.name, set())
                for entry in list(os.scandir(ref_dir)):
                    if entry.name not in keep and entry.stat().st_mtime < cutoff:
                        os.unlink(entry.path)
            for entry in list(os.scandir(self.folder)):
                if not entry.is_file():
                    continue
                old = entry.stat().st_mtime < cutoff
                if entry.name.startswith(".") and TMP_MARK in entry.name and old:
                    os.unlink(entry.path)
                elif ATTACHMENT_REF_RE.fullmatch(entry.name) and old and self._unused(self.refs_folder / entry.name):
                    self._remove(entry.name)
                    removed.append(entry.name)
            for ref_dir in list(self.refs_folder.iterdir()):
                if not (self.folder / ref_dir.name).exists() and self._unused(ref_dir):
                    with contextlib.suppress(OSError):
                        ref_dir.rmdir()
            fsync_dir(self.folder)
            fsync_dir(self.refs_folder)
        return removed

    def _unused(self, ref_dir: Path) -> bool:
        try:
            with os.scandir(ref_dir) as entries:
                return not any(True for _ in entries)
        except FileNotFoundError:
            return True

    def _remove(self, ref: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.folder / ref)
        with contextlib.suppress(OSError):
            (self.refs_folder / ref).rmdir()
