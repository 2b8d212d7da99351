"""engine.backend = "openai": one app (no model loaded) streams from another app serving the demo model.

Real client, real servers: the `openai` client -> front app (RemoteChat over the `openai` package)
-> back app, which requires a key on loopback because one is set (the front sends it from
REMOTE_API_KEY).
"""
import time

import httpx
import pytest
from openai import OpenAI

from config import EngineConfig
from engine.serving.generation import GenerationParams
from engine.errors import GenerationError, PromptError
from engine.serving.remote import RemoteChat, keep_turns
from tests.conftest import AppServer, module_server, free_port
from tests.waiting import wait_for

BACK_KEY = "back-key-81c2"
HI = [{"role": "user", "content": "hi"}]


back = module_server("back", name="back", env={"APP_API_KEY": BACK_KEY})


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


def test_penalties_and_seed_reach_the_remote_server(front, back):
    """The front passes presence/frequency/repetition penalties and the seed on: its reply is the back's own reply
    to them."""
    via_front = OpenAI(base_url=front.url + "/v1", api_key="unused", max_retries=0)
    direct = OpenAI(base_url=back.url + "/v1", api_key=BACK_KEY, max_retries=0)
    # 64 tokens at least: the tiny model's greedy reply repeats itself by then, so a penalty changes it
    ask = dict(model="local-chat", messages=[{"role": "user", "content": "Tell me about the sea."}], max_tokens=64,
               extra_body={"min_tokens": 64})
    seeded = dict(ask, temperature=1.0, seed=11)

    def text(client, **kw):
        return client.chat.completions.create(**kw).choices[0].message.content

    plain = text(direct, **dict(ask, temperature=0))
    for penalty in ({"frequency_penalty": 2.0}, {"presence_penalty": 2.0},
                    {"extra_body": {"min_tokens": 64, "repetition_penalty": 2.0}}):
        penalised = dict(ask, temperature=0, **penalty)
        assert text(via_front, **penalised) == text(direct, **penalised) != plain, penalty
    assert text(via_front, **seeded) == text(direct, **seeded)


def test_the_back_refuses_without_its_key(back):
    r = httpx.get(back.url + "/v1/models", timeout=10)
    assert r.status_code == 401


def test_a_dropped_client_of_the_front_frees_both_sides(front, back):
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", front.url + "/v1/chat/completions", json={
                "model": "local-chat", "messages": HI, "max_tokens": 4000, "min_tokens": 4000, "stream": True}) as r:
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


# --- against a real `transformers serve` (same pinned transformers, the tiny demo model folder, no CB) ---

class HfServe:
    """`transformers serve FOLDER` in a subprocess: Hugging Face's own OpenAI-compatible server."""

    def __init__(self, folder, log_path):
        import subprocess
        import sys
        from pathlib import Path

        self.folder, self.port = str(folder), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = open(log_path, "ab")
        self.log_path = log_path
        cli = Path(sys.executable).parent / "transformers"
        # Without continuous batching: with it, on a CPU it sizes its cache from RAM (GBs).
        self.proc = subprocess.Popen([str(cli), "serve", self.folder, "--host", "127.0.0.1", "--port", str(self.port),
                                      "--device", "cpu", "--dtype", "bfloat16", "--no-continuous-batching"],
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited:\n{self.log_path.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/health", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(30)
        self._log.close()


@pytest.fixture(scope="module")
def hf_serve(tmp_path_factory, tiny_model_dir):
    from tests.waiting import file_size

    tmp = tmp_path_factory.mktemp("hfserve")
    srv = HfServe(tiny_model_dir, tmp / "serve.log")
    try:
        wait_for(srv.up, "transformers serve to answer /health", progress=file_size(srv.log_path), stall=120)
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def hf_front(tmp_path_factory, hf_serve):
    srv = AppServer(tmp_path_factory.mktemp("hffront"), args=(), config={"engine": {
        "backend": "openai", "remote_base_url": hf_serve.url + "/v1", "remote_model": hf_serve.folder,
        "model": "/nonexistent/never-loaded"}}, env={"APP_API_KEY": ""}).start()
    yield srv
    srv.stop()


def test_transformers_serve_behind_the_app_chat_stream_and_stop(hf_front, hf_serve):
    client = OpenAI(base_url=hf_front.url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=6, temperature=0)
    full = reply.choices[0].message.content
    assert full and reply.choices[0].finish_reason == "length" and reply.usage.completion_tokens == 6
    chunks = list(client.chat.completions.create(model="local-chat", messages=HI, max_tokens=6, temperature=0,
                                                 stream=True))
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == full  # greedy: the same text, in pieces
    assert chunks[-1].choices[0].finish_reason == "length"
    # transformers serve sends the stop string itself; OpenAI (and we) do not.
    stop = full[len(full) // 2:len(full) // 2 + 2]
    cut = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=6, temperature=0, stop=[stop])
    assert cut.choices[0].message.content == full[:full.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    # min_tokens is passed on, not dropped: transformers serve does not take it and says so.
    r = httpx.post(hf_front.url + "/v1/chat/completions", timeout=60,
                   json={"model": "local-chat", "messages": HI, "max_tokens": 6, "min_tokens": 6})
    assert r.status_code == 502 and "min_tokens" in r.json()["error"]["message"], r.text


def test_transformers_serve_refusal_and_absence_are_named_gateway_errors(tmp_path, hf_serve):
    wrong = AppServer(tmp_path, args=(), config={"engine": {
        "backend": "openai", "remote_base_url": hf_serve.url + "/v1", "remote_model": "not-the-pinned-model",
        "model": "/nonexistent/never-loaded"}}, env={"APP_API_KEY": ""}).start()
    try:
        r = httpx.post(wrong.url + "/v1/chat/completions", timeout=60,
                       json={"model": "local-chat", "messages": HI, "max_tokens": 3})
        assert r.status_code == 502, r.text
        err = r.json()["error"]
        assert err["code"] == "remote_server_error" and err["type"] == "server_error"
        assert f"the remote server {hf_serve.url}/v1 answered 400" in err["message"]
        assert "not-the-pinned-model" in err["message"]   # its own reason, passed through
        assert httpx.get(wrong.url + "/health", timeout=10).status_code == 200   # the app keeps serving
        assert httpx.get(wrong.url + "/", timeout=30).status_code == 200         # and its UI
    finally:
        wrong.stop()


def test_a_dropped_client_frees_the_front_behind_transformers_serve(hf_front):
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", hf_front.url + "/v1/chat/completions", json={
                "model": "local-chat", "messages": HI, "max_tokens": 2000, "stream": True}) as r:
            lines = r.iter_lines()
            next(line for line in lines if '"content"' in line and '"role"' not in line)
            assert httpx.get(hf_front.url + "/health", timeout=10).json()["active_requests"] == 1
    wait_for(lambda: httpx.get(hf_front.url + "/health", timeout=10).json()["active_requests"] == 0,
             "the front to free the dropped stream's slot", stall=30)
