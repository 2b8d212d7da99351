"""Presets on the real disk: per owner, kept across restarts, refused with a reason code, crash-safe."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sessions import Limits, PresetError, PresetStore
from sessions.presets import MAX_NAME_CHARS

ROOT = Path(__file__).resolve().parents[1]
OWNER = "alice"
KOREAN = {"system_prompt": "항상 한국어로, 짧게 답하세요.", "temperature": 0.2, "top_p": 0.9, "max_new_tokens": 64,
          "seed": None}


@pytest.fixture
def store(tmp_path: Path) -> PresetStore:
    return PresetStore(tmp_path)


def files_of(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (root / "presets").iterdir()}


def test_presets_are_kept_per_owner_across_restarts(tmp_path: Path, store: PresetStore):
    kind = store.create(OWNER, "  친절한   선생님 ", KOREAN)
    terse = store.create(OWNER, "Terse", {"system_prompt": "Answer in one line."})
    assert kind["name"] == "친절한 선생님" and kind["settings"] == KOREAN
    store.create("bob", "Bob's own", {"system_prompt": "Hi"})

    reopened = PresetStore(tmp_path)        # a new process sees the same file
    assert [p["name"] for p in reopened.list(OWNER)] == ["Terse", "친절한 선생님"]
    assert reopened.get(OWNER, kind["id"])["settings"] == KOREAN
    assert [p["name"] for p in reopened.list("bob")] == ["Bob's own"]
    assert reopened.list("carol") == []
    with pytest.raises(PresetError) as other:       # another owner's id reads as missing
        reopened.get("bob", kind["id"])
    assert other.value.reason == "not_found"

    renamed = reopened.rename(OWNER, terse["id"], "짧게")
    assert renamed["id"] == terse["id"] and renamed["settings"] == terse["settings"]
    reopened.rename(OWNER, kind["id"], "친절한 선생님")     # its own name again is no duplicate
    reopened.delete(OWNER, kind["id"])
    assert [(p["name"], p["id"]) for p in PresetStore(tmp_path).list(OWNER)] == [("짧게", terse["id"])]
    names = sorted(files_of(tmp_path))
    assert len(names) == 2 and all(n.endswith(".json") for n in names)    # one file per owner, no temp left
    assert "alice" not in " ".join(names)                                 # owners are hashed into names


@pytest.mark.parametrize(("name", "settings", "reason", "values"), [
    ("   ", {}, "empty_name", {}),
    (None, {}, "empty_name", {}),
    ("x" * (MAX_NAME_CHARS + 1), {}, "name_too_long", {"n": MAX_NAME_CHARS + 1, "limit": MAX_NAME_CHARS}),
    ("TERSE", {}, "duplicate", {"name": "TERSE"}),          # names compare without case
    ("new", [1, 2], "bad_settings", {}),
    ("new", {"system_prompt": 3}, "bad_settings", {}),
    ("new", {"system_prompt": "x" * 70_000}, "bad_settings", {}),
])
def test_bad_input_is_refused_with_its_reason_and_nothing_changes(tmp_path: Path, store: PresetStore, name,
                                                                  settings, reason, values):
    store.create(OWNER, "Terse", {"system_prompt": "Answer in one line."})
    before = files_of(tmp_path)
    with pytest.raises(PresetError) as refused:
        store.create(OWNER, name, settings)
    assert refused.value.reason == reason and refused.value.values == values
    assert files_of(tmp_path) == before


def test_rename_delete_and_the_limit_on_how_many(tmp_path: Path):
    store = PresetStore(tmp_path, max_presets=3)
    ids = [store.create(OWNER, f"p{i}", {"system_prompt": str(i)})["id"] for i in range(3)]
    with pytest.raises(PresetError) as full:
        store.create(OWNER, "p3", {})
    assert full.value.reason == "too_many" and full.value.values == {"limit": 3}
    with pytest.raises(PresetError) as taken:
        store.rename(OWNER, ids[0], "P1")
    assert taken.value.reason == "duplicate"
    with pytest.raises(PresetError) as gone:
        store.rename(OWNER, "0" * 16, "fresh")
    assert gone.value.reason == "not_found"
    store.delete(OWNER, ids[1])
    with pytest.raises(PresetError) as twice:
        store.delete(OWNER, ids[1])
    assert twice.value.reason == "not_found"
    store.create(OWNER, "p3", {})           # room again
    assert [p["name"] for p in store.list(OWNER)] == ["p0", "p2", "p3"]


def test_a_damaged_file_is_moved_aside_never_overwritten(tmp_path: Path, store: PresetStore):
    store.create(OWNER, "Terse", {})
    (path,) = (tmp_path / "presets").iterdir()
    path.write_bytes(b"")                   # what TinyDB's own storage leaves after a crash mid-write
    with pytest.warns(UserWarning, match="moved aside"), pytest.raises(PresetError) as damaged:
        store.list(OWNER)
    assert damaged.value.reason == "corrupt"
    kept = [p for p in (tmp_path / "presets").iterdir() if ".corrupt-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == b""
    assert store.list(OWNER) == []          # a new list starts; the damaged file stays aside
    store.create(OWNER, "Terse", {})
    assert [p["name"] for p in store.list(OWNER)] == ["Terse"]


def test_two_stores_saving_at_once_both_land(tmp_path: Path):
    stores = [PresetStore(tmp_path), PresetStore(tmp_path)]     # as two processes would, each with its locks

    def save(k: int) -> None:
        for i in range(15):
            stores[k].create(OWNER, f"s{k}-{i}", {"temperature": i / 10})

    threads = [threading.Thread(target=save, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(PresetStore(tmp_path).list(OWNER)) == 30


CREATE_FOREVER = textwrap.dedent(
    """
    import sys
    from sessions import PresetStore
    store = PresetStore(sys.argv[1], max_presets=10_000)
    k = 0
    while True:
        preset = store.create("alice", f"preset {k}", {"system_prompt": "가나다" * (k % 40)})
        print(preset["id"], flush=True)      # acknowledged only after create returned
        k += 1
    """
)


def test_acknowledged_presets_survive_sigkill(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    child = subprocess.Popen([sys.executable, "-c", CREATE_FOREVER, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    acked: list[str] = []
    enough = threading.Event()

    def read() -> None:
        for line in child.stdout:  # type: ignore[union-attr]
            acked.append(line.strip())
            if len(acked) >= 5:
                enough.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert enough.wait(30), child.stderr.read() if child.poll() is not None else "child never acknowledged"
    time.sleep(0.2)
    os.kill(child.pid, signal.SIGKILL)
    child.wait(10)
    reader.join(10)
    (path,) = [p for p in (tmp_path / "presets").iterdir() if p.suffix == ".json"]
    json.loads(path.read_bytes())           # whole, never half-written
    stored = {p["id"] for p in PresetStore(tmp_path).list(OWNER)}
    assert set(acked) <= stored


def test_limits_are_the_session_settings_limits(tmp_path: Path):
    store = PresetStore(tmp_path, limits=Limits(max_settings_bytes=100))
    store.create(OWNER, "small", {"system_prompt": "x" * 50})
    with pytest.raises(PresetError) as big:
        store.create(OWNER, "big", {"system_prompt": "x" * 200})
    assert big.value.reason == "bad_settings" and "100" in str(big.value)
