"""No ignored parameter on /v1/chat/completions: n, logprobs, response_format (JSON mode and JSON schema by
constrained decoding) and tools, with the real `openai` client against a real app server (tiny demo model);
what is still unsupported is refused with a 400 naming the parameter.
"""
import json

import httpx
import pytest
from openai import BadRequestError, OpenAI

from tests.conftest import module_server

ASK = [{"role": "user", "content": "Answer in JSON, please."}]
PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "mood"],
          "properties": {"name": {"type": "string", "maxLength": 12},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "mood": {"enum": ["happy", "sad"]}}}
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "additionalProperties": False, "required": ["city"],
                   "properties": {"city": {"type": "string", "enum": ["Seoul", "Busan"]}}}}}


server = module_server("params", config={"engine": {"max_concurrent": 2}})


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="unused-on-loopback", max_retries=0)


def test_json_schema_reply_parses_and_matches(client):
    reply = client.chat.completions.create(
        model="local-chat", messages=ASK, max_tokens=80, temperature=0.9, seed=7,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}})
    choice = reply.choices[0]
    assert choice.finish_reason == "stop", choice
    value = json.loads(choice.message.content)
    assert set(value) == {"name", "age", "mood"} and len(value["name"]) <= 12
    assert isinstance(value["age"], int) and 0 <= value["age"] <= 120 and value["mood"] in ("happy", "sad")


def test_json_object_mode_gives_a_json_object(client):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=120, temperature=0,
                                           response_format={"type": "json_object"})
    assert reply.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(reply.choices[0].message.content), dict)


def test_json_schema_streams_too(client):
    chunks = list(client.chat.completions.create(
        model="local-chat", messages=ASK, max_tokens=80, temperature=0.9, seed=3, stream=True,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON}}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert set(json.loads(text)) == {"name", "age", "mood"}


def test_n_gives_that_many_choices(client):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=8, n=2,
                                           temperature=1.0, seed=11)
    assert [c.index for c in reply.choices] == [0, 1]
    assert all(c.message.content for c in reply.choices)
    assert reply.choices[0].message.content != reply.choices[1].message.content  # seeds 11 and 12
    assert reply.usage.completion_tokens == 16


def test_n_streams_each_choice_with_its_index(client):
    chunks = list(client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=6, n=2,
                                                 stream=True, stream_options={"include_usage": True}))
    texts = {0: "", 1: ""}
    finished = set()
    for c in chunks:
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
            if ch.finish_reason:
                finished.add(ch.index)
    assert finished == {0, 1} and texts[0] and texts[1]
    assert chunks[-1].usage.completion_tokens == 12


def test_logprobs_are_numbers_up_to_zero_with_top_alternatives(client):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=6, temperature=0,
                                           logprobs=True, top_logprobs=3)
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 6
    # SentencePiece drops the space that starts a reply's first token from the text; the token keeps it
    assert "".join(t.token for t in content).lstrip(" ") == reply.choices[0].message.content
    for t in content:
        assert isinstance(t.logprob, float) and t.logprob <= 0
        assert len(t.top_logprobs) == 3 and all(a.logprob <= 0 for a in t.top_logprobs)
        assert t.top_logprobs[0].logprob >= t.top_logprobs[1].logprob >= t.top_logprobs[2].logprob
        assert t.logprob == pytest.approx(t.top_logprobs[0].logprob)   # greedy takes the most likely token
        assert bytes(t.bytes).decode() == t.token


def test_logprobs_stream_with_the_text(client):
    chunks = list(client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=5, temperature=0,
                                                 logprobs=True, stream=True))
    entries = [e for c in chunks if c.choices and c.choices[0].logprobs for e in c.choices[0].logprobs.content]
    assert len(entries) == 5 and all(e.logprob <= 0 for e in entries)


def test_a_required_tool_call_is_parsed_into_tool_calls(client):
    reply = client.chat.completions.create(model="local-chat", max_tokens=40, temperature=0,
                                           messages=[{"role": "user", "content": "Weather in Seoul?"}],
                                           tools=[WEATHER], tool_choice="required", parallel_tool_calls=False)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments)["city"] in ("Seoul", "Busan")
    # the call and the tool's answer go back in Mistral's format; the model answers in text
    follow = client.chat.completions.create(model="local-chat", max_tokens=5, temperature=0, tools=[WEATHER],
                                            messages=[{"role": "user", "content": "Weather in Seoul?"},
                                                      choice.message.model_dump(exclude_none=True),
                                                      {"role": "tool", "tool_call_id": call.id, "content": "25C"}])
    assert follow.choices[0].finish_reason in ("stop", "length")


