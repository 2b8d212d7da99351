"""tools / tool_choice on a chat-template model, over HTTP with the real `openai` client and a real app server.

The model is a tiny random Qwen2 (engine/loading/demo/tool_template.py) whose own template lists tools and
calls in the Hermes/Qwen form; transformers' built-in "qwen2" response parser reads the calls back.
Random weights never call a tool by themselves, so the calls here are forced (tool_choice required or
named), which constrained decoding turns into a valid call.
"""
from __future__ import annotations

import json

import pytest
from openai import OpenAI
from transformers import AutoTokenizer

from engine.loading.demo.tool_template import tool_template_model
from tests.conftest import AppServer

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12},
                                                   "days": {"type": "integer", "minimum": 1, "maximum": 7}},
                   "required": ["city", "days"], "additionalProperties": False}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string", "enum": ["KST", "UTC"]}}, "required": ["zone"],
    "additionalProperties": False}}}
ASK = [{"role": "user", "content": "서울 날씨는?"}]


@pytest.fixture(scope="module")
def folder():
    return tool_template_model()


@pytest.fixture(scope="module")
def server(tmp_path_factory, folder):
    s = AppServer(tmp_path_factory.mktemp("template-tools"), {"engine": {"model": str(folder), "demo_fallback": False}},
                  args=()).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


def check_call(call, tool: dict) -> None:
    """The call names the tool and its arguments satisfy that tool's schema (checked key by key)."""
    assert call.type == "function" and call.function.name == tool["function"]["name"]
    args = json.loads(call.function.arguments)
    if tool is WEATHER:
        assert set(args) == {"city", "days"}, args
        assert isinstance(args["city"], str) and len(args["city"]) <= 12
        assert type(args["days"]) is int and 1 <= args["days"] <= 7
    else:
        assert args in ({"zone": "KST"}, {"zone": "UTC"}), args


def test_a_required_call_is_returned_as_tool_calls(client):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, tools=[WEATHER, TIME],
                                           tool_choice="required", max_tokens=60, temperature=0)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    [call] = choice.message.tool_calls
    check_call(call, WEATHER if call.function.name == "get_weather" else TIME)


def test_a_named_call_streams_as_tool_calls(client):
    chunks = list(client.chat.completions.create(
        model="local-chat", messages=ASK, tools=[WEATHER, TIME], max_tokens=60, temperature=0, stream=True,
        tool_choice={"type": "function", "function": {"name": "get_weather"}}))
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert len(calls) == 1, calls
    check_call(calls[0], WEATHER)
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["tool_calls"]
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_tool_result_in_the_history_renders_through_the_template(client, folder):
    history = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_weather", "arguments": json.dumps({"city": "Seoul", "days": 1})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "맑음 21°C"}]
    reply = client.chat.completions.create(model="local-chat", messages=history, tools=[WEATHER], max_tokens=3,
                                           temperature=0)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    as_template = [history[0], history[1] | {"tool_calls": [{"id": "call_1", "type": "function", "function": {
        "name": "get_weather", "arguments": {"city": "Seoul", "days": 1}}}]}, history[2]]
    text = tokenizer.apply_chat_template(as_template, tools=[WEATHER], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>tool\n맑음 21°C<|im_end|>" in text
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Seoul", "days": 1}}\n</tool_call>' in text
    assert reply.usage.prompt_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])


def test_tool_choice_none_renders_no_tools_and_makes_no_call(client, folder):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, tools=[WEATHER], tool_choice="none",
                                           max_tokens=5, temperature=0)
    choice = reply.choices[0]
    assert choice.message.tool_calls is None and choice.finish_reason in ("stop", "length")
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    plain = tokenizer.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True)
    assert reply.usage.prompt_tokens == len(tokenizer(plain, add_special_tokens=False)["input_ids"])


def test_auto_renders_the_tools(client, folder):
    reply = client.chat.completions.create(model="local-chat", messages=ASK, tools=[WEATHER], max_tokens=5,
                                           temperature=0)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    text = tokenizer.apply_chat_template(ASK, tools=[WEATHER], tokenize=False, add_generation_prompt=True)
    assert "<tools>" in text and reply.usage.prompt_tokens == len(tokenizer(text, add_special_tokens=False)["input_ids"])
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
