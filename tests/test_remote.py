"""engine.backend = "openai": one app (no model loaded) streams from another app serving the demo model.

Real client, real servers: the `openai` client -> front app (RemoteChat over the `openai` package)
-> back app, which requires a key on loopback because one is set (the front sends it from
REMOTE_API_KEY).
"""
import time

import httpx
import pytest
from openai import OpenAI

from engine.config import EngineConfig
from engine.generation import GenerationError, GenerationParams
from engine.prompt import PromptError
from engine.remote import RemoteChat, keep_turns
from tests.conftest import AppServer, free_port
from tests.waiting import wait_for

BACK_KEY = "back-key-81c2"
HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def back(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("back"), env={"APP_API_KEY": BACK_KEY}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def front(tmp_path_factory, back):
    srv = AppServer(tmp_path_factory.mktemp("front"), args=(), config={"engine": {
        "backend": "openai", "remote_base_url": back.url + "/v1", "remote_model": "local-chat",
        "model": "/nonexistent/never-loaded"}}, env={"REMOTE_API_KEY": BACK_KEY, "APP_API_KEY": ""}).start()
    yield srv
    srv.stop()


def served(server) -> int:
    h = httpx.get(server.url + "/health", timeout=10).json()
    return h["api"]["requests"].get("chat_completions", 0)


def test_front_loads_no_model_and_says_where_it_streams_from(front, back):
    h = httpx.get(front.url + "/health", timeout=10).json()
    assert h["rung"] == "remote" and h["backend"] == "openai" and h["serving"] == "remote"
    assert h["model"] == "local-chat" and h["notice"] == ""  # the probe found the model on the back
    assert f"remote: {back.url}/v1 local-chat" in front.log()
    assert "Loading weights" not in front.log()


def test_openai_client_through_both_apps(front, back):
    client = OpenAI(base_url=front.url + "/v1", api_key="unused", max_retries=0)
    before = served(back)
    reply = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=5)
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 5 and reply.usage.prompt_tokens == 4
    chunks = list(client.chat.completions.create(model="local-chat", messages=HI, max_tokens=4, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].usage.completion_tokens == 4
    assert served(back) == before + 2  # both answers came from the back app
    r = httpx.post(front.url + "/v1/chat/completions", timeout=10,
                   json={"model": "local-chat", "messages": [{"role": "assistant", "content": "no user"}]})
    assert r.status_code == 400 and served(back) == before + 2  # refused at the front, never sent


def test_the_back_refuses_without_its_key(back):
    r = httpx.get(back.url + "/v1/models", timeout=10)
    assert r.status_code == 401


def test_a_dropped_client_of_the_front_frees_both_sides(front, back):
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", front.url + "/v1/chat/completions", json={
                "model": "local-chat", "messages": HI, "max_tokens": 4000, "stream": True}) as r:
            lines = r.iter_lines()  # kept, not looped over: leaving a for-loop closes the connection
            times = []
            while len(times) < 8:
                if '"content"' in (line := next(lines)) and '"role"' not in line:
                    times.append(time.perf_counter())
            active = [httpx.get(s.url + "/health", timeout=10).json()["active_requests"] for s in (front, back)]
    assert active == [1, 1]

    def both_idle() -> bool:
        return all(httpx.get(s.url + "/health", timeout=10).json()["active_requests"] == 0 for s in (front, back))

    # "at once" on this machine now: a tenth of the 4000-token reply at the pace seen (at least 3 s)
    soon = max(3.0, 400 * (times[-1] - times[2]) / 5)
    wait_for(both_idle, "both apps to free the dropped stream's slot", stall=soon)


def test_unreachable_remote_is_a_clear_error(tmp_path):
    cfg = EngineConfig(backend="openai", remote_base_url=f"http://127.0.0.1:{free_port()}/v1", remote_model="m")
    chat = RemoteChat.from_config(cfg)
    assert "cannot be reached" in chat.report.notice and chat.report.rung == "remote"
    with pytest.raises(GenerationError, match="cannot be reached"):
        chat.stream(HI, GenerationParams(max_new_tokens=3)).text()
    assert chat.stats().active == 0
    with pytest.raises(PromptError):
        chat.stream([{"role": "robot", "content": "x"}], GenerationParams())


def test_history_is_trimmed_by_turns():
    msgs = [{"role": "system", "content": "s"}]
    for i in range(5):
        msgs += [{"role": "user", "content": f"u{i}"}, {"role": "assistant", "content": f"a{i}"}]
    msgs.append({"role": "user", "content": "last"})
    kept, dropped = keep_turns(msgs, 2)
    assert dropped == 4 and [m["content"] for m in kept] == ["s", "u4", "a4", "last"]
