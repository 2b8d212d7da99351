"""Schema migration: files of older schemas (1: one document; 2: no versions of messages), written by hand,
are upgraded to the current schema on read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sessions import SCHEMA_VERSION, SessionError, SessionStore, SessionWarning
from sessions.model import owner_key

OWNER = "alice"
V1_ID = "1234567890abcdef1234567890abcdef"


def write_v1(root: Path, with_schema_key: bool) -> Path:
    """The first release's layout: one document in TinyDB's default table."""
    doc = {
        "id": V1_ID,
        "title": "옛날 대화",
        "created": 1_690_000_000.0,
        "messages": [
            {"role": "user", "content": "안녕?"},
            {"role": "assistant", "content": "안녕하세요!", "model": "mistral-7b-v0.1"},
            {"role": "assistant", "content": "no model recorded"},
        ],
    }
    if with_schema_key:
        doc["schema"] = 1
    folder = root / "owners" / owner_key(OWNER)
    folder.mkdir(parents=True)
    path = folder / f"{V1_ID}.json"
    path.write_text(json.dumps({"_default": {"1": doc}}, ensure_ascii=False), "utf-8")
    return path


@pytest.mark.parametrize("open_first", [True, False], ids=["migrated-at-open", "migrated-on-get"])
@pytest.mark.parametrize("with_schema_key", [True, False], ids=["schema-1", "no-schema-key"])
def test_v1_file_is_migrated_and_rewritten(tmp_path: Path, open_first: bool, with_schema_key: bool):
    path = write_v1(tmp_path, with_schema_key)
    store = SessionStore(tmp_path, check_on_open=open_first)
    if open_first:  # the start-up check already rewrote the file
        assert json.loads(path.read_text("utf-8"))["meta"]["1"]["schema"] == SCHEMA_VERSION
    session = store.get(OWNER, V1_ID)
    assert session["schema"] == SCHEMA_VERSION and session["version"] == 1
    assert session["title"] == "옛날 대화" and session["settings"] == {}
    assert session["created_at"] == 1_690_000_000.0
    user, answer, unknown = session["messages"]
    assert user["role"] == "user" and user["content"] == "안녕?" and "provenance" not in user
    assert all(m["status"] == "complete" and m["created_at"] == 1_690_000_000.0 for m in session["messages"])
    assert answer["provenance"] == {"model": "mistral-7b-v0.1", "rung": "unknown", "migrated_from_schema": 1}
    assert unknown["provenance"]["model"] == "unknown"
    on_disk = json.loads(path.read_text("utf-8"))
    assert "_default" not in on_disk and on_disk["meta"]["1"]["schema"] == SCHEMA_VERSION
    assert [m["content"] for _, m in sorted(on_disk["messages"].items(), key=lambda kv: int(kv[0]))] == [
        "안녕?", "안녕하세요!", "no model recorded"]
    assert not list(path.parent.glob(".*tmp*")) and store.warnings == []
    # The migrated session behaves like any other.
    assert store.append(OWNER, V1_ID, {"role": "user", "content": "다시"}, expected_version=1)["version"] == 2
    assert [s["id"] for s in store.list(OWNER)] == [V1_ID]


def test_file_from_a_newer_app_is_left_untouched(tmp_path: Path):
    folder = tmp_path / "owners" / owner_key(OWNER)
    folder.mkdir(parents=True)
    path = folder / f"{V1_ID}.json"
    raw = json.dumps({"meta": {"1": {"schema": 99, "id": V1_ID}}, "messages": {}}).encode()
    path.write_bytes(raw)
    with pytest.warns(SessionWarning, match="newer version"):
        store = SessionStore(tmp_path)
    assert path.read_bytes() == raw and not list(folder.glob("*.corrupt-*"))
    assert store.list(OWNER) == []
    with pytest.raises(SessionError, match="newer version"):
        store.get(OWNER, V1_ID)
