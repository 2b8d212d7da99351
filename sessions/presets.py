"""Presets: named system prompts, with optional chat settings, kept per owner.

One small TinyDB file per owner (presets/<owner key>.json), written the way a
session file is: read, change, one atomic replace (storage.py), under a
striped thread + file lock (locking.py). A crash leaves the old list or the
new one, and two tabs saving at once both land. The store keeps settings as
plain JSON; which keys a chat has is the UI's business.
"""

from __future__ import annotations

import os
import secrets
import time
import warnings
from pathlib import Path
from typing import Any, Callable, TypedDict

from tinydb import TinyDB


from .errors import InvalidSessionData, SessionWarning, StorageFailure
from .locking import StripedLock
from .model import Limits, check_encodable, clean_settings, owner_key
from .storage import CorruptFile, commit_db, move_aside, open_db, read_tables

MAX_PRESETS = 100           # per owner: a list people can still scan
MAX_NAME_CHARS = 60         # fits a dropdown row
LOCK_STRIPES = 16
SCHEMA = 1
TABLE = "presets"
META = "meta"


class Preset(TypedDict):
    """One saved preset, as the store hands it out."""
    id: str
    name: str
    settings: dict[str, object]     # system_prompt and the chat settings the UI keeps
    created_at: float
    updated_at: float


class PresetError(InvalidSessionData):
    """A preset refused. `reason` names the case so the UI picks its sentence (EN/KO); `values` fill it.

    Reasons: empty_name, name_too_long, duplicate, too_many, not_found, bad_settings, corrupt.
    """

    def __init__(self, reason: str, message: str, **values: object) -> None:
        super().__init__(message)
        self.reason, self.values = reason, values


def clean_name(name: object) -> str:
    """Whitespace folded to single spaces; refused when empty or longer than MAX_NAME_CHARS."""
    if not isinstance(name, str):
        raise PresetError("empty_name", "A preset needs a name.")
    name = " ".join(check_encodable(name, "The preset name").split())
    if not name:
        raise PresetError("empty_name", "A preset needs a name.")
    if len(name) > MAX_NAME_CHARS:
        raise PresetError("name_too_long", f"A preset name may have at most {MAX_NAME_CHARS} characters; "
                          f"this one has {len(name)}.", n=len(name), limit=MAX_NAME_CHARS)
    return name


def clean_preset_settings(settings: Any, limits: Limits) -> dict[str, Any]:
    """Plain JSON within the session settings' size limit; a system prompt, when given, is text."""
    try:
        cleaned = clean_settings(settings, limits)
    except InvalidSessionData as exc:
        raise PresetError("bad_settings", str(exc)) from None
    if not isinstance(cleaned.get("system_prompt", ""), str):
        raise PresetError("bad_settings", "A preset's system prompt must be text.")
    return cleaned


