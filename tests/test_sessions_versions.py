"""Versions of messages on the real store on disk: Retry and Edit keep what they replace, ‹ n/m › switches,
the chat continues from the version shown, export/import carry them, old files load, kill -9 loses none."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sessions import SCHEMA_VERSION, InvalidSessionData, SessionStore
from sessions.model import clean_message, owner_key
from sessions.versions import MAX_DEPTH, add_version, all_messages, nesting
from tests.test_sessions_crash import child_env

OWNER = "alice"


def reply(text: str, model: str = "mistral-7b", adapter: str | None = None, temperature: float = 0.7) -> dict:
    prov = {"model": model, "rung": "8bit", "adapter": adapter, "sampling": {"temperature": temperature}}
    return {"role": "assistant", "content": text, "provenance": prov}


def texts(session: dict) -> list[str]:
    return [m["content"] for m in session["messages"]]


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path)


def test_retry_and_edit_keep_versions_and_the_chat_continues_from_the_one_shown(store: SessionStore, tmp_path: Path):
    sid = store.create(OWNER)["id"]
    photo = store.put_attachment(b"\x89PNG fake bytes of a photo", ".png")
    store.append(OWNER, sid, {"role": "user", "content": "첫 질문", "attachments": [photo]})
    first = store.append(OWNER, sid, reply("A", adapter="ko-chat"))["messages"][1]
    # Retry: a new version of the reply, shown; the old one kept with its own provenance.
    session = store.add_version(OWNER, sid, 1, reply("B", model="other-model", temperature=1.5))
    assert texts(session) == ["첫 질문", "B"]
    head = session["messages"][1]
    assert head["shown"] == 1 and [[m["content"] for m in b] for b in head["versions"]] == [["A"]]
    assert head["versions"][0][0] == first, "the earlier version is kept whole: id, time, provenance"
    assert head["provenance"]["model"] == "other-model" and head["provenance"]["sampling"]["temperature"] == 1.5
    # ‹ 1/2 ›: version 1 is shown, and the conversation continues from it.
    session = store.show_version(OWNER, sid, 1, 0)
    assert texts(session) == ["첫 질문", "A"] and session["messages"][1]["shown"] == 0
    assert session["messages"][1]["provenance"]["adapter"] == "ko-chat"
    store.append(OWNER, sid, {"role": "user", "content": "follow-up on A"})
    store.append(OWNER, sid, reply("C"))
    # Switching to B shows B's branch (no follow-up); back to A brings the follow-up back.
    assert texts(store.show_version(OWNER, sid, 1, 1)) == ["첫 질문", "B"]
    assert texts(store.show_version(OWNER, sid, 1, 0)) == ["첫 질문", "A", "follow-up on A", "C"]
    # Edit of the first message: the earlier text with everything after it is kept as one version.
    session = store.add_version(OWNER, sid, 0, {"role": "user", "content": "고친 질문"})
    assert texts(session) == ["고친 질문"] and session["messages"][0]["shown"] == 1
    # The photo is now used only by the hidden version: its file stays, and stays reachable by its owner.
    assert store.collect_garbage(min_age_s=0) == []
    assert store.attachment_path(OWNER, photo).read_bytes() == b"\x89PNG fake bytes of a photo"
    kept = session["messages"][0]["versions"][0]
    assert [m["content"] for m in kept] == ["첫 질문", "A", "follow-up on A", "C"]
    assert kept[1]["shown"] == 0 and kept[1]["versions"][0][0]["content"] == "B", "forks nest inside versions"
    store.append(OWNER, sid, reply("D"))
    # Continue grows the reply shown in place: its versions stay with it.
    store.add_version(OWNER, sid, 1, reply("E"))
    grown = {**reply("E, continued"), "id": store.get(OWNER, sid)["messages"][1]["id"]}
    session = store.replace_last_assistant(OWNER, sid, grown)
    assert texts(session) == ["고친 질문", "E, continued"]
    assert [[m["content"] for m in b] for b in session["messages"][1]["versions"]] == [["D"]]
    # Everything is on disk: a fresh store reads the same tree, and the summary counts the branch shown.
    reopened = SessionStore(tmp_path)
    assert reopened.get(OWNER, sid) == session and reopened.warnings == []
    assert reopened.list(OWNER)[0]["message_count"] == 2
    assert texts(reopened.show_version(OWNER, sid, 0, 0)) == ["첫 질문", "A", "follow-up on A", "C"]
    assert reopened.get(OWNER, sid)["messages"][0]["attachments"] == [photo]
    every = list(all_messages(reopened.get(OWNER, sid)["messages"]))
    assert sorted(m["content"] for m in every) == sorted(
        ["첫 질문", "A", "B", "follow-up on A", "C", "고친 질문", "D", "E, continued"])
    assert len({m["id"] for m in every}) == len(every)


def test_search_finds_the_versions_shown_only_and_follows_a_switch(store: SessionStore, tmp_path: Path):
    """Search reads what the chat shows (#25): a hit opens the chat, and a word only in a hidden version would
    open a chat where it is nowhere to be seen. Switching (‹ n/m ›) brings it into search; a fresh store on the
    same folder (a restart) answers the same."""
    sid = store.create(OWNER, "trip")["id"]
    store.append(OWNER, sid, {"role": "user", "content": "제주 여행 계획"})
    store.append(OWNER, sid, reply("Visit Hallasan at dawn"))
    store.add_version(OWNER, sid, 1, reply("Try the Udo ferry"))          # Retry: Hallasan is hidden now
    store.add_version(OWNER, sid, 0, {"role": "user", "content": "부산 여행 계획"})   # Edit: 제주 is hidden now
    reopened = SessionStore(tmp_path)
    for query in ("hallasan", "udo", "제주"):
        assert reopened.search(OWNER, query) == [], query
    hit, = reopened.search(OWNER, "부산")
    assert hit["session_id"] == sid and hit["message_index"] == 0
    reopened.show_version(OWNER, sid, 0, 0)                                # ‹ back to the 제주 question
    assert [h["session_id"] for h in reopened.search(OWNER, "제주")] == [sid]
    assert reopened.search(OWNER, "부산") == [] and reopened.search(OWNER, "hallasan") == []
    reopened.show_version(OWNER, sid, 1, 0)                                # and its first reply
    hit, = SessionStore(tmp_path).search(OWNER, "HALLASAN")
    assert hit["message_index"] == 1 and "Hallasan" in hit["snippet"]


def test_bad_version_requests_are_refused_and_change_nothing(store: SessionStore):
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "q"})
    session = store.append(OWNER, sid, reply("A"))
    with pytest.raises(InvalidSessionData, match="1 version"):
        store.show_version(OWNER, sid, 1, 1)
    with pytest.raises(InvalidSessionData, match="no message 5"):
        store.show_version(OWNER, sid, 5, 0)
    with pytest.raises(InvalidSessionData, match="its role \\(assistant\\), not user"):
        store.add_version(OWNER, sid, 1, {"role": "user", "content": "not a reply"})
    with pytest.raises(InvalidSessionData, match="cannot bring versions"):
        store.add_version(OWNER, sid, 1, {**reply("x"), "versions": [[reply("y")]], "shown": 0})
    assert store.get(OWNER, sid) == session


def test_versions_nested_too_deep_are_refused_before_the_write(store: SessionStore):
    """Forks nest when a branch holding forks is hidden; past MAX_DEPTH a new version is refused up front (written,
    the file would read back as damaged)."""
    messages: list[dict] = []
    for i in range(MAX_DEPTH + 1):
        messages += [{"role": "user", "content": f"q{i}"}, reply(f"a{i}")]
    messages = [clean_message(m, None) for m in messages]
    for i in range(MAX_DEPTH, 0, -1):       # each fork hides the one after it: nesting grows by one
        messages = add_version(messages, 2 * i + 1, clean_message(reply(f"b{i}"), None))
    report = store.import_json(OWNER, json.dumps({"sessions": [{"title": "deep", "messages": messages}]}))
    (sid,) = report.imported
    deep = store.get(OWNER, sid)
    assert nesting(deep["messages"]) == MAX_DEPTH
    with pytest.raises(InvalidSessionData, match=f"nest more than {MAX_DEPTH} deep"):
        store.add_version(OWNER, sid, 1, reply("one level too many"))
    assert store.get(OWNER, sid) == deep and store.warnings == []


def test_export_and_import_carry_every_version(store: SessionStore, tmp_path: Path):
    sid = store.create(OWNER, "버전")["id"]
    store.append(OWNER, sid, {"role": "user", "content": "q"})
    store.append(OWNER, sid, reply("first answer", model="model-one"))
    store.add_version(OWNER, sid, 1, reply("second answer", model="model-two"))
    original = store.show_version(OWNER, sid, 1, 0)
    exported = store.export(OWNER, sid, "json")
    payload = json.loads(exported)
    assert payload["schema"] == SCHEMA_VERSION
    assert payload["sessions"][0]["messages"][1]["versions"][0][0]["content"] == "second answer"
    other = SessionStore(tmp_path / "elsewhere")
    report = other.import_json("bob", exported)
    assert report.skipped == [] and len(report.imported) == 1
    back = other.get("bob", report.imported[0])
    assert back["messages"] == original["messages"], "versions, provenance and the one shown come back"
    assert texts(other.show_version("bob", back["id"], 1, 1)) == ["q", "second answer"]
    markdown = store.export(OWNER, sid, "markdown")
    assert "version 1 of 2" in markdown and "**Version 2 of 2** (not shown)" in markdown
    assert "> second answer" in markdown and "model `model-two`" in markdown
    # A malformed version in an import file: that chat is skipped with the reason, the others still come in.
    broken = json.loads(exported)
    broken["sessions"][0]["messages"][1].pop("shown")
    bad_role = json.loads(exported)
    bad_role["sessions"][0]["messages"][1]["versions"][0][0]["role"] = "user"
    bad_role["sessions"][0]["messages"][1]["versions"][0][0].pop("provenance")
    text = json.dumps({**payload, "sessions": broken["sessions"] + bad_role["sessions"] + payload["sessions"]})
    report = other.import_json("bob", text)
    reasons = dict(report.skipped)
    assert sorted(reasons) == [0, 1] and len(report.imported) == 1
    assert "both 'versions' and 'shown'" in reasons[0]
    assert "starts with a message of role user, not assistant" in reasons[1]


def test_schema_2_file_loads_and_is_upgraded(tmp_path: Path):
    """A chat written before versions existed (schema 2, by hand) opens, is rewritten as the current schema,
    and takes versions."""
    sid = "0123456789abcdef0123456789abcdef"
    folder = tmp_path / "owners" / owner_key(OWNER)
    folder.mkdir(parents=True)
    meta = {"schema": 2, "id": sid, "owner_key": owner_key(OWNER), "title": "예전 대화", "settings": {},
            "version": 3, "created_at": 1_700_000_000.0, "updated_at": 1_700_000_100.0}
    user = {"id": "a" * 32, "role": "user", "content": "안녕", "attachments": [], "status": "complete",
            "created_at": 1_700_000_000.0}
    answer = {"id": "b" * 32, "role": "assistant", "content": "반가워요", "attachments": [], "status": "complete",
              "created_at": 1_700_000_050.0, "provenance": {"model": "mistral-7b", "rung": "fp16"}}
    path = folder / f"{sid}.json"
    path.write_text(json.dumps({"meta": {"1": meta}, "messages": {"1": user, "2": answer}}), "utf-8")
    store = SessionStore(tmp_path)      # the start-up check migrates it
    assert store.warnings == []
    on_disk = json.loads(path.read_text("utf-8"))
    assert SCHEMA_VERSION == 3 and on_disk["meta"]["1"]["schema"] == 3
    session = store.get(OWNER, sid)
    assert session["messages"] == [user, answer] and session["version"] == 3 and session["title"] == "예전 대화"
    session = store.add_version(OWNER, sid, 1, reply("다시"), expected_version=3)
    assert texts(session) == ["안녕", "다시"] and session["messages"][1]["versions"] == [[answer]]


VERSIONS_FOREVER = textwrap.dedent(
    """
    import sys
    from sessions import SessionStore
    store = SessionStore(sys.argv[1], check_on_open=False)
    owner, sid = sys.argv[2], sys.argv[3]
    prov = {"model": "m", "rung": "fp16"}
    k = 0
    while True:
        session = store.add_version(owner, sid, 1, {"role": "assistant", "content": f"version {k}", "provenance": prov})
        print("add", session["messages"][1]["id"], k, flush=True)    # acknowledged only after it returned
        session = store.show_version(owner, sid, 1, (7 * k) % (k + 2))   # switch back and forth
        print("show", session["messages"][1]["id"], k, flush=True)
        k += 1
    """
)


@pytest.mark.parametrize("seed", [1, 2])
def test_acknowledged_versions_survive_sigkill(tmp_path: Path, seed: int):
    store = SessionStore(tmp_path)
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "q"})
    store.append(OWNER, sid, reply("the first reply"))
    child = subprocess.Popen([sys.executable, "-c", VERSIONS_FOREVER, str(tmp_path), OWNER, sid],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())
    acked: list[tuple[str, str, int]] = []
    first_ack = threading.Event()

    def read_acks() -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            what, message_id, k = line.split()
            acked.append((what, message_id, int(k)))
            first_ack.set()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    assert first_ack.wait(20), child.stderr.read() if child.poll() is not None else "child never acknowledged"
    time.sleep(random.Random(seed).uniform(0.2, 0.8))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    reader.join(10)
    assert child.returncode == -signal.SIGKILL
    added = [(mid, k) for what, mid, k in acked if what == "add"]
    assert len(added) >= 2, "the child should have made several versions before the kill"

    reopened = SessionStore(tmp_path)
    assert reopened.warnings == []
    session = reopened.get(OWNER, sid)
    replies = {m["id"]: m["content"] for m in all_messages(session["messages"][1:])}
    for message_id, k in added:
        assert replies.get(message_id) == f"version {k}", f"acknowledged version {k} was lost"
    assert "the first reply" in replies.values()
    assert len(replies) in (len(added) + 1, len(added) + 2)    # at most one written but not yet acknowledged
    assert session["messages"][1]["shown"] + 1 <= len(replies) == len(session["messages"][1]["versions"]) + 1
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    # The store keeps working: one more version, and any version can be shown.
    assert texts(reopened.add_version(OWNER, sid, 1, reply("after")))[-1] == "after"
    assert texts(reopened.show_version(OWNER, sid, 1, 0)) == ["q", "the first reply"]


DIE_MID_VERSION = textwrap.dedent(
    """
    import os, signal, sys
    import sessions.storage
    from sessions import SessionStore
    store = SessionStore(sys.argv[1], check_on_open=False)
    owner, sid = sys.argv[2], sys.argv[3]
    prov = {"model": "m", "rung": "fp16"}
    store.add_version(owner, sid, 1, {"role": "assistant", "content": "acked", "provenance": prov})
    print("acked", flush=True)
    real_write = os.write
    def write_half_then_die(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    sessions.storage.os.write = write_half_then_die
    store.add_version(owner, sid, 1, {"role": "assistant", "content": "never acknowledged", "provenance": prov})
    """
)


def test_kill_while_writing_a_version_keeps_the_previous_file(tmp_path: Path):
    store = SessionStore(tmp_path)
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "q"})
    store.append(OWNER, sid, reply("original"))
    child = subprocess.run([sys.executable, "-c", DIE_MID_VERSION, str(tmp_path), OWNER, sid],
                           capture_output=True, text=True, env=child_env(), timeout=60)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == ["acked"]
    reopened = SessionStore(tmp_path)
    assert reopened.warnings == []
    session = reopened.get(OWNER, sid)
    assert texts(session) == ["q", "acked"] and session["messages"][1]["versions"][0][0]["content"] == "original"
    assert session["version"] == 4
