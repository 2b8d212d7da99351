"""SessionStore: the one class the app uses to keep chats.

Files under the root folder:
  owners/<sha256(owner)[:32]>/<session id>.json   one TinyDB file per session
  locks/                                         lock files (see locking.py)
  attachments/                                   content-addressed files (see attachments.py)

One file per session keeps the cost of a write proportional to that session
(TinyDB rewrites its whole file on every write). The per-owner list is
derived from the files themselves, with summaries cached in memory and
validated by stat, so there is no index file that could go stale or be
rewritten on every message.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from tinydb import TinyDB
from tinydb.table import Document

from .attachments import AttachmentStore
from .errors import (
    InvalidSessionData,
    SessionCorrupt,
    SessionError,
    SessionNotFound,
    SessionWarning,
    StaleVersion,
    StorageFailure,
)
from .exchange import ImportReport, export_json, export_markdown, parse_import
from .locking import DEFAULT_STRIPES, StoreLocks
from .migrate import FutureSchema, migrate
from .model import (
    DEFAULT_TITLE,
    SCHEMA_VERSION,
    Limits,
    SearchHit,
    Session,
    SessionSummary,
    attachment_refs,
    check_expected_version,
    check_session_id,
    clean_message,
    clean_settings,
    clean_title,
    new_message_id,
    new_session_id,
    owner_key,
)
from config.files import TMP_MARK, fsync_dir

from .record import MESSAGES, META, META_DOC_ID, session_from_tables, summary_of, tables_from_session
from .search import prepare_query, search_session
from . import versions
from .versions import all_messages
from .storage import (
    CorruptFile,
    commit_db,
    move_aside,
    open_db,
    read_tables_stat,
    unlink_durably,
)

SESSION_FILE_RE = re.compile(r"([0-9a-f]{32})\.json")
TEMP_FILE_RE = re.compile(r"\.([0-9a-f]{32})\.json" + re.escape(TMP_MARK) + r".*")
OWNER_DIR_RE = re.compile(r"[0-9a-f]{32}")
# A cached summary is trusted only if its file was already this old when read:
# file times are coarse (a few ms), so a newer write could otherwise share the
# same (inode, mtime, size) and be missed. Same idea as git's "racy clean".
RACY_NS = 2_000_000_000
MAX_PAGE = 1000


@dataclass(frozen=True)
class _CachedSummary:
    signature: tuple[int, ...]
    summary: SessionSummary


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _rewrite_from(db: TinyDB, index: int, tail: list[dict[str, Any]]) -> None:
    """Replace the shown messages from position `index` on with `tail`, keeping doc-id order (the chat's
    order). Part of one _mutate: the file is replaced whole, so a crash leaves the old or the new chat."""
    table = db.table(MESSAGES)
    ids = sorted(doc.doc_id for doc in table.all())
    start = ids[index] if index < len(ids) else (ids[-1] + 1 if ids else 1)
    if ids[index:]:
        table.remove(doc_ids=ids[index:])
    for offset, message in enumerate(tail):
        table.insert(Document(message, doc_id=start + offset))


def _check_int(value: Any, name: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidSessionData(f"{name} must be an integer from {low} to {high}, got {value!r}.")
    return value


class SessionStore:
    """Crash-safe, per-owner chat sessions in TinyDB files under one folder."""

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        limits: Limits | None = None,
        check_on_open: bool = True,
        lock_stripes: int = DEFAULT_STRIPES,
    ) -> None:
        self.root = Path(root)
        self.limits = limits or Limits()
        self.warnings: list[str] = []  # for the UI: files moved aside, etc.
        self._owners = self.root / "owners"
        try:
            fresh = not self._owners.exists()
            for folder in (self._owners, self.root / "locks", self.root / "attachments"):
                folder.mkdir(parents=True, exist_ok=True)
            if fresh:  # make the new folders themselves survive a power cut
                fsync_dir(self.root)
                fsync_dir(self.root.parent)
        except OSError as exc:
            raise StorageFailure(f"Cannot use {self.root} as the sessions folder: {exc.strerror or exc}.") from exc
        self._locks = StoreLocks(self.root / "locks", lock_stripes)
        self._attachments = AttachmentStore(self.root / "attachments", self._locks, self.limits)
        self._cache: dict[Path, _CachedSummary] = {}
        self._cache_lock = threading.Lock()
        if check_on_open:
            self.check()

    # ------------------------------------------------------------------ reads
    def list(self, owner: str, offset: int = 0, limit: int = 50) -> list[SessionSummary]:
        """Summaries of the owner's sessions, newest (updated_at) first."""
        okey = owner_key(owner)
        offset = _check_int(offset, "offset", 0, 10**9)
        limit = _check_int(limit, "limit", 1, MAX_PAGE)
        summaries = [s for s in (self._summary(okey, sid) for sid in self._session_ids(okey)) if s]
        summaries.sort(key=lambda s: (s["updated_at"], s["id"]), reverse=True)
        return [dict(s) for s in summaries[offset : offset + limit]]

    def get(self, owner: str, session_id: str) -> Session:
        """The full session; SessionNotFound for a missing id or another owner's id."""
        return self._load(owner, owner_key(owner), check_session_id(session_id))

    def search(self, owner: str, query: str, limit: int = 50) -> list[SearchHit]:
        """Sessions whose title or messages contain `query` (casefolded), newest first."""
        okey = owner_key(owner)
        folded = prepare_query(query)
        limit = _check_int(limit, "limit", 1, MAX_PAGE)
        hits = []
        for sid in self._session_ids(okey):
            session = self._load_quietly(owner, okey, sid)
            hit = search_session(session, folded) if session else None
            if hit:
                hits.append(hit)
        hits.sort(key=lambda h: (h["updated_at"], h["session_id"]), reverse=True)
        return hits[:limit]

    def export(self, owner: str, session_id: str | None = None, fmt: str = "json") -> str:
        """One session (or all of the owner's) as JSON to re-import, or Markdown to read."""
        if fmt not in ("json", "markdown"):
            raise InvalidSessionData(f"Export format must be 'json' or 'markdown', got {fmt!r}.")
        okey = owner_key(owner)
        if session_id is None:
            found = (self._load_quietly(owner, okey, sid) for sid in self._session_ids(okey))
            sessions = sorted((s for s in found if s), key=lambda s: s["updated_at"], reverse=True)
        else:
            sessions = [self.get(owner, session_id)]
        return export_json(sessions) if fmt == "json" else export_markdown(sessions)

    def attachment_path(self, owner: str, ref: str) -> Path:
        """The attachment's file, only if one of the owner's sessions refers to it."""
        okey = owner_key(owner)

        def refers(session_id: str) -> bool:
            session = self._load_quietly(owner, okey, session_id)
            return bool(session) and ref in attachment_refs(session["messages"])

        return self._attachments.path_for_owner(okey, ref, refers)

    # ----------------------------------------------------------------- writes
    def create(self, owner: str, title: str | None = None, settings: dict | None = None) -> Session:
        okey = owner_key(owner)
        session = {
            "id": new_session_id(),
            "title": DEFAULT_TITLE if title is None else clean_title(title, self.limits),
            "settings": clean_settings(settings, self.limits),
            "messages": [],
            "version": 1,
        }
        session["created_at"] = session["updated_at"] = time.time()
        return self._write_new(owner, okey, session)

    def rename(self, owner: str, session_id: str, title: str, expected_version: int | None = None) -> Session:
        title = clean_title(title, self.limits)

        def change(db: TinyDB, session: Session) -> list[str]:
            db.table(META).update({"title": title}, doc_ids=[META_DOC_ID])
            return []

        return self._mutate(owner, session_id, expected_version, change, touch=False)   # keeps its place

    def update_settings(
        self, owner: str, session_id: str, settings: dict, expected_version: int | None = None
    ) -> Session:
        """Merge `settings` into the session's settings; a key set to None is removed."""
        if not isinstance(settings, dict):
            raise InvalidSessionData(f"Session settings must be an object, got {type(settings).__name__}.")

        def change(db: TinyDB, session: Session) -> list[str]:
            merged = dict(session["settings"])
            for key, value in settings.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            db.table(META).update({"settings": clean_settings(merged, self.limits)}, doc_ids=[META_DOC_ID])
            return []

        return self._mutate(owner, session_id, expected_version, change, touch=False)   # keeps its place

    def append(
        self, owner: str, session_id: str, message: dict, expected_version: int | None = None
    ) -> Session:
        """Add a message; on return it is on disk (fsync'ed) and survives kill -9."""
        message = clean_message(message, self.limits)

        def change(db: TinyDB, session: Session) -> list[str]:
            self._check_room(session)
            if any(m["id"] == message["id"] for m in all_messages(session["messages"])):
                message["id"] = new_message_id()
            db.table(MESSAGES).insert(message)
            return message["attachments"]

        return self._mutate(owner, session_id, expected_version, change)

    def _check_room(self, session: Session) -> None:
        """Every message counts, hidden versions too: the limit bounds the file a write rewrites."""
        if sum(1 for _ in all_messages(session["messages"])) >= self.limits.max_messages:
            raise InvalidSessionData(
                f"This chat has reached {self.limits.max_messages} messages; start a new chat."
            )

    def replace_last_assistant(
        self, owner: str, session_id: str, message: dict, expected_version: int | None = None
    ) -> Session:
        """Continue: the last assistant reply, grown, takes its place (its versions stay with it).
        Retry keeps the old reply instead: add_version."""
        message = clean_message(message, self.limits)
        if message["role"] != "assistant":
            raise InvalidSessionData("The replacement for an assistant reply must have role 'assistant'.")

        def change(db: TinyDB, session: Session) -> list[str]:
            messages = session["messages"]
            if not messages or messages[-1]["role"] != "assistant":
                raise InvalidSessionData("The last message of this chat is not an assistant reply; nothing to replace.")
            _rewrite_from(db, len(messages) - 1, [versions.keep_fork(messages[-1], message)])
            return message["attachments"]

        return self._mutate(owner, session_id, expected_version, change)

    def add_version(
        self, owner: str, session_id: str, index: int, message: dict, expected_version: int | None = None
    ) -> Session:
        """Retry (a reply) and Edit (a user message): `message` becomes a new version of message `index`
        and is shown; what was shown from `index` on (that message and all after it) is kept as a version.
        On return it is on disk (fsync'ed), like append."""
        message = clean_message(message, self.limits)
        if "versions" in message:
            raise InvalidSessionData("A new version cannot bring versions of its own.")

        def change(db: TinyDB, session: Session) -> list[str]:
            self._check_room(session)
            if any(m["id"] == message["id"] for m in all_messages(session["messages"])):
                message["id"] = new_message_id()
            forked = versions.add_version(session["messages"], index, message)
            _rewrite_from(db, index, forked[index:])
            return message["attachments"]

        return self._mutate(owner, session_id, expected_version, change)

    def show_version(
        self, owner: str, session_id: str, index: int, number: int, expected_version: int | None = None
    ) -> Session:
        """‹ n/m ›: show version `number` (0-based) of message `index`; the chat continues from it."""

        def change(db: TinyDB, session: Session) -> list[str]:
            switched = versions.show(session["messages"], index, number)
            _rewrite_from(db, index, switched[index:])
            return []

        return self._mutate(owner, session_id, expected_version, change, touch=False)

    def truncate(self, owner: str, session_id: str, keep: int, expected_version: int | None = None) -> Session:
        """Keep the first `keep` messages (edit & resend drops the rest)."""
        if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
            raise InvalidSessionData(f"keep must be a non-negative integer, got {keep!r}.")

        def change(db: TinyDB, session: Session) -> list[str]:
            count = len(session["messages"])
            if keep > count:
                raise InvalidSessionData(f"Cannot keep {keep} messages: this chat has only {count}.")
            table = db.table(MESSAGES)
            drop = sorted(doc.doc_id for doc in table.all())[keep:]
            if drop:
                table.remove(doc_ids=drop)
            return []

        return self._mutate(owner, session_id, expected_version, change)

    def delete(self, owner: str, session_id: str) -> None:
        """Remove the session and every attachment no other session uses."""
        okey = owner_key(owner)
        sid = check_session_id(session_id)
        path = self._session_path(okey, sid)
        with self._locks.session(okey, sid):
            with open_db(path) as db:
                session = self._decode_locked(None, okey, sid, path, db)
            unlink_durably(path)
            self._forget(path)
            self._attachments.drop_refs(okey, sid, attachment_refs(session["messages"]))

    def import_json(self, owner: str, text: str) -> ImportReport:
        """Add the sessions of an export file; never overwrites (a taken id gets a new one)."""
        okey = owner_key(owner)
        candidates, report = parse_import(text, self.limits)
        for candidate in candidates:
            session = candidate.session
            refs = attachment_refs(session["messages"])
            missing = refs - self._attachments.existing(refs)
            if missing:
                for message in all_messages(session["messages"]):
                    message["attachments"] = [r for r in message["attachments"] if r not in missing]
                report.notes.append(
                    f"Session {candidate.index}: {len(missing)} attachment(s) not stored here were left out."
                )
            wanted = candidate.wanted_id
            if wanted and self._session_path(okey, wanted).exists():
                report.notes.append(f"Session {candidate.index}: id {wanted} already exists here; it got a new id.")
                wanted = None
            session["id"] = wanted or new_session_id()
            try:
                stored = self._write_new(owner, okey, session)
            except (InvalidSessionData, StorageFailure) as exc:
                report.skip(candidate.index, exc, "storage" if isinstance(exc, StorageFailure) else "invalid")
                continue
            if stored["id"] != session["id"]:
                report.notes.append(f"Session {candidate.index}: its id was taken meanwhile; it got a new id.")
            report.imported.append(stored["id"])
        report.skipped.sort()
        return report

    def put_attachment(self, data: bytes, suffix: str) -> str:
        """Store bytes once by sha256; returns the ref to put in a message's attachments."""
        return self._attachments.put(data, suffix)

    # ------------------------------------------------------------ maintenance
    def check(self) -> list[str]:
        """Scan every file: remove crashed temp files, move corrupt files aside, migrate old ones.

        Runs on open; returns the warnings it added (also in self.warnings).
        """
        before = len(self.warnings)
        self._attachments.remove_leftover_temps()
        for okey in self._owner_keys():
            folder = self._owners / okey
            for entry in list(os.scandir(folder)):
                temp = TEMP_FILE_RE.fullmatch(entry.name)
                if temp:
                    with self._locks.session(okey, temp.group(1)):
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(entry.path)
                elif SESSION_FILE_RE.fullmatch(entry.name):
                    self._summary(okey, entry.name[:32])
        return self.warnings[before:]

    def collect_garbage(self, min_age_s: float = 3600.0) -> list[str]:
        """Full sweep: delete attachments no session refers to; returns the refs deleted.

        delete/truncate/replace already remove what they orphan; this catches
        what crashes left behind. Files younger than `min_age_s` are kept so an
        upload that is not yet in a message survives.
        """
        referenced: dict[str, set[str]] = {}
        for okey in self._owner_keys():
            for sid in self._session_ids(okey):
                session = self._load_quietly(None, okey, sid)
                for ref in attachment_refs(session["messages"]) if session else ():
                    referenced.setdefault(ref, set()).add(self._attachments.marker_name(okey, sid))
        return self._attachments.reconcile(referenced, min_age_s)

    # --------------------------------------------------------------- internals
    def _session_path(self, okey: str, sid: str) -> Path:
        return self._owners / okey / f"{sid}.json"

    def _owner_keys(self) -> list[str]:
        return [e.name for e in os.scandir(self._owners) if e.is_dir() and OWNER_DIR_RE.fullmatch(e.name)]

    def _session_ids(self, okey: str) -> list[str]:
        try:
            entries = list(os.scandir(self._owners / okey))
        except FileNotFoundError:
            return []
        return [e.name[:32] for e in entries if SESSION_FILE_RE.fullmatch(e.name)]

    def _warn(self, message: str) -> None:
        with self._cache_lock:
            if message in self.warnings:
                return
            self.warnings.append(message)
        warnings.warn(message, SessionWarning, stacklevel=3)

    def _remember(self, path: Path, st: os.stat_result, session: Session) -> None:
        if time.time_ns() - st.st_mtime_ns <= RACY_NS:
            return  # too recent to trust a stat signature; it is re-read next time
        with self._cache_lock:
            self._cache[path] = _CachedSummary(_signature(st), summary_of(session))

    def _forget(self, path: Path) -> None:
        with self._cache_lock:
            self._cache.pop(path, None)

    def _summary(self, okey: str, sid: str) -> SessionSummary | None:
        path = self._session_path(okey, sid)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        cached = self._cache.get(path)
        if cached is not None and cached.signature == _signature(st):
            return cached.summary
        session = self._load_quietly(None, okey, sid)
        return summary_of(session) if session else None

    def _decode(self, owner: str | None, okey: str, sid: str, tables: dict, mtime: float) -> tuple[Session, dict | None]:
        """(session, migrated tables or None). Raises CorruptFile or FutureSchema."""
        try:
            new_tables, schema = migrate(tables, okey, sid, mtime)
            session = session_from_tables(new_tables, owner=owner, owner_key=okey, session_id=sid)
        except (CorruptFile, FutureSchema):
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CorruptFile(f"unexpected content ({type(exc).__name__}: {exc})") from exc
        return session, (new_tables if schema != SCHEMA_VERSION else None)

    def _future(self, sid: str, exc: FutureSchema) -> SessionError:
        message = f"Chat {sid} cannot be opened: {exc}. It was left untouched."
        self._warn(message)
        return SessionError(message)

    def _load(self, owner: str | None, okey: str, sid: str) -> Session:
        """Read without the lock (files are only ever replaced whole); lock only to repair."""
        path = self._session_path(okey, sid)
        try:
            got = read_tables_stat(path)
            if got is None:
                raise SessionNotFound(f"No chat with id {sid!r}.")
            tables, st = got
            session, migrated = self._decode(owner, okey, sid, tables, st.st_mtime)
        except FutureSchema as exc:
            raise self._future(sid, exc) from None
        except CorruptFile:
            migrated = None
            session = None  # re-read under the lock before moving anything aside
        if session is None or migrated is not None:
            with self._locks.session(okey, sid), open_db(path) as db:
                return self._decode_locked(owner, okey, sid, path, db)
        self._remember(path, st, session)
        return session

    def _load_quietly(self, owner: str | None, okey: str, sid: str) -> Session | None:
        """For scans (list, search, export all): a bad file is warned about and skipped."""
        try:
            return self._load(owner, okey, sid)
        except StorageFailure:
            raise
        except SessionError:  # not found, moved aside or from a newer app: already warned
            return None

    def _decode_locked(self, owner: str | None, okey: str, sid: str, path: Path, db: TinyDB) -> Session:
        """Read the session in an open db (caller holds its lock); quarantine or migrate as needed."""
        try:
            tables = db.storage.read()
            if tables is None:
                raise SessionNotFound(f"No chat with id {sid!r}.")
            session, migrated = self._decode(owner, okey, sid, tables, os.stat(path).st_mtime)
        except FileNotFoundError:
            raise SessionNotFound(f"No chat with id {sid!r}.") from None
        except CorruptFile as exc:
            raise self._quarantine(path, str(exc)) from None
        except FutureSchema as exc:
            raise self._future(sid, exc) from None
        if migrated is not None:
            db.storage.write(migrated)
            commit_db(db)
            self._forget(path)
        return session

    def _quarantine(self, path: Path, reason: str) -> SessionNotFound:
        """Move a damaged file aside (never overwrite it) and say so. Caller holds the lock."""
        try:
            target = move_aside(path)
        except FileNotFoundError:
            return SessionNotFound(f"No chat with id {path.stem!r}.")
        except OSError as exc:
            raise StorageFailure(f"Chat file {path.name} is damaged and could not be moved aside: {exc}.") from exc
        self._forget(path)
        message = (
            f"Chat file {path.name} could not be read ({reason}); it was moved aside to {target.name} "
            "and not overwritten. Other chats are unaffected."
        )
        self._warn(message)
        return SessionCorrupt(message)

    def _mutate(
        self,
        owner: str,
        session_id: str,
        expected_version: int | None,
        change: Callable[[TinyDB, Session], list[str]],
        *,
        touch: bool = True,
    ) -> Session:
        """Lock, read, check the version, apply `change`, bump the version, write once. `touch` moves the
        session's updated_at (its place in the list) to now: a new message does, a new title does not.

        `change` edits the open TinyDB and returns attachment refs it adds;
        their markers are written before the session file, and markers of
        refs the session dropped are removed after it (see attachments.py).
        """
        okey = owner_key(owner)
        sid = check_session_id(session_id)
        expected = check_expected_version(expected_version)
        path = self._session_path(okey, sid)
        with self._locks.session(okey, sid):
            with open_db(path) as db:
                session = self._decode_locked(owner, okey, sid, path, db)
                if expected is not None and expected != session["version"]:
                    raise StaleVersion(sid, expected, session["version"])
                added = change(db, session)
                self._attachments.add_refs(okey, sid, added)
                stamp = max(time.time(), session["updated_at"]) if touch else session["updated_at"]
                db.table(META).update({"version": session["version"] + 1, "updated_at": stamp},
                                      doc_ids=[META_DOC_ID])
                commit_db(db)
                updated = session_from_tables(db.storage.read(), owner=owner, owner_key=okey, session_id=sid)
            self._forget(path)
            dropped = attachment_refs(session["messages"]) - attachment_refs(updated["messages"])
            self._attachments.drop_refs(okey, sid, dropped)
        return updated

    def _write_new(self, owner: str, okey: str, session: dict[str, Any]) -> Session:
        """Write a session that must not exist yet (create, import); a taken id gets a new one."""
        folder = self._owners / okey
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
            fsync_dir(self._owners)
        while True:
            sid = session["id"]
            path = self._session_path(okey, sid)
            with self._locks.session(okey, sid):
                if path.exists():
                    session["id"] = new_session_id()
                    continue
                self._attachments.add_refs(okey, sid, attachment_refs(session["messages"]))
                with open_db(path) as db:
                    db.storage.write(tables_from_session(session, okey))
                    commit_db(db)
                    return session_from_tables(db.storage.read(), owner=owner, owner_key=okey, session_id=sid)
