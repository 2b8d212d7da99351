"""Issue 13: no 500 from input, and adapters as API models, against a real `python app.py --demo` over HTTP.

Lone surrogates, out-of-range integers, OpenAI's strict types, bodies over the limit however they are sent,
generation.max_message_chars on /v1, a client that leaves while its prompt waits, and LoRA adapters listed in
/v1/models and chosen with `model` (or the gradio `chat` endpoint's `adapter`). Each refusal is asserted by
its specific message, and the next normal request is answered at once.
"""
from __future__ import annotations

import json
import secrets
import shutil
import time

import httpx
import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError
from openai import OpenAI

from tests.conftest import AppServer
from tests.waiting import wait_for

HI = [{"role": "user", "content": "hi"}]
MAX_CHARS = 2000


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One slot, one waiting place; adapters/real trained on demo:tiny, adapters/other made for another base."""
    from tuning.config import TrainConfig
    from tuning.train import train

    tmp = tmp_path_factory.mktemp("hostile")
    data = tmp / "data.jsonl"
    line = {"messages": [{"role": "user", "content": "Hello!"}, {"role": "assistant", "content": "Tuned hello."}]}
    data.write_text((json.dumps(line) + "\n") * 4)
    train(TrainConfig(name="real", dataset=str(data), base_model="demo:tiny", adapters_dir=str(tmp / "adapters"),
                      lora_r=2, lora_alpha=4, lora_dropout=0.0, max_length=32, eval_fraction=0.0, max_steps=2,
                      batch_size=2, grad_accum=1, learning_rate=0.01, lr_scheduler="constant", warmup_steps=0,
                      gradient_checkpointing=False, logging_steps=1, save_steps=100))
    other = tmp / "adapters" / "other"
    shutil.copytree(tmp / "adapters" / "real", other)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps(meta | {"name": "other", "base_model_id": "mistralai/Mistral-7B-v0.3",
                                                        "base_fingerprint": "sha256:" + "ab" * 32}))
    srv = AppServer(tmp, config={"engine": {"max_concurrent": 1}, "generation": {"max_message_chars": MAX_CHARS},
                                 "server": {"queue_size": 1, "max_upload_mb": 1}}).start()
    yield srv
    srv.stop()


def post(server, body=None, *, content: bytes | None = None, **kw) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if content is not None:
        return httpx.post(server.url + "/v1/chat/completions", content=content, headers=headers, timeout=60, **kw)
    return httpx.post(server.url + "/v1/chat/completions", json=body, timeout=60, **kw)


def assert_refused(r: httpx.Response, status: int, param: str | None, *phrases: str) -> None:
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["param"] == param, error
    for phrase in phrases:
        assert phrase in error["message"], error


def assert_still_answers(server) -> None:
    r = post(server, {"model": "local-chat", "messages": HI, "max_tokens": 2})
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 2


SURROGATE = b'{"model": "local-chat", "messages": [{"role": "user", "content": "hi \\ud800 there"}]}'


@pytest.mark.parametrize("raw,param", [
    (SURROGATE, "messages.0.content"),
    (b'{"model": "local-chat", "messages": [{"role": "user", "content": [{"type": "text", "text": "\\udfff"}]}]}',
     "messages.0.content.0.text"),
    (b'{"model": "local-chat", "messages": [{"role": "user", "content": "hi"}], "stop": ["\\ud83d"]}', "stop.0"),
], ids=["content", "text part", "stop"])
def test_lone_surrogates_are_a_400_not_a_500(server, raw, param):
    r = post(server, content=raw)
    assert_refused(r, 400, param, "cannot be encoded as UTF-8", "lone surrogate")
    assert_still_answers(server)


BAD_TYPES = [
    ("seed 2**64", {"seed": 18446744073709551616}, "seed", "less than"),
    ("seed -2**64", {"seed": -18446744073709551616}, "seed", "greater than"),
    ("max_tokens 2**64", {"max_tokens": 2 ** 64}, "max_tokens", "less than"),
    ("max_tokens 2**31", {"max_tokens": 2 ** 31}, "max_tokens", "less than or equal to 2147483647"),
    ("min_tokens 2**31", {"min_tokens": 2 ** 31}, "min_tokens", "less than or equal to 2147483647"),
    ("max_tokens string", {"max_tokens": "2"}, "max_tokens", "valid integer"),
    ("max_tokens true", {"max_tokens": True}, "max_tokens", "valid integer"),
    ("max_tokens 2.0", {"max_tokens": 2.0}, "max_tokens", "valid integer"),
    ("stream yes", {"stream": "yes"}, "stream", "valid boolean"),
    ("stream 1", {"stream": 1}, "stream", "valid boolean"),
    ("temperature string", {"temperature": "0.5"}, "temperature", "valid number"),
    ("include_usage string", {"stream": True, "stream_options": {"include_usage": "true"}},
     "stream_options.include_usage", "valid boolean"),
]


@pytest.mark.parametrize("name,extra,param,phrase", BAD_TYPES, ids=[b[0] for b in BAD_TYPES])
def test_strict_types_and_bounded_integers(server, name, extra, param, phrase):
    r = post(server, {"model": "local-chat", "messages": HI, "max_tokens": 2} | extra)
    assert_refused(r, 400, param, phrase)


def test_a_64_bit_seed_is_taken_in_both_modes(server):
    for stream in (False, True):
        r = post(server, {"model": "local-chat", "messages": HI, "max_tokens": 2, "seed": 2 ** 63 - 1,
                          "stream": stream})
        assert r.status_code == 200 and '"error"' not in r.text, r.text


def test_a_chunked_body_over_the_limit_is_413(server):
    def chunks():
        yield b'{"model": "local-chat", "messages": [{"role": "user", "content": "'
        for _ in range(4):
            yield b"x" * 2 ** 20
        yield b'"}]}'

    r = post(server, content=chunks())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert_refused(r, 413, None, "larger than")
    assert r.json()["error"]["code"] == "request_too_large"
    assert_still_answers(server)


def test_max_message_chars_holds_on_v1(server):
    r = post(server, {"model": "local-chat", "messages": [{"role": "user", "content": "x" * (MAX_CHARS + 1)}]})
    assert_refused(r, 400, "messages.0.content", f"at most {MAX_CHARS}", "max_message_chars")
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": "y" * MAX_CHARS} for i in range(21)]
    started = time.perf_counter()
    r = post(server, {"model": "local-chat", "messages": turns[:-1] + [{"role": "user", "content": "z" * 400_000}]})
    assert_refused(r, 400, "messages.20.content", "max_message_chars")
    assert time.perf_counter() - started < 2.0


def health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


def test_a_client_that_leaves_while_waiting_is_never_served(server):
    """The one slot is busy; a second client waits (prompt trimmed, place queued), then leaves.
    Its place frees at once, and no reply is generated for it once the slot is free."""
    served = health(server)["queue"]["served"]
    with httpx.Client(timeout=120) as http:
        with http.stream("POST", server.url + "/v1/chat/completions", json={
                "model": "local-chat", "messages": HI, "max_tokens": 4000, "min_tokens": 4000, "stream": True,
                "temperature": 1.0}) as first:   # far longer than the leaver's wait (300 tokens took 0.9 s)
            lines = first.iter_lines()
            next(line for line in lines if '"content"' in line and '"role"' not in line)
            with httpx.Client(timeout=httpx.Timeout(60, read=1.0)) as leaver:
                with pytest.raises(httpx.ReadTimeout):
                    leaver.post(server.url + "/v1/chat/completions",
                                json={"model": "local-chat", "messages": HI, "max_tokens": 300, "temperature": 1.0})
            # a place not freed would be served once the slot frees: the served count below catches that
            wait_for(lambda: health(server)["queue_depth"] == 0, "the leaver's queue place to be freed", stall=30,
                     detail=lambda: str(health(server)))
            assert health(server)["active_requests"] == 1
            next(lines)      # still streaming; then the first client leaves too, which frees the slot
    wait_for(lambda: health(server)["active_requests"] == 0, "the slot to be free", stall=30,
             detail=lambda: str(health(server)))
    assert health(server)["queue"]["served"] == served + 1  # the first only: the leaver never got the slot
    assert_still_answers(server)


# ---- adapters as models ---------------------------------------------------------------------------------

def test_v1_models_lists_the_adapters_that_fit_the_base(server):
    listed = {m["id"]: m for m in httpx.get(server.url + "/v1/models", timeout=10).json()["data"]}
    assert set(listed) == {"demo:tiny", "local-chat", "real"}  # "other" was made for another base
    assert listed["real"]["parent"] == "demo:tiny" and listed["real"]["object"] == "model"
    assert str(server.tmp) not in json.dumps(listed)
    assert httpx.get(server.url + "/v1/models/real", timeout=10).json()["parent"] == "demo:tiny"


def test_an_adapter_is_chosen_with_model(server):
    client = OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0)
    reply = client.chat.completions.create(model="real", messages=HI, max_tokens=3)
    assert reply.model == "real" and reply.usage.completion_tokens == 3
    chunks = list(client.chat.completions.create(model="real", messages=HI, max_tokens=2, stream=True))
    assert {c.model for c in chunks} == {"real"}


def test_an_adapter_for_another_base_is_a_400_naming_both_bases(server):
    r = post(server, {"model": "other", "messages": HI, "max_tokens": 2})
    assert_refused(r, 400, "model", "mistralai/Mistral-7B-v0.3", "demo:tiny")
    assert r.json()["error"]["code"] == "adapter_base_mismatch"
    r = post(server, {"model": "../real", "messages": HI})
    assert_refused(r, 404, "model", "does not exist")


def test_the_gradio_chat_endpoint_takes_an_adapter(server):
    client = Client(server.url, verbose=False)
    assert isinstance(client.predict("hi", adapter="real", api_name="/chat"), str)
    owner = secrets.token_hex(16)
    session = client.predict("with adapter", owner, api_name="/new_session")
    client.predict("hi", session["id"], owner, "", 4, None, "real", api_name="/chat")
    stored = client.predict(session["id"], owner, api_name="/get_session")
    assert stored["messages"][-1]["provenance"]["adapter"] == "real"
    with pytest.raises(AppError, match="mistralai/Mistral-7B-v0.3.*demo:tiny"):
        client.predict("hi", adapter="other", api_name="/chat")
    with pytest.raises(AppError, match="There is no adapter “nope”"):
        client.predict("hi", adapter="nope", api_name="/chat")


# ---- gradio: lone surrogates and numbers ----------------------------------------------------------------

def gradio_call(server, name: str, raw: str) -> str:
    """A raw gradio call (gradio_client cannot even send a lone surrogate): the final SSE event and its data."""
    r = httpx.post(server.url + f"/gradio_api/call/{name}", content=raw.encode(),
                   headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code == 200, r.text
    events = httpx.get(server.url + f"/gradio_api/call/{name}/{r.json()['event_id']}", timeout=60).text
    return events.strip().split("\n\n")[-1]


def test_gradio_refuses_lone_surrogates_with_a_clear_error(server):
    owner = secrets.token_hex(16)
    session = Client(server.url, verbose=False).predict("ok", owner, api_name="/new_session")
    cases = {"chat": '["hi \\ud800 there", "", "", "", null, null, ""]',
             "new_session": f'["t \\ud800", "{owner}"]',
             "rename_session": f'["{session["id"]}", "t \\ud800", "{owner}"]'}
    cases["chat with a session"] = f'["hi \\ud800", "{session["id"]}", "{owner}", "", null, null, ""]'
    for name, data in cases.items():
        last = gradio_call(server, name.split(" ")[0], '{"data": %s}' % data)
        assert last.startswith("event: error") and "U+D800, a lone surrogate" in last, (name, last)
        assert "codec" not in last and "Traceback" not in last
    assert Client(server.url, verbose=False).predict(session["id"], owner, api_name="/get_session")["title"] == "ok"


def test_gradio_chat_bounds_its_numbers(server):
    for value in ("18446744073709551616", "1e300", "0", "-1"):
        last = gradio_call(server, "chat", '{"data": ["hi", "", "", "", %s, null, ""]}' % value)
        assert "max_new_tokens must be an integer from 1 to" in last, (value, last)
    last = gradio_call(server, "chat", '{"data": ["hi", "", "", "", null, 1e309, ""]}')
    assert "temperature must be a number from 0 to 2" in last or "event: error" in last, last
