"""Crash safety: kill -9 mid-append, corrupt files at start and on read, crashed temp files."""

from __future__ import annotations

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

from sessions import SessionCorrupt, SessionNotFound, SessionStore, SessionWarning

ROOT = Path(__file__).resolve().parents[1]
OWNER = "alice"


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


APPEND_FOREVER = textwrap.dedent(
    """
    import sys
    from sessions import SessionStore
    store = SessionStore(sys.argv[1], check_on_open=False)
    owner, sid = sys.argv[2], sys.argv[3]
    k = 0
    while True:
        content = f"message {k} " + "가나다" * (k % 50)
        session = store.append(owner, sid, {"role": "user", "content": content})
        print(session["messages"][-1]["id"], k, flush=True)  # acknowledged only after append returned
        k += 1
    """
)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_acknowledged_appends_survive_sigkill(tmp_path: Path, seed: int):
    store = SessionStore(tmp_path)
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "before the child"})
    child = subprocess.Popen(
        [sys.executable, "-c", APPEND_FOREVER, str(tmp_path), OWNER, sid],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
    )
    acked: list[tuple[str, int]] = []
    first_ack = threading.Event()

    def read_acks() -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            message_id, k = line.split()
            acked.append((message_id, int(k)))
            first_ack.set()

    reader = threading.Thread(target=read_acks, daemon=True)
    reader.start()
    assert first_ack.wait(20), child.stderr.read() if child.poll() is not None else "child never acknowledged"
    time.sleep(random.Random(seed).uniform(0.05, 0.6))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    reader.join(10)
    assert child.returncode == -signal.SIGKILL
    assert len(acked) >= 2, "the child should have appended several messages before the kill"

    reopened = SessionStore(tmp_path)  # start-up check: must not find anything corrupt
    assert reopened.warnings == []
    session = reopened.get(OWNER, sid)
    stored = {m["id"]: m["content"] for m in session["messages"]}
    for message_id, k in acked:
        assert stored.get(message_id, "").startswith(f"message {k} "), f"acknowledged message {k} was lost"
    contents = [m["content"] for m in session["messages"]]
    assert contents[0] == "before the child"
    assert len(contents) in (len(acked) + 1, len(acked) + 2)  # at most one written but not yet acknowledged
    assert session["version"] == len(contents) + 1
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name], "crashed temp files are cleaned on open"
    # The store keeps working after the crash.
    assert reopened.append(OWNER, sid, {"role": "user", "content": "after"})["version"] == session["version"] + 1


DIE_MID_WRITE = textwrap.dedent(
    """
    import os, signal, sys
    import sessions.storage
    from sessions import SessionStore
    store = SessionStore(sys.argv[1], check_on_open=False)
    owner, sid = sys.argv[2], sys.argv[3]
    for k in range(3):
        store.append(owner, sid, {"role": "user", "content": f"acked {k}"})
        print(k, flush=True)
    real_write = os.write
    def write_half_then_die(fd, data):
        real_write(fd, bytes(data)[: len(data) // 2])
        os.kill(os.getpid(), signal.SIGKILL)
    sessions.storage.os.write = write_half_then_die
    store.append(owner, sid, {"role": "user", "content": "never acknowledged"})
    """
)


