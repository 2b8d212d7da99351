"""tests/waiting.py: a wait gets more time while what it watches moves, and fails with a reason when it stops."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import AppServer
from tests.waiting import WaitTimeout, combined, file_size, process_work, wait_for


def test_returns_the_first_truthy_value():
    calls = iter([None, 0, "", "ready"])
    assert wait_for(lambda: next(calls), "the fourth answer", stall=5, poll=0.01) == "ready"


def test_nothing_moving_fails_after_the_stall_time_naming_what_it_waited_for():
    started = time.monotonic()
    with pytest.raises(WaitTimeout, match=r"gave up waiting for the door to open after \d+s: nothing moved for 1s"):
        wait_for(lambda: False, "the door to open", progress=lambda: 42, stall=1.0, poll=0.05,
                 detail=lambda: "door log: locked")
    assert 1.0 <= time.monotonic() - started < 5.0


def test_the_failure_message_carries_the_detail_and_the_last_progress():
    with pytest.raises(WaitTimeout) as info:
        wait_for(lambda: False, "x", progress=lambda: "still 7 tokens", stall=0.3, poll=0.05,
                 detail=lambda: "server log:\nloading model")
    assert "last progress seen: 'still 7 tokens'" in str(info.value) and "server log:\nloading model" in str(info.value)


def test_progress_buys_time_beyond_the_stall_time():
    counter = iter(range(10_000))
    started = time.monotonic()
    # it would fail at 0.5 s without progress; the counter moves every poll, so it waits the full 1.5 s
    assert wait_for(lambda: time.monotonic() - started > 1.5, "1.5 s to pass", progress=lambda: next(counter),
                    stall=0.5, poll=0.05)


def test_the_ceiling_ends_a_wait_even_while_things_move():
    counter = iter(range(10_000))
    with pytest.raises(WaitTimeout, match="the 1s ceiling passed while it was still moving"):
        wait_for(lambda: False, "never", progress=lambda: next(counter), stall=5, ceiling=1.0, poll=0.05)


def test_a_growing_log_file_is_progress(tmp_path):
    log = tmp_path / "writer.log"
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "for i in range(30):\n"
        f"    open({str(log)!r}, 'a').write(f'line {{i}}\\n'); time.sleep(0.1)\n")])
    try:
        # done when 25 lines are there (about 2.5 s), far longer than the 1 s stall: the growth keeps it going
        assert wait_for(lambda: log.exists() and log.read_text().count("\n") >= 25, "25 log lines",
                        progress=file_size(log), stall=1.0, poll=0.05)
    finally:
        writer.wait(10)


def test_a_process_burning_cpu_is_progress_and_a_sleeping_one_is_not():
    busy = subprocess.Popen([sys.executable, "-c", "import time\nend = time.time() + 20\nwhile time.time() < end: pass"])
    idle = subprocess.Popen(["sleep", "30"])
    try:
        started = time.monotonic()
        assert wait_for(lambda: time.monotonic() - started > 4.0, "4 s to pass",
                        progress=process_work(busy.pid), stall=2.0, poll=0.05)
        with pytest.raises(WaitTimeout, match="nothing moved"):
            wait_for(lambda: False, "a sleeping process", progress=combined(process_work(idle.pid)),
                     stall=1.5, poll=0.05)
    finally:
        for proc in (busy, idle):
            proc.kill()
            proc.wait()


def test_a_frozen_app_fails_start_with_the_log_instead_of_hanging(tmp_path):
    """The real fault: the app process stops moving (here SIGSTOP once its log shows the model) before /health."""
    srv = AppServer(tmp_path)
    frozen = threading.Event()

    def freeze_when_loading() -> None:
        while srv.proc is None or "[model]" not in srv.log():
            time.sleep(0.01)
        os.kill(srv.proc.pid, signal.SIGSTOP)
        frozen.set()

    threading.Thread(target=freeze_when_loading, daemon=True).start()
    try:
        with pytest.raises(WaitTimeout) as info:
            srv.start(timeout=5)
        assert frozen.is_set()
        message = str(info.value)
        assert f"the app at {srv.url} to answer /health" in message and "nothing moved for" in message
        assert "server log:" in message and "[model]" in message
    finally:
        if srv.proc is not None:
            os.kill(srv.proc.pid, signal.SIGCONT)
        srv.stop()
