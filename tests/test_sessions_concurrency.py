"""8 threads and 2 processes writing at once: no lost and no duplicated message."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections import Counter
from pathlib import Path

from sessions import SessionStore, StaleVersion

ROOT = Path(__file__).resolve().parents[1]
OWNER = "alice"
THREADS, PER_THREAD = 8, 10
PROCESSES, PER_PROCESS = 2, 25

WRITER = textwrap.dedent(
    """
    import sys
    from sessions import SessionStore
    root, owner, sid, other, name, count = sys.argv[1:7]
    store = SessionStore(root, check_on_open=False)
    print("ready", flush=True)
    sys.stdin.readline()  # wait for "go" so processes and threads really overlap
    for k in range(int(count)):
        store.append(owner, sid, {"role": "user", "content": f"{name}-{k}"})
        store.append(owner, other, {"role": "user", "content": f"{name}-{k}"})
    print("done", flush=True)
    """
)


def test_threads_and_processes_append_concurrently(tmp_path: Path):
    store = SessionStore(tmp_path)
    shared = store.create(OWNER, "shared")["id"]
    other = store.create(OWNER, "other")["id"]
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), OWNER, shared, other, f"proc{p}", str(PER_PROCESS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(PROCESSES)
    ]
    for child in children:
        assert child.stdout.readline().strip() == "ready", child.stderr.read()  # type: ignore[union-attr]

    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def worker(t: int) -> None:
        try:
            start.wait()
            for k in range(PER_THREAD):
                store.append(OWNER, shared, {"role": "user", "content": f"thread{t}-{k}"})
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for child in children:
        child.stdin.write("go\n")  # type: ignore[union-attr]
        child.stdin.flush()  # type: ignore[union-attr]
    start.wait()
    for thread in threads:
        thread.join(60)
    for child in children:
        out, err = child.communicate(timeout=60)
        assert child.returncode == 0 and out.strip() == "done", err
    assert errors == []

    session = SessionStore(tmp_path).get(OWNER, shared)
    contents = Counter(m["content"] for m in session["messages"])
    expected = {f"thread{t}-{k}" for t in range(THREADS) for k in range(PER_THREAD)}
    expected |= {f"proc{p}-{k}" for p in range(PROCESSES) for k in range(PER_PROCESS)}
    assert set(contents) == expected, "lost or foreign messages"
    assert max(contents.values()) == 1, "duplicated messages"
    assert session["version"] == 1 + len(expected)
    assert len({m["id"] for m in session["messages"]}) == len(expected)
    # Each writer's own messages keep their order.
    for p in range(PROCESSES):
        mine = [m["content"] for m in session["messages"] if m["content"].startswith(f"proc{p}-")]
        assert mine == [f"proc{p}-{k}" for k in range(PER_PROCESS)]
    other_session = store.get(OWNER, other)
    assert len(other_session["messages"]) == PROCESSES * PER_PROCESS


def test_concurrent_writers_with_expected_version_never_clobber(tmp_path: Path):
    """Optimistic writers: exactly one write per version wins, the rest get StaleVersion."""
    store = SessionStore(tmp_path)
    sid = store.create(OWNER)["id"]
    wins: list[str] = []
    win_versions: list[int] = []
    stale: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def worker(t: int) -> None:
        start.wait()
        for k in range(5):
            version = store.get(OWNER, sid)["version"]
            try:
                store.append(OWNER, sid, {"role": "user", "content": f"{t}-{k}"}, expected_version=version)
                with lock:
                    wins.append(f"{t}-{k}")
                    win_versions.append(version)
            except StaleVersion as exc:
                with lock:
                    stale.append(exc.current)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    session = store.get(OWNER, sid)
    assert sorted(m["content"] for m in session["messages"]) == sorted(wins)
    assert session["version"] == 1 + len(wins)
    assert len(wins) + len(stale) == THREADS * 5
    # Two writers that read the same version can never both win.
    assert sorted(win_versions) == list(range(1, len(wins) + 1))
