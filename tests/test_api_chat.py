"""The OpenAI-compatible API of a real app server (demo model): the `openai` client, streaming and not,
OpenAI error objects for bad requests, busy answers, and a client dropped mid-stream freeing its slot.

The server has ONE generation slot and room for one waiting request, so a slot that was not freed, or a
queue that does not refuse, shows at once.
"""
import base64
import io
import threading
import time

import httpx
import pytest
from openai import OpenAI

from tests.conftest import AppServer
from tests.waiting import wait_for

HI = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = AppServer(tmp_path_factory.mktemp("api"), config={
        "engine": {"max_concurrent": 1}, "server": {"queue_size": 1, "max_upload_mb": 1}}).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0)


def health(server) -> dict:
    return httpx.get(server.url + "/health", timeout=10).json()


def png_data_url() -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 40, 40)).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def test_models_and_health(server, client):
    ids = [m.id for m in client.models.list().data]
    assert ids == ["demo:tiny", "local-chat"]
    h = health(server)
    assert h["status"] == "ok" and h["model"] == "demo:tiny" and h["demo"] is True and "random weights" in h["notice"]
    assert h["rung"].startswith("cpu-") and h["serving"] in ("continuous", "queue")
    assert h["active_requests"] == 0 and h["queue_depth"] == 0 and h["system"]["gpu_note"] == "no GPU"
    if h["serving"] == "continuous":     # what a request may ask that is served one at a time says why: on the
        assert h["plain_path"] == {}, h["plain_path"]      # CPU (synchronous batching) every request shape joins


def test_openai_client_without_streaming_counts_usage(client):
    reply = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=5, temperature=0.8, top_p=0.9)
    assert reply.object == "chat.completion" and reply.model == "demo:tiny"
    choice = reply.choices[0]
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason == "length"
    assert reply.usage.prompt_tokens == 4 and reply.usage.completion_tokens == 5 and reply.usage.total_tokens == 9


def test_openai_client_streaming_with_usage(client):
    chunks = list(client.chat.completions.create(model="demo:tiny", messages=HI, max_tokens=6, stream=True,
                                                 stream_options={"include_usage": True}))
    content = [c for c in chunks if c.choices]
    assert content[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in content)
    assert text and len([c for c in content if c.choices[0].delta.content]) > 1  # it streamed, not one blob
    assert content[-1].choices[0].finish_reason == "length"
    assert not chunks[-1].choices and chunks[-1].usage.completion_tokens == 6 and chunks[-1].usage.prompt_tokens == 4
    # without include_usage there is no usage chunk
    plain = list(client.chat.completions.create(model="demo:tiny", messages=HI, max_tokens=3, stream=True))
    assert all(c.choices for c in plain)


def test_a_stream_event_stays_one_line_for_any_line_splitter():
    """httpx's iter_lines splits like str.splitlines, also at U+2028, U+2029 and U+0085, which a model may
    write and JSON may leave raw: the event is escaped so it is still one line there, and Korean stays text."""
    import json

    from api.chat import sse
    content = "줄\u2028바꿈\u2029단락\x85끝"
    event = sse({"choices": [{"delta": {"content": content}}]})
    lines = event.splitlines()
    assert len(lines) == 2 and lines[1] == "" and lines[0].startswith("data: "), lines
    assert json.loads(lines[0][len("data: "):])["choices"][0]["delta"]["content"] == content
    assert "줄" in event


def test_a_seed_repeats_a_reply_and_parts_equal_a_string(client):
    # Best effort, as with OpenAI: torch's RNG is process-wide, so this holds while nothing else samples.
    parts = [{"role": "user", "content": [{"type": "text", "text": "hi"}]}]
    first = client.chat.completions.create(model="local-chat", messages=parts, max_tokens=8, seed=11, temperature=1.0)
    again = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=8, seed=11, temperature=1.0)
    assert first.choices[0].message.content == again.choices[0].message.content
    other = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=8, seed=12, temperature=1.0)
    assert other.choices[0].message.content != first.choices[0].message.content


def test_stop_sequences_cut_the_reply(client):
    stops = ["e", "a", "o", "i"]  # OpenAI's limit is 4
    reply = client.chat.completions.create(model="local-chat", messages=HI, max_tokens=60, stop=stops)
    assert not any(s in reply.choices[0].message.content for s in stops)
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens < 60


BAD = [
    ("no messages", {"model": "local-chat", "messages": []}, 400, "messages"),
    ("missing messages", {"model": "local-chat"}, 400, "messages"),
    ("wrong role", {"model": "local-chat", "messages": [{"role": "robot", "content": "hi"}]}, 400, "messages"),
    ("ends with assistant", {"model": "local-chat", "messages": [{"role": "user", "content": "a"},
                                                                 {"role": "assistant", "content": "b"}]}, 400, "messages"),
    ("max_tokens 0", {"model": "local-chat", "messages": HI, "max_tokens": 0}, 400, "max_tokens"),
    ("max_tokens huge", {"model": "local-chat", "messages": HI, "max_tokens": 10 ** 7}, 400, "max_tokens"),
    ("temperature 5", {"model": "local-chat", "messages": HI, "temperature": 5}, 400, "temperature"),
    ("n 9", {"model": "local-chat", "messages": HI, "n": 9}, 400, "n"),
    ("unknown model", {"model": "gpt-4o", "messages": HI}, 404, "model"),
    ("web image", {"model": "local-chat", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, 400, "messages.0.content.0.image_url.url"),
    ("text as image", {"model": "local-chat", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what?"},
        {"type": "image_url", "image_url": {"url": "data:text/plain;base64,aGVsbG8="}}]}]}, 400, "messages.0.content.1.image_url.url"),
    ("broken image", {"model": "local-chat", "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,aGVsbG8="}}]}]}, 400, "messages"),
]


