"""SessionStore basics on a real TinyDB on disk: CRUD, versions, validation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessions import SCHEMA_VERSION, InvalidSessionData, Limits, SessionNotFound, SessionStore, StaleVersion

OWNER = "alice"


def assistant(text: str, **extra) -> dict:
    return {"role": "assistant", "content": text, "provenance": {"model": "mistral-7b", "rung": "fp16", **extra}}


def session_files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "owners").rglob("*.json")}


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path / "db")


def test_create_get_and_file_is_tinydb_json(store: SessionStore, tmp_path: Path):
    created = store.create(OWNER, "  My   first chat ", {"system_prompt": "Be brief."})
    assert created["title"] == "My first chat"
    assert created["version"] == 1 and created["messages"] == [] and created["schema"] == SCHEMA_VERSION
    got = store.get(OWNER, created["id"])
    assert got == created
    (path,) = (tmp_path / "db" / "owners").rglob("*.json")
    tables = json.loads(path.read_text("utf-8"))
    assert tables["meta"]["1"]["title"] == "My first chat"
    assert "alice" not in path.read_text("utf-8")  # only the owner's hash is stored


def test_append_returns_durable_session_with_defaults(store: SessionStore, tmp_path: Path):
    sid = store.create(OWNER)["id"]
    after = store.append(OWNER, sid, {"role": "user", "content": "hello"})
    after = store.append(OWNER, sid, assistant("hi!", prompt_tokens=3, tokens_per_second=9.5))
    assert after["version"] == 3
    assert [m["role"] for m in after["messages"]] == ["user", "assistant"]
    user, reply = after["messages"]
    assert user["status"] == "complete" and user["attachments"] == [] and user["created_at"] > 0
    assert reply["provenance"]["tokens_per_second"] == 9.5  # extra provenance keys are kept
    # A fresh store (as after a restart) reads the same thing from disk.
    assert SessionStore(tmp_path / "db").get(OWNER, sid) == after


def test_list_newest_first_with_paging(store: SessionStore):
    ids = [store.create(OWNER, f"chat {i}")["id"] for i in range(5)]
    store.append(OWNER, ids[1], {"role": "user", "content": "bump"})
    listed = store.list(OWNER)
    assert [s["id"] for s in listed] == [ids[1], ids[4], ids[3], ids[2], ids[0]]
    assert listed[0]["message_count"] == 1 and listed[0]["version"] == 2
    assert set(listed[0]) == {"id", "title", "created_at", "updated_at", "version", "message_count"}
    assert [s["id"] for s in store.list(OWNER, offset=1, limit=2)] == [ids[4], ids[3]]
    with pytest.raises(InvalidSessionData, match="limit"):
        store.list(OWNER, limit=0)


def test_rename_touches_one_session_only(store: SessionStore, tmp_path: Path):
    ids = [store.create(OWNER, f"chat {i}")["id"] for i in range(3)]
    for sid in ids:
        store.append(OWNER, sid, {"role": "user", "content": f"in {sid}"})
    before = session_files(tmp_path / "db")
    renamed = store.rename(OWNER, ids[1], "Renamed")
    after = session_files(tmp_path / "db")
    assert renamed["title"] == "Renamed" and renamed["version"] == 3
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {f"{ids[1]}.json"}
    titles = {s["id"]: s["title"] for s in store.list(OWNER)}
    assert titles == {ids[0]: "chat 0", ids[1]: "Renamed", ids[2]: "chat 2"}


def test_renaming_keeps_a_chats_place_and_a_new_message_moves_it_up(store: SessionStore):
    """The list is newest message first: a new title (or settings) is no news, a message is (issue 24)."""
    ids = [store.create(OWNER, f"chat {i}")["id"] for i in range(3)]
    for sid in ids:
        store.append(OWNER, sid, {"role": "user", "content": f"in {sid}"})
    order = [s["id"] for s in store.list(OWNER)]
    assert order == ids[::-1]
    stamp = store.get(OWNER, ids[0])["updated_at"]
    renamed = store.rename(OWNER, ids[0], "Renamed")
    store.update_settings(OWNER, ids[0], {"temperature": 0.2})
    assert renamed["updated_at"] == stamp and [s["id"] for s in store.list(OWNER)] == order
    store.append(OWNER, ids[0], {"role": "user", "content": "news"})
    assert [s["id"] for s in store.list(OWNER)][0] == ids[0]


def test_stale_version_is_refused_for_every_write(store: SessionStore, tmp_path: Path):
    sid = store.create(OWNER)["id"]
    tab_a = store.get(OWNER, sid)
    tab_b = store.get(OWNER, sid)
    store.append(OWNER, sid, {"role": "user", "content": "from tab A"}, expected_version=tab_a["version"])
    store.append(OWNER, sid, assistant("answer"))
    # Tab B (or a tab left open across a restart) still holds version 1.
    restarted = SessionStore(tmp_path / "db")
    with pytest.raises(StaleVersion, match="version 1.*version 3"):
        restarted.append(OWNER, sid, {"role": "user", "content": "from tab B"}, expected_version=tab_b["version"])
    for call in (
        lambda: restarted.rename(OWNER, sid, "x", expected_version=1),
        lambda: restarted.truncate(OWNER, sid, 0, expected_version=2),
        lambda: restarted.update_settings(OWNER, sid, {"t": 1}, expected_version=2),
        lambda: restarted.replace_last_assistant(OWNER, sid, assistant("again"), expected_version=2),
    ):
        with pytest.raises(StaleVersion):
            call()
    final = restarted.get(OWNER, sid)
    assert [m["content"] for m in final["messages"]] == ["from tab A", "answer"]
    assert final["version"] == 3 and final["title"] == "New chat" and final["settings"] == {}
    # The current version is accepted.
    assert restarted.rename(OWNER, sid, "ok", expected_version=3)["version"] == 4


def test_replace_last_assistant_and_truncate(store: SessionStore):
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "q1"})
    store.append(OWNER, sid, assistant("a1"))
    store.append(OWNER, sid, {"role": "user", "content": "q2"})
    store.append(OWNER, sid, {**assistant("a2 partial"), "status": "stopped"})
    retried = store.replace_last_assistant(OWNER, sid, assistant("a2 better"))
    assert [m["content"] for m in retried["messages"]] == ["q1", "a1", "q2", "a2 better"]
    assert retried["messages"][-1]["status"] == "complete"
    cut = store.truncate(OWNER, sid, 2)
    assert [m["content"] for m in cut["messages"]] == ["q1", "a1"]
    again = store.append(OWNER, sid, {"role": "user", "content": "q2 edited"})
    assert [m["content"] for m in again["messages"]] == ["q1", "a1", "q2 edited"]
    with pytest.raises(InvalidSessionData, match="not an assistant reply"):
        store.replace_last_assistant(OWNER, sid, assistant("x"))
    with pytest.raises(InvalidSessionData, match="only 3"):
        store.truncate(OWNER, sid, 4)


def test_update_settings_merges_and_removes(store: SessionStore):
    sid = store.create(OWNER, settings={"system_prompt": "a", "temperature": 0.7})["id"]
    updated = store.update_settings(OWNER, sid, {"temperature": 0.2, "adapter": "ko-lora", "system_prompt": None})
    assert updated["settings"] == {"temperature": 0.2, "adapter": "ko-lora"}
    with pytest.raises(InvalidSessionData, match="plain JSON"):
        store.update_settings(OWNER, sid, {"bad": object()})
    assert store.get(OWNER, sid)["settings"] == {"temperature": 0.2, "adapter": "ko-lora"}


def test_delete(store: SessionStore):
    keep, gone = store.create(OWNER)["id"], store.create(OWNER)["id"]
    store.delete(OWNER, gone)
    assert [s["id"] for s in store.list(OWNER)] == [keep]
    with pytest.raises(SessionNotFound):
        store.get(OWNER, gone)
    with pytest.raises(SessionNotFound):
        store.delete(OWNER, gone)


@pytest.mark.parametrize(
    ("message", "pattern"),
    [
        ({"role": "robot", "content": "x"}, "role 'robot'"),
        ({"role": "user", "content": 5}, "content must be text"),
        ({"role": "user", "content": "x" * 11}, "too long"),
        ({"role": "assistant", "content": "x"}, "without provenance"),
        ({"role": "assistant", "content": "x", "provenance": {"model": "m"}}, "'rung'"),
        ({"role": "user", "content": "x", "provenance": {"model": "m", "rung": "fp16"}}, "only assistant"),
        ({"role": "user", "content": "x", "mood": "happy"}, "unknown field"),
        ({"role": "user", "content": "x", "status": "done"}, "status 'done'"),
        ({"role": "user", "content": "x", "attachments": ["../../etc/passwd"]}, "invalid attachment"),
        ("just text", "must be an object"),
    ],
)
def test_invalid_messages_are_refused_clearly(tmp_path: Path, message, pattern):
    store = SessionStore(tmp_path, limits=Limits(max_message_chars=10))
    sid = store.create(OWNER)["id"]
    with pytest.raises(InvalidSessionData, match=pattern):
        store.append(OWNER, sid, message)
    assert store.get(OWNER, sid)["version"] == 1  # nothing written


def test_titles_owners_and_ids_are_validated(store: SessionStore, tmp_path: Path):
    sid = store.create(OWNER)["id"]
    with pytest.raises(InvalidSessionData, match="empty"):
        store.rename(OWNER, sid, "   ")
    with pytest.raises(InvalidSessionData, match="at most 200"):
        store.rename(OWNER, sid, "t" * 201)
    with pytest.raises(InvalidSessionData, match="owner"):
        store.create("  ")
    with pytest.raises(InvalidSessionData, match="owner"):
        store.list(None)  # type: ignore[arg-type]
    for bad_id in ("../../etc/passwd", sid.upper(), sid + "0", ""):
        with pytest.raises(SessionNotFound):
            store.get(OWNER, bad_id)
    # Hostile owner strings stay inside the root: only hashed folder names appear.
    store.create("../../../../tmp/evil")
    owner_dirs = sorted(p.name for p in (tmp_path / "db" / "owners").iterdir())
    assert len(owner_dirs) == 2 and all(len(name) == 32 and name.isalnum() for name in owner_dirs)
    assert not (tmp_path / "evil").exists()


def test_an_append_rewrites_only_its_own_file(store: SessionStore, tmp_path: Path):
    ids = [store.create(OWNER)["id"] for _ in range(4)]
    before = session_files(tmp_path / "db")
    store.append(OWNER, ids[2], {"role": "user", "content": "x"})
    after = session_files(tmp_path / "db")
    assert {name for name in before if before[name] != after[name]} == {f"{ids[2]}.json"}


def test_cached_list_sees_writes_from_another_process(tmp_path: Path):
    """list() caches summaries of old files; a write by another store must still show."""
    import os
    import time

    mine = SessionStore(tmp_path)
    other = SessionStore(tmp_path)  # stands in for a second process (own cache, own locks)
    sid = mine.create(OWNER, "before")["id"]
    old = time.time() - 3600
    for path in (tmp_path / "owners").rglob("*.json"):
        os.utime(path, (old, old))  # old enough for the summary to be cached
    assert mine.list(OWNER)[0]["title"] == "before"
    assert mine._cache, "the summary of an old, unchanged file is cached"
    other.rename(OWNER, sid, "after")
    other.append(OWNER, sid, {"role": "user", "content": "x"})
    (summary,) = mine.list(OWNER)
    assert summary["title"] == "after" and summary["message_count"] == 1 and summary["version"] == 3
    other.delete(OWNER, sid)
    assert mine.list(OWNER) == []


def test_bad_expected_version_and_limits_are_refused(store: SessionStore):
    sid = store.create(OWNER)["id"]
    for bad in ("1", True, 0, 1.0):
        with pytest.raises(InvalidSessionData, match="expected_version"):
            store.append(OWNER, sid, {"role": "user", "content": "x"}, expected_version=bad)
    assert store.get(OWNER, sid)["version"] == 1
    with pytest.raises(InvalidSessionData, match="max_message_chars"):
        Limits(max_message_chars=0)
    small = SessionStore(store.root, limits=Limits(max_messages=2))
    small.append(OWNER, sid, {"role": "user", "content": "1"})
    small.append(OWNER, sid, {"role": "user", "content": "2"})
    with pytest.raises(InvalidSessionData, match="reached 2 messages"):
        small.append(OWNER, sid, {"role": "user", "content": "3"})
    assert small.get(OWNER, sid)["version"] == 3