class PresetStore:
    """Per-owner presets under `root`/presets (root: the sessions folder)."""

    def __init__(self, root: str | os.PathLike[str], *, limits: Limits | None = None,
                 max_presets: int = MAX_PRESETS) -> None:
        self.root = Path(root)
        self.limits = limits or Limits()
        self.max_presets = max_presets
        self._folder = self.root / "presets"
        locks = self.root / "locks"
        try:
            for folder in (self._folder, locks):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageFailure(f"Cannot use {self._folder} for presets: {exc.strerror or exc}.") from exc
        self._locks = StripedLock(locks, "presets", LOCK_STRIPES)

    # ------------------------------------------------------------------ reads
    def list(self, owner: str) -> list[Preset]:
        """The owner's presets, by name (case-insensitive)."""
        okey = owner_key(owner)
        path = self._path(okey)
        try:
            tables = read_tables(path)          # files are only ever replaced whole: no lock to read
            presets = _presets_of(tables)
        except CorruptFile:
            with self._locks.held(okey), open_db(path) as db:
                presets = self._read_locked(path, db)
        return sorted(presets, key=lambda p: (p["name"].casefold(), p["created_at"]))

    def get(self, owner: str, preset_id: object) -> Preset:
        for preset in self.list(owner):
            if preset["id"] == preset_id:
                return preset
        raise PresetError("not_found", "This preset no longer exists (deleted in another tab?).")

    # ----------------------------------------------------------------- writes
    def create(self, owner: str, name: object, settings: object) -> Preset:
        """A new preset; refused when the name is taken (case-insensitive) or the owner has too many."""
        name = clean_name(name)
        settings = clean_preset_settings(settings, self.limits)
        now = time.time()
        preset: Preset = {"id": secrets.token_hex(8), "name": name, "settings": settings,
                          "created_at": now, "updated_at": now}

        def change(presets: list[Preset]) -> list[Preset]:
            if len(presets) >= self.max_presets:
                raise PresetError("too_many", f"You have {len(presets)} presets, the most one can keep; "
                                  "delete one first.", limit=self.max_presets)
            _check_free(presets, name, None)
            return [*presets, preset]

        self._mutate(owner, change)
        return preset

    def rename(self, owner: str, preset_id: object, name: object) -> Preset:
        name = clean_name(name)
        renamed: list[Preset] = []

        def change(presets: list[Preset]) -> list[Preset]:
            found = _find(presets, preset_id)
            _check_free(presets, name, found["id"])
            renamed.append({**found, "name": name, "updated_at": time.time()})
            return [renamed[0] if p["id"] == found["id"] else p for p in presets]

        self._mutate(owner, change)
        return renamed[0]

    def delete(self, owner: str, preset_id: object) -> None:
        def change(presets: list[Preset]) -> list[Preset]:
            found = _find(presets, preset_id)
            return [p for p in presets if p["id"] != found["id"]]

        self._mutate(owner, change)

    # -------------------------------------------------------------- internals
    def _path(self, okey: str) -> Path:
        return self._folder / f"{okey}.json"

    def _read_locked(self, path: Path, db: TinyDB) -> list[Preset]:
        """The presets in an open db (caller holds the lock); a damaged file is moved aside, never overwritten."""
        try:
            return _presets_of(db.storage.read())
        except CorruptFile as exc:
            moved = _move_aside(path)
            db.storage.close()          # forget the damaged content: the next write starts a new file
            message = (f"Your presets file could not be read ({exc}); it was moved aside to {moved} "
                       "and a new one was started.")
            warnings.warn(message, SessionWarning, stacklevel=3)
            raise PresetError("corrupt", message) from None

    def _mutate(self, owner: str, change: Callable[[list[Preset]], list[Preset]]) -> None:
        """Lock, read, change, write once (atomically)."""
        okey = owner_key(owner)
        path = self._path(okey)
        with self._locks.held(okey), open_db(path) as db:
            presets = change(self._read_locked(path, db))
            db.storage.write({META: {"1": {"schema": SCHEMA}},
                              TABLE: {str(i): dict(p) for i, p in enumerate(presets, start=1)}})
            commit_db(db)


def _presets_of(tables: dict[str, dict[str, Any]] | None) -> list[Preset]:
    """Presets of a file's tables; anything we could not have written is CorruptFile."""
    if tables is None:
        return []
    presets: list[Preset] = []
    for doc in (tables.get(TABLE) or {}).values():
        ok = (isinstance(doc.get("id"), str) and isinstance(doc.get("name"), str)
              and isinstance(doc.get("settings"), dict)
              and all(isinstance(doc.get(k), (int, float)) for k in ("created_at", "updated_at")))
        if not ok:
            raise CorruptFile("a preset in it lacks its id, name, settings or times")
        presets.append({"id": doc["id"], "name": doc["name"], "settings": doc["settings"],
                        "created_at": float(doc["created_at"]), "updated_at": float(doc["updated_at"])})
    return presets


def _find(presets: list[Preset], preset_id: object) -> Preset:
    for preset in presets:
        if preset["id"] == preset_id:
            return preset
    raise PresetError("not_found", "This preset no longer exists (deleted in another tab?).")


def _check_free(presets: list[Preset], name: str, own_id: str | None) -> None:
    folded = name.casefold()
    if any(p["name"].casefold() == folded and p["id"] != own_id for p in presets):
        raise PresetError("duplicate", f"A preset named “{name}” already exists; pick another name.", name=name)


def _move_aside(path: Path) -> str:
    try:
        target = move_aside(path)
    except OSError as exc:
        raise StorageFailure(f"Your presets file is damaged and could not be moved aside: {exc.strerror or exc}.") \
            from exc
    return target.name
