"""Owner isolation: another owner's id must behave exactly like a missing id, for every operation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from sessions import AttachmentNotFound, SessionNotFound, SessionStore

ALICE, BOB = "alice", "bob"
MISSING_ID = "0" * 32


def reply(text: str) -> dict:
    return {"role": "assistant", "content": text, "provenance": {"model": "m", "rung": "4bit"}}


@pytest.fixture
def world(tmp_path: Path) -> dict:
    store = SessionStore(tmp_path)
    ref = store.put_attachment(b"\x89PNG alice's photo", ".png")
    sid = store.create(ALICE, "alice's secret plans")["id"]
    store.append(ALICE, sid, {"role": "user", "content": "secret question", "attachments": [ref]})
    store.append(ALICE, sid, reply("secret answer"))
    store.create(BOB, "bob's chat")
    files = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "locks" not in p.parts}
    return {"store": store, "sid": sid, "ref": ref, "files": files, "root": tmp_path}


WRITE_OPS: dict[str, Callable[[SessionStore, str, str, str], object]] = {
    "get": lambda s, owner, sid, ref: s.get(owner, sid),
    "rename": lambda s, owner, sid, ref: s.rename(owner, sid, "pwned"),
    "delete": lambda s, owner, sid, ref: s.delete(owner, sid),
    "append": lambda s, owner, sid, ref: s.append(owner, sid, {"role": "user", "content": "hi"}),
    "append_with_version": lambda s, owner, sid, ref: s.append(
        owner, sid, {"role": "user", "content": "hi"}, expected_version=3
    ),
    "replace_last_assistant": lambda s, owner, sid, ref: s.replace_last_assistant(owner, sid, reply("x")),
    "truncate": lambda s, owner, sid, ref: s.truncate(owner, sid, 0),
    "update_settings": lambda s, owner, sid, ref: s.update_settings(owner, sid, {"system_prompt": "x"}),
    "export_json": lambda s, owner, sid, ref: s.export(owner, sid, "json"),
    "export_markdown": lambda s, owner, sid, ref: s.export(owner, sid, "markdown"),
    "attachment_path": lambda s, owner, sid, ref: s.attachment_path(owner, ref),
}


@pytest.mark.parametrize("op", sorted(WRITE_OPS))
def test_other_owner_gets_not_found_and_changes_nothing(world: dict, op: str):
    store, sid, ref = world["store"], world["sid"], world["ref"]
    call = WRITE_OPS[op]
    with pytest.raises(SessionNotFound) as foreign:
        call(store, BOB, sid, ref)
    # Exactly what a missing id gives: same class, same wording, no hint that the id exists.
    missing_ref = "f" * 64 + ".png"
    with pytest.raises(SessionNotFound) as missing:
        call(store, BOB, MISSING_ID, missing_ref)
    assert type(foreign.value) is type(missing.value)
    assert str(foreign.value).replace(sid, "<id>").replace(ref, "<ref>") == str(missing.value).replace(
        MISSING_ID, "<id>"
    ).replace(missing_ref, "<ref>")
    if op == "attachment_path":
        assert isinstance(foreign.value, AttachmentNotFound)
    # Alice's files (session, attachment, markers) are byte-for-byte unchanged.
    now = {p: p.read_bytes() for p in world["root"].rglob("*") if p.is_file() and "locks" not in p.parts}
    assert now == world["files"]
    # And Alice still sees everything.
    assert store.attachment_path(ALICE, ref).read_bytes() == b"\x89PNG alice's photo"
    assert [m["content"] for m in store.get(ALICE, sid)["messages"]] == ["secret question", "secret answer"]


def test_list_search_and_export_all_show_only_own_sessions(world: dict):
    store, sid = world["store"], world["sid"]
    assert [s["title"] for s in store.list(BOB)] == ["bob's chat"]
    assert store.search(BOB, "secret") == []
    assert [h["session_id"] for h in store.search(ALICE, "secret")] == [sid]
    exported = json.loads(store.export(BOB))
    assert [s["title"] for s in exported["sessions"]] == ["bob's chat"]
    assert "secret" not in store.export(BOB, fmt="markdown")
    assert store.list("carol") == []


@pytest.mark.parametrize("op", ["get", "rename", "append", "delete"])
def test_path_traversal_ids_cannot_reach_another_owners_file(world: dict, op: str):
    store, sid, root = world["store"], world["sid"], world["root"]
    (alice_file,) = root.glob(f"owners/*/{sid}.json")
    alice_dir = alice_file.parent.name
    for sneaky in (f"../{alice_dir}/{sid}", f"../../owners/{alice_dir}/{sid}", f"{sid}/../{sid}", f"{sid}.json"):
        with pytest.raises(SessionNotFound):
            WRITE_OPS[op](store, BOB, sneaky, world["ref"])
    now = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and "locks" not in p.parts}
    assert now == world["files"] and store.warnings == []


def test_import_with_another_owners_id_never_touches_their_session(world: dict):
    store, sid = world["store"], world["sid"]
    forged = {"sessions": [{"id": sid, "title": "forged", "messages": [{"role": "user", "content": "overwrite?"}]}]}
    report = store.import_json(BOB, json.dumps(forged))
    assert len(report.imported) == 1 and report.skipped == []
    alice_view = store.get(ALICE, sid)
    assert alice_view["title"] == "alice's secret plans" and alice_view["version"] == 3
    assert store.get(BOB, report.imported[0])["title"] == "forged"
    assert "forged" not in [s["title"] for s in store.list(ALICE)]
