"""A client that leaves while its long history is being trimmed stops the trim: the server logs how many
turns it had counted when it saw the cancel, fewer than the conversation has.

The offline SmolLM2 model (a chat template, 8,192 tokens of context): TURNS short turns all fit, so an
uncancelled trim counts every one of them (seconds on this CPU: each count renders the template over the
kept turns), and without the cancel check nothing is logged at all."""
from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import AppServer
from tests.waiting import wait_for

TURNS = 500


def long_chat() -> list[dict]:
    """TURNS short turns that all fit SmolLM2's 8,192-token context: the trim walks back over every one."""
    messages = []
    for i in range(TURNS - 1):
        messages += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]
    return messages + [{"role": "user", "content": "and the last question?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = AppServer(tmp_path_factory.mktemp("trim"), {"engine": {"demo_size": "smollm2"},
                                                    "generation": {"max_history_turns": TURNS}}).start()
    yield s
    s.stop()


def test_client_leaving_mid_trim_stops_it(server):
    body = {"model": "local-chat", "messages": long_chat(), "max_tokens": 2, "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):  # the client gives up while the server is still trimming
        httpx.post(server.url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(60, read=0.3))
    pattern = re.compile(r"history trim cancelled .* after counting (\d+) of (\d+) turns")
    found = wait_for(lambda: pattern.search(server.log()), "the server to log the cancelled trim", stall=60,
                     detail=lambda: server.log()[-2000:])
    counted, turns = int(found.group(1)), int(found.group(2))
    assert turns == TURNS
    assert counted < TURNS, f"the trim went on to count {counted} of {TURNS} turns after the client left"
    # the server answers the next request at once
    r = httpx.post(server.url + "/v1/chat/completions", timeout=120,
                   json={"model": "local-chat", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
    assert r.status_code == 200, r.text