def test_a_named_tool_call_streams_as_tool_calls(client):
    chunks = list(client.chat.completions.create(
        model="local-chat", max_tokens=40, temperature=0, stream=True, parallel_tool_calls=False,
        messages=[{"role": "user", "content": "Weather?"}], tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [tc.function.name for tc in calls] == ["get_weather"]
    assert json.loads(calls[0].function.arguments)["city"] in ("Seoul", "Busan")
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


REFUSED = [
    ("logit_bias", {"logit_bias": {"12": 5}}, "logit_bias"),
    ("functions (old API)", {"functions": [WEATHER["function"]]}, "functions"),
    ("audio output", {"modalities": ["text", "audio"]}, "modalities"),
    ("top_logprobs alone", {"top_logprobs": 2}, "top_logprobs"),
    ("too many top_logprobs", {"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
    ("unknown tool_choice", {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
     "tool_choice"),
    ("tool_choice without tools", {"tool_choice": "required"}, "tool_choice"),
    ("schema that does not compile", {"response_format": {"type": "json_schema", "json_schema": {
        "name": "bad", "schema": {"type": "no-such-type"}}}}, "response_format"),
    ("unknown response_format", {"response_format": {"type": "yaml"}}, "response_format"),
    ("min_tokens above max_tokens", {"min_tokens": 3}, "min_tokens"),
    ("negative min_tokens", {"min_tokens": -1}, "min_tokens"),
    ("min_tokens not a number", {"min_tokens": "5"}, "min_tokens"),
    # The format decides where the reply ends: held past it, JSON mode went on with " ⁇ ⁇ ⁇" after "{}".
    ("min_tokens with JSON mode", {"min_tokens": 1, "response_format": {"type": "json_object"}}, "min_tokens"),
    ("min_tokens with tools", {"min_tokens": 1, "tools": [WEATHER]}, "min_tokens"),
]


@pytest.mark.parametrize("name,extra,param", REFUSED, ids=[r[0] for r in REFUSED])
def test_unsupported_parameters_are_refused_by_name(server, name, extra, param):
    r = httpx.post(server.url + "/v1/chat/completions", timeout=60,
                   json={"model": "local-chat", "messages": ASK, "max_tokens": 2} | extra)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param, r.text


def test_harmless_fields_are_accepted(client):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=2, user="me",
                                           presence_penalty=0, metadata={"k": "v"})
    assert reply.choices[0].message.content is not None


def test_openai_client_error_names_the_parameter(client):
    with pytest.raises(BadRequestError) as err:
        client.chat.completions.create(model="local-chat", messages=ASK, max_tokens=2, frequency_penalty=2.5)
    assert err.value.body["param"] == "frequency_penalty"


def test_tool_prompt_equals_mistral_common_for_openai_shaped_messages(tiny_engine):
    """OpenAI's shapes (JSON-text arguments, any call id) become exactly mistral-common's v3 encoding."""
    from mistral_common.protocol.instruct.messages import AssistantMessage, ToolMessage, UserMessage
    from mistral_common.protocol.instruct.request import ChatCompletionRequest
    from mistral_common.protocol.instruct.tool_calls import Function, FunctionCall, Tool, ToolCall
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    from engine.loading.demo import mistral_tokenizer_file
    from engine.prompting.tools import ToolSpec, _short_id

    ours = tiny_engine.generator.tool_prompt.encode([
        {"role": "user", "content": "서울 날씨?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "call_Xy-1", "type": "function", "function": {
            "name": "get_weather", "arguments": '{"city": "서울"}'}}]},
        {"role": "tool", "tool_call_id": "call_Xy-1", "content": "맑음 25°C"},
        {"role": "user", "content": "고마워요 [INST]"}], ToolSpec.of([WEATHER]))
    f = WEATHER["function"]
    reference = MistralTokenizer.from_file(str(mistral_tokenizer_file())).encode_chat_completion(ChatCompletionRequest(
        tools=[Tool(function=Function(name=f["name"], description=f["description"], parameters=f["parameters"]))],
        messages=[UserMessage(content="서울 날씨?"),
                  AssistantMessage(tool_calls=[ToolCall(id=_short_id("call_Xy-1"), function=FunctionCall(
                      name="get_weather", arguments='{"city": "서울"}'))]),
                  ToolMessage(content="맑음 25°C", tool_call_id=_short_id("call_Xy-1")),
                  UserMessage(content="고마워요 [INST]")])).tokens
    assert ours == reference
