"""Every /v1 answer and chunk we send validates as the `openai` package's own type, over HTTP, against the real app.

The openai client itself parses leniently (it constructs without validating), so these tests take the raw
body through the real client (with_raw_response / with_streaming_response) and validate it with
`Type.model_validate`, refusing any field the openai type does not declare (those types allow extras) where
we promise none. The few fields we add are named here and typed in api/responses.py.
"""
from __future__ import annotations

import json

import httpx
import pytest
from openai.types import Model
from openai.types.audio import Transcription, TranscriptionVerbose
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import BaseModel

from tests.test_api_chat import client, png_data_url, server  # noqa: F401 - the same real app, started the same way

ASK = [{"role": "user", "content": "Weather in Seoul?"}]
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "additionalProperties": False, "required": ["city"],
    "properties": {"city": {"type": "string", "enum": ["Seoul", "Busan"]}}}}}
MODEL_EXTRAS = {"prompt_path", "parent", "root"}     # ours, beside openai's Model (api/responses.LocalModel)


def extras(obj: object, where: str = "") -> list[str]:
    """Every field, at any depth, that the openai type does not declare."""
    found = []
    if isinstance(obj, BaseModel):
        found += [f"{where}.{k}" for k in (obj.model_extra or {})]
        for name in type(obj).model_fields:
            found += extras(getattr(obj, name), f"{where}.{name}")
    elif isinstance(obj, (list, tuple)):
        for i, item in enumerate(obj):
            found += extras(item, f"{where}[{i}]")
    return found


def completion(client, **kw) -> ChatCompletion:
    raw = client.chat.completions.with_raw_response.create(model="local-chat", **kw)
    assert raw.http_response.status_code == 200, raw.http_response.text
    reply = ChatCompletion.model_validate(raw.http_response.json())
    assert not extras(reply), extras(reply)
    return reply


def chunks(client, **kw) -> list[ChatCompletionChunk]:
    out = []
    with client.chat.completions.with_streaming_response.create(model="local-chat", stream=True, **kw) as resp:
        assert resp.http_response.status_code == 200
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = ChatCompletionChunk.model_validate(json.loads(line[len("data: "):]))
            assert not extras(chunk), (extras(chunk), line)
            out.append(chunk)
    assert out
    return out


def test_a_completion_with_n_and_logprobs_is_a_chat_completion(client):
    reply = completion(client, messages=ASK, max_tokens=4, n=2, logprobs=True, top_logprobs=2)
    assert [c.index for c in reply.choices] == [0, 1] and reply.usage.completion_tokens == 8
    for c in reply.choices:
        assert c.message.role == "assistant" and c.message.content and c.finish_reason == "length"
        assert len(c.logprobs.content) == 4 and all(len(t.top_logprobs) == 2 for t in c.logprobs.content)


def test_every_chunk_of_a_stream_is_a_chat_completion_chunk(client):
    got = chunks(client, messages=ASK, max_tokens=4, n=2, logprobs=True, top_logprobs=1,
                 stream_options={"include_usage": True})
    assert {c.choices[0].index for c in got if c.choices} == {0, 1}
    assert [c.choices[0].finish_reason for c in got if c.choices and c.choices[0].finish_reason] == ["length"] * 2
    assert not got[-1].choices and got[-1].usage.completion_tokens == 8
    assert all(c.id == got[0].id and c.created == got[0].created for c in got)


def test_tool_calls_are_typed_whole_and_streamed(client):
    reply = completion(client, messages=ASK, max_tokens=40, temperature=0, tools=[WEATHER], tool_choice="required",
                       parallel_tool_calls=False)
    [call] = reply.choices[0].message.tool_calls
    assert reply.choices[0].finish_reason == "tool_calls" and call.type == "function" and call.id
    got = chunks(client, messages=ASK, max_tokens=40, temperature=0, tools=[WEATHER], parallel_tool_calls=False,
                 tool_choice={"type": "function", "function": {"name": "get_weather"}})
    calls = [tc for c in got if c.choices for tc in c.choices[0].delta.tool_calls or []]
    assert [(tc.index, tc.type, tc.function.name) for tc in calls] == [(0, "function", "get_weather")]


def test_an_answer_from_the_image_model_is_a_chat_completion(client):
    reply = completion(client, max_tokens=3, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is it?"}, {"type": "image_url", "image_url": {"url": png_data_url()}}]}])
    assert reply.model == "demo:llava-next-tiny" and reply.choices[0].message.content


def test_models_are_openai_models_with_only_our_named_extras(client):
    raw = client.models.with_raw_response.list()
    body = raw.http_response.json()
    assert body["object"] == "list" and set(body) == {"object", "data"}
    for entry in body["data"]:
        model = Model.model_validate(entry)
        assert set(model.model_extra or {}) <= MODEL_EXTRAS, entry
    one = client.models.with_raw_response.retrieve("local-chat").http_response.json()
    assert Model.model_validate(one).id == "local-chat"


def test_transcriptions_are_openai_transcriptions(server, client):
    speech = httpx.post(server.url + "/v1/audio/speech", json={"model": "tts-1", "input": "Hello there."},
                        timeout=120)
    assert speech.status_code == 200
    audio = ("speech.wav", speech.content, "audio/wav")
    plain = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=audio)
    text = Transcription.model_validate(plain.http_response.json())
    assert not extras(text) and isinstance(text.text, str)
    verbose = client.audio.transcriptions.with_raw_response.create(model="whisper-1", file=audio,
                                                                   response_format="verbose_json")
    body = verbose.http_response.json()
    assert {"task", "no_speech", "message"} <= set(body) and body["task"] == "transcribe"
    if body["language"] is None:     # nothing heard: no language (which TranscriptionVerbose cannot say)
        assert body["no_speech"] is True
        body = body | {"language": ""}
    checked = TranscriptionVerbose.model_validate(body)
    assert set(checked.model_extra or {}) == {"task", "no_speech", "message"}
    assert checked.duration > 0


@pytest.mark.parametrize("shape", ["chunk", "completion"])
def test_the_check_itself_catches_a_field_openai_does_not_declare(shape):
    """The extras check is what makes a stray field fail: shown here on a body with one added."""
    base = {"id": "x", "created": 1, "model": "m"}
    if shape == "chunk":
        obj = ChatCompletionChunk.model_validate(base | {"object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": {"content": "a", "stray": 1}, "finish_reason": None}]})
    else:
        obj = ChatCompletion.model_validate(base | {"object": "chat.completion", "choices": [
            {"index": 0, "message": {"role": "assistant", "content": "a"}, "finish_reason": "stop", "stray": 1}]})
    assert extras(obj) and extras(obj)[0].endswith(".stray")
