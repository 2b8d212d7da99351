"""Attachments: stored once by sha256, removed when no session refers to them."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from sessions import AttachmentNotFound, InvalidSessionData, Limits, SessionStore

OWNER = "alice"
IMAGE = b"\x89PNG\r\n fake image bytes"


def reply(text: str, attachments: list[str] | None = None) -> dict:
    return {"role": "assistant", "content": text, "attachments": attachments or [],
            "provenance": {"model": "tts", "rung": "fp32"}}


def stored_files(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "attachments").iterdir() if p.is_file())


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path)


def test_same_bytes_are_stored_once(store: SessionStore, tmp_path: Path):
    ref1 = store.put_attachment(IMAGE, ".PNG")
    ref2 = store.put_attachment(IMAGE, "png")
    assert ref1 == ref2 == hashlib.sha256(IMAGE).hexdigest() + ".png"
    assert stored_files(tmp_path) == [ref1]
    assert (tmp_path / "attachments" / ref1).read_bytes() == IMAGE
    other = store.put_attachment(b"other", ".wav")
    assert stored_files(tmp_path) == sorted([ref1, other])


def test_attachment_removed_only_when_last_session_is_deleted(store: SessionStore, tmp_path: Path):
    ref = store.put_attachment(IMAGE, ".png")
    a, b = store.create(OWNER)["id"], store.create(OWNER)["id"]
    store.append(OWNER, a, {"role": "user", "content": "look", "attachments": [ref]})
    store.append(OWNER, b, {"role": "user", "content": "same picture", "attachments": [ref]})
    store.delete(OWNER, a)
    assert stored_files(tmp_path) == [ref]
    assert store.attachment_path(OWNER, ref).read_bytes() == IMAGE
    store.delete(OWNER, b)
    assert stored_files(tmp_path) == []
    assert list((tmp_path / "attachments" / "refs").iterdir()) == []
    with pytest.raises(AttachmentNotFound):
        store.attachment_path(OWNER, ref)


def test_shared_across_owners_survives_one_owner_deleting(store: SessionStore, tmp_path: Path):
    ref = store.put_attachment(IMAGE, ".png")
    mine = store.create(OWNER)["id"]
    theirs = store.create("bob")["id"]
    store.append(OWNER, mine, {"role": "user", "content": "x", "attachments": [ref]})
    store.append("bob", theirs, {"role": "user", "content": "y", "attachments": [ref]})
    store.delete(OWNER, mine)
    assert store.attachment_path("bob", ref).read_bytes() == IMAGE
    with pytest.raises(AttachmentNotFound):
        store.attachment_path(OWNER, ref)  # alice no longer refers to it


def test_truncate_and_replace_remove_orphaned_attachments(store: SessionStore, tmp_path: Path):
    photo = store.put_attachment(IMAGE, ".jpg")
    speech1 = store.put_attachment(b"wav one", ".wav")
    speech2 = store.put_attachment(b"wav two", ".wav")
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "describe", "attachments": [photo]})
    store.append(OWNER, sid, reply("a cat", [speech1]))
    store.replace_last_assistant(OWNER, sid, reply("a black cat", [speech2]))
    assert stored_files(tmp_path) == sorted([photo, speech2])
    store.truncate(OWNER, sid, 1)
    assert stored_files(tmp_path) == [photo]
    store.truncate(OWNER, sid, 0)
    assert stored_files(tmp_path) == []


def test_appending_an_unknown_or_foreign_ref_is_refused(store: SessionStore):
    sid = store.create(OWNER)["id"]
    with pytest.raises(InvalidSessionData, match="not stored"):
        store.append(OWNER, sid, {"role": "user", "content": "x", "attachments": ["b" * 64 + ".png"]})
    assert store.get(OWNER, sid)["messages"] == []
    for bad in ("../../owners/x.json", "b" * 64 + ".png"):
        with pytest.raises(AttachmentNotFound):
            store.attachment_path(OWNER, bad)


def test_put_validates_input(tmp_path: Path):
    store = SessionStore(tmp_path, limits=Limits(max_attachment_bytes=10))
    with pytest.raises(InvalidSessionData, match="limit is 10"):
        store.put_attachment(b"x" * 11, ".png")
    for suffix in ("../png", ".p/g", "", ".toolongsuffix"):
        with pytest.raises(InvalidSessionData, match="suffix"):
            store.put_attachment(b"x", suffix)
    with pytest.raises(InvalidSessionData, match="bytes"):
        store.put_attachment("text", ".txt")  # type: ignore[arg-type]


def test_collect_garbage_sweeps_old_orphans_and_keeps_used_files(store: SessionStore, tmp_path: Path):
    used = store.put_attachment(IMAGE, ".png")
    orphan = store.put_attachment(b"uploaded, never sent", ".png")
    fresh = store.put_attachment(b"uploaded just now", ".png")
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "x", "attachments": [used]})
    old = time.time() - 7200
    for ref in (used, orphan):
        os.utime(tmp_path / "attachments" / ref, (old, old))
    removed = store.collect_garbage(min_age_s=3600)
    assert removed == [orphan]
    assert stored_files(tmp_path) == sorted([used, fresh])
    assert store.attachment_path(OWNER, used).read_bytes() == IMAGE