def test_kill_in_the_middle_of_writing_the_file_keeps_the_previous_version(tmp_path: Path):
    store = SessionStore(tmp_path)
    sid = store.create(OWNER)["id"]
    child = subprocess.run(
        [sys.executable, "-c", DIE_MID_WRITE, str(tmp_path), OWNER, sid],
        capture_output=True, text=True, env=child_env(), timeout=60,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert child.stdout.split() == ["0", "1", "2"]
    reopened = SessionStore(tmp_path)
    assert reopened.warnings == []
    session = reopened.get(OWNER, sid)
    assert [m["content"] for m in session["messages"]] == ["acked 0", "acked 1", "acked 2"]
    assert session["version"] == 4
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_disk_error_during_write_reports_and_keeps_the_old_file(tmp_path: Path, monkeypatch):
    import errno

    import sessions.storage
    from sessions import StorageFailure

    store = SessionStore(tmp_path)
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "safe"})

    def disk_full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sessions.storage.os, "write", disk_full)
    with pytest.raises(StorageFailure, match="No space left"):
        store.append(OWNER, sid, {"role": "user", "content": "lost?"})
    monkeypatch.undo()
    session = store.get(OWNER, sid)
    assert [m["content"] for m in session["messages"]] == ["safe"] and session["version"] == 2
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def _make_chats(root: Path, n: int) -> tuple[SessionStore, list[str]]:
    store = SessionStore(root)
    ids = []
    for i in range(n):
        sid = store.create(OWNER, f"chat {i}")["id"]
        store.append(OWNER, sid, {"role": "user", "content": f"hello {i}"})
        ids.append(sid)
    return store, ids


def _path(root: Path, sid: str) -> Path:
    (path,) = root.glob(f"owners/*/{sid}.json")
    return path


def test_corrupt_files_at_start_are_moved_aside_and_others_load(tmp_path: Path):
    _, ids = _make_chats(tmp_path, 6)
    damage = {
        ids[0]: b"",  # the classic 0-byte history after a crash
        ids[1]: b"null",  # TinyDB would read this as an empty database
        ids[2]: b'{"meta": {"1": {"schema": 2, "id": "trunc',  # truncated JSON
        ids[3]: b'{"meta": {"1": {"schema": 2}}, "messages": {}}',  # valid JSON, not a session
    }
    for sid, raw in damage.items():
        _path(tmp_path, sid).write_bytes(raw)

    with pytest.warns(SessionWarning, match="moved aside"):
        store = SessionStore(tmp_path)

    assert len(store.warnings) == 4
    for sid, raw in damage.items():
        assert any(f"{sid}.json" in w for w in store.warnings)
        (aside,) = tmp_path.glob(f"owners/*/{sid}.json.corrupt-*")
        assert aside.read_bytes() == raw, "the damaged file is kept as it was, never overwritten"
        assert not list(tmp_path.glob(f"owners/*/{sid}.json"))
        with pytest.raises(SessionNotFound):
            store.get(OWNER, sid)
    listed = {s["id"]: s for s in store.list(OWNER)}
    assert set(listed) == {ids[4], ids[5]}
    assert [m["content"] for m in store.get(OWNER, ids[5])["messages"]] == ["hello 5"]
    # A new chat can be created and the survivors still take writes.
    assert store.append(OWNER, ids[4], {"role": "user", "content": "still fine"})["version"] == 3
    new_id = store.create(OWNER)["id"]
    assert {s["id"] for s in store.list(OWNER)} == {ids[4], ids[5], new_id}


def test_file_corrupted_while_running_is_moved_aside_when_read(tmp_path: Path):
    store, ids = _make_chats(tmp_path, 2)
    _path(tmp_path, ids[0]).write_bytes(b"\x00\x00\x00garbage")
    with pytest.warns(SessionWarning):
        with pytest.raises(SessionCorrupt, match="moved aside"):
            store.append(OWNER, ids[0], {"role": "user", "content": "x"})
    assert len(list(tmp_path.glob(f"owners/*/{ids[0]}.json.corrupt-*"))) == 1
    assert [s["id"] for s in store.list(OWNER)] == [ids[1]]
    assert any(ids[0] in w for w in store.warnings)


def test_leftover_temp_file_from_a_crash_is_ignored_and_removed(tmp_path: Path):
    store, ids = _make_chats(tmp_path, 1)
    path = _path(tmp_path, ids[0])
    temp = path.with_name(f".{path.name}.tmp-99999-deadbeef")
    temp.write_bytes(b'{"meta": half written')
    reopened = SessionStore(tmp_path)
    assert not temp.exists()
    assert reopened.warnings == []
    assert [m["content"] for m in reopened.get(OWNER, ids[0])["messages"]] == ["hello 0"]
