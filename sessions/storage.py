"""Atomic file writes and the TinyDB storage built on them.

TinyDB's own JSONStorage truncates the file and writes it in place, so a
crash mid-write leaves a 0-byte or half file. Here every write goes through
config.files.atomic_write_bytes (temp file, fsync, os.replace, fsync of the
folder), so a reader (or a restart) sees either the old file or the new one,
never a mix.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator

from tinydb import TinyDB
from tinydb.storages import Storage

from config import files

from .errors import StorageFailure


class CorruptFile(Exception):
    """A file exists but does not hold a valid JSON object of tables.

    Internal: the store turns it into a quarantine + SessionCorrupt.
    """


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves the old or new file, whole (owner-only: chats are private)."""
    try:
        files.atomic_write_bytes(path, data, mode=0o600)
    except OSError as exc:
        raise StorageFailure(f"Could not save {path.name}: {exc.strerror or exc}.") from exc


def unlink_durably(path: Path) -> None:
    """Remove a file and make the removal survive a crash."""
    try:
        os.unlink(path)
        files.fsync_dir(path.parent)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageFailure(f"Could not remove {path.name}: {exc.strerror or exc}.") from exc


def encode_tables(tables: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (Korean stays readable and small)."""
    return json.dumps(tables, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def decode_tables(raw: bytes) -> dict[str, dict[str, Any]]:
    """Parse a TinyDB file; anything but an object of objects is corrupt.

    TinyDB itself reads an empty or `null` file as an empty database, which is
    how peer apps silently lost histories: we refuse instead.
    """
    if not raw.strip():
        raise CorruptFile("the file is empty (0 bytes or only whitespace)")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CorruptFile(f"the file is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CorruptFile(f"the file holds JSON {type(data).__name__}, not an object of tables")
    for name, table in data.items():
        if not isinstance(table, dict):
            raise CorruptFile(f"table {name!r} is not an object")
    return data


def read_tables(path: Path) -> dict[str, dict[str, Any]] | None:
    """Read and parse one file; None when it does not exist."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageFailure(f"Could not read {path.name}: {exc.strerror or exc}.") from exc
    return decode_tables(raw)


def read_tables_stat(path: Path) -> tuple[dict[str, dict[str, Any]], os.stat_result] | None:
    """Like read_tables, plus the stat of exactly the file that was read (for caching)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StorageFailure(f"Could not read {path.name}: {exc.strerror or exc}.") from exc
    try:
        st = os.fstat(fd)
        with os.fdopen(os.dup(fd), "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise StorageFailure(f"Could not read {path.name}: {exc.strerror or exc}.") from exc
    finally:
        os.close(fd)
    return decode_tables(raw), st


class AtomicJSONStorage(Storage):
    """TinyDB storage: one snapshot per open database, one atomic write per commit.

    TinyDB reads the whole file for every table operation and writes it for
    every change. Reading once and committing once per store operation makes
    an operation see one consistent file (no torn meta/messages pair when
    another process writes in between) and turns a multi-table change (insert
    a message + bump the version) into a single atomic replace.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._data: dict[str, dict[str, Any]] | None = None
        self._loaded = False
        self._dirty = False

    def read(self) -> dict[str, dict[str, Any]] | None:
        if not self._loaded:
            self._data = read_tables(self.path)
            self._loaded = True
        return self._data

    def write(self, data: dict[str, dict[str, Any]]) -> None:
        self._data = data
        self._loaded = True
        self._dirty = True

    def commit(self) -> None:
        """Write pending changes to disk atomically (durable on return)."""
        if self._dirty and self._data is not None:
            atomic_write_bytes(self.path, encode_tables(self._data))
        self._dirty = False

    def close(self) -> None:
        """Drop pending changes: only commit() writes, so an error mid-operation writes nothing."""
        self._data = None
        self._loaded = False
        self._dirty = False


@contextlib.contextmanager
def open_db(path: Path) -> Iterator[TinyDB]:
    """Open one session's TinyDB; the caller commits via commit_db()."""
    db = TinyDB(path, storage=AtomicJSONStorage)
    try:
        yield db
    finally:
        db.close()


def commit_db(db: TinyDB) -> None:
    """Flush a database opened with open_db (one atomic write)."""
    storage = db.storage
    assert isinstance(storage, AtomicJSONStorage)
    storage.commit()


def move_aside(path: Path) -> Path:
    """Rename a damaged file to <name>.corrupt-<UTC time>[-n] (an earlier one is never overwritten) and fsync
    its folder; returns the new path. OSError (FileNotFoundError included) is the caller's to word."""
    import time

    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
        n += 1
    os.rename(path, target)
    files.fsync_dir(path.parent)
    return target