@pytest.mark.parametrize("name,body,status,param", BAD, ids=[b[0] for b in BAD])
def test_bad_requests_get_openai_error_objects(server, name, body, status, param):
    r = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    if status == 404:
        assert error["code"] == "model_not_found"


def test_invalid_json_unknown_routes_and_too_large_bodies(server):
    r = httpx.post(server.url + "/v1/chat/completions", content=b'{"model": "local-chat", "messages": [',
                   headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and "not valid JSON" in r.json()["error"]["message"]
    r = httpx.get(server.url + "/v1/chat/completions", timeout=10)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = httpx.get(server.url + "/v1/engines", timeout=10)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_url"
    big = {"model": "local-chat", "messages": [{"role": "user", "content": "x" * (3 * 2 ** 20)}]}
    r = httpx.post(server.url + "/v1/chat/completions", json=big, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_openai_client_raises_on_errors(client):
    import openai

    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=HI)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model="local-chat", messages=[{"role": "system", "content": "only this"}])


class LongStream:
    """A 4000-token stream, read until text flows and then left open (as a slow reader would).

    `soon` is a tenth of the time the whole reply would take at the pace seen (at least 3 s): what "at once"
    means on this machine now, busy or not, and still far from "after 4000 tokens".
    """

    def __init__(self, server, http: httpx.Client):
        self._ctx = http.stream("POST", server.url + "/v1/chat/completions", json={
            "model": "local-chat", "messages": HI, "max_tokens": 4000, "min_tokens": 4000, "stream": True,
            "temperature": 1.0})   # min_tokens: an end token cannot finish it early (a random model does emit one)
        response = self._ctx.__enter__()
        assert response.status_code == 200
        # Keep the iterator: leaving a for-loop over it (or dropping it) makes httpx close the connection.
        self._lines = response.iter_lines()
        seen, times = 0, []
        while seen < 8:
            line = next(self._lines)
            if line.startswith("data:") and '"content"' in line and '"role"' not in line:
                seen += 1
                times.append(time.perf_counter())
        self.soon = max(3.0, 400 * (times[-1] - times[2]) / 5)

    def drop(self) -> None:
        """The client goes away mid-stream."""
        self._ctx.__exit__(None, None, None)


def test_a_dropped_client_frees_its_slot_at_once(server):
    with httpx.Client(timeout=60) as http:
        stream = LongStream(server, http)
        time.sleep(0.5)                                 # a reader that pauses is not a reader that left
        assert health(server)["active_requests"] == 1  # still generating while connected
        stream.drop()
    wait_for(lambda: health(server)["active_requests"] == 0, "the dropped stream's slot to be freed",
             stall=stream.soon, detail=lambda: str(health(server)["queue"]))
    # the only slot is free: a new request's first token comes at once, not after 4000 tokens
    started = time.perf_counter()
    with httpx.Client(timeout=60) as http:
        with http.stream("POST", server.url + "/v1/chat/completions", json={
                "model": "local-chat", "messages": HI, "max_tokens": 3, "stream": True}) as r:
            first = next(line for line in r.iter_lines() if '"content"' in line and '"role"' not in line)
    assert first and time.perf_counter() - started < stream.soon


def test_busy_server_answers_503_with_retry_after(server):
    with httpx.Client(timeout=120) as http:
        stream = LongStream(server, http)  # takes the one slot
        waiting: dict = {}
        t = threading.Thread(target=lambda: waiting.update(r=httpx.post(
            server.url + "/v1/chat/completions", json={"model": "local-chat", "messages": HI, "max_tokens": 2},
            timeout=120)))
        t.start()
        try:
            wait_for(lambda: health(server)["queue_depth"] == 1, "the second request in the queue's one place",
                     stall=30)
            r = httpx.post(server.url + "/v1/chat/completions",
                           json={"model": "local-chat", "messages": HI, "max_tokens": 2}, timeout=30)
            assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
            assert r.json()["error"]["code"] == "server_busy"
        finally:
            stream.drop()
        t.join(60)
    assert waiting["r"].status_code == 200  # the waiting request ran once the slot was free


def test_image_parts_go_to_the_vision_model(client):
    reply = client.chat.completions.create(model="local-chat", max_tokens=4, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in this picture?"}, {"type": "image_url", "image_url": {"url": png_data_url()}}]}])
    assert reply.model == "demo:llava-next-tiny"  # answered by the image model, not the chat model
    assert reply.choices[0].message.content and reply.usage.completion_tokens == 4
    assert reply.usage.prompt_tokens > 20  # the image's placeholder tokens


def test_speech_and_transcription(server, client):
    speech = httpx.post(server.url + "/v1/audio/speech", json={"model": "tts-1", "input": "안녕하세요. Hello."},
                        timeout=120)
    assert speech.status_code == 200 and speech.headers["content-type"] == "audio/wav"
    assert speech.content[:4] == b"RIFF" and speech.headers["x-voice-language"] == "ko"
    text = client.audio.transcriptions.create(model="whisper-1", file=("speech.wav", speech.content, "audio/wav"))
    assert isinstance(text.text, str)
    r = httpx.post(server.url + "/v1/audio/transcriptions", data={"model": "whisper-1"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"
    r = httpx.post(server.url + "/v1/audio/transcriptions", files={"file": ("x.wav", b"not audio", "audio/wav")},
                   timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_audio"
    r = httpx.post(server.url + "/v1/audio/speech", json={"input": "hi", "response_format": "mp3"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "response_format"
    r = httpx.post(server.url + "/v1/audio/speech", json={"input": ""}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"
