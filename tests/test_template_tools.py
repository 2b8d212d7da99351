"""`tools` on a chat-template model: which templates take them (a tool format and a parser for its calls),
the 400's reason for those that do not, and calls read back by transformers' parser (tool_choice auto)."""
from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from engine.prompting.codec import TextCodec
from engine.loading.demo.tool_template import tool_template_model
from engine.loading.sources import resolve_source
from engine.prompting.tools import TemplateToolPrompt, ToolSpec, renders_tools
from engine.errors import ToolsUnsupported

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}, "days": {"type": "integer"}},
                                                 "required": ["city"]}}}]
ASK = [{"role": "user", "content": "Weather in Seoul?"}]


def template_prompt(folder, model_type: str) -> TemplateToolPrompt:
    """The tool prompt of a real tokenizer folder for a tiny real model of `model_type` (only its type is read)."""
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if model_type == "qwen2":
        from transformers import Qwen2Config, Qwen2ForCausalLM
        model = Qwen2ForCausalLM(Qwen2Config(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1))
    else:
        model = LlamaForCausalLM(LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, num_key_value_heads=1))
    return TemplateToolPrompt(TextCodec.load(folder, tokenizer), model)


def test_template_without_tools_is_refused_naming_that():
    prompt = template_prompt(resolve_source("demo:smollm2").folder, "llama")   # SmolLM2: ChatML without tools
    with pytest.raises(ToolsUnsupported, match=r"this model's chat template has no tool format"):
        prompt.encode(ASK, ToolSpec.of(WEATHER))


def test_template_with_tools_but_no_parser_is_refused_naming_that():
    prompt = template_prompt(tool_template_model(), "llama")   # our tool template on a model type without a parser
    with pytest.raises(ToolsUnsupported, match=r"has a tool format, but transformers has no parser .* 'llama'"):
        prompt.encode(ASK, ToolSpec.of(WEATHER))


def test_a_call_the_model_wrote_is_read_back_with_typed_arguments():
    prompt = template_prompt(tool_template_model(), "qwen2")
    spec = ToolSpec.of(WEATHER, "auto")
    ids = prompt.encode(ASK, spec)
    assert "<tools>" in prompt.codec.tokenizer.decode(ids)
    text = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "서울", "days": "2"}}\n</tool_call>'
    [call] = prompt.parse(text, spec, ids)
    assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "서울", "days": 2}
    assert prompt.parse("It is sunny.", spec, ids) is None
    assert prompt.parse('<tool_call>\n{"name": broken\n</tool_call>', spec, ids) is None
    assert prompt.is_call([], "\n<tool", spec) is None and prompt.is_call([], "\n<tool_call>", spec) is True
    assert prompt.is_call([], "Sunny", spec) is False
    assert prompt.is_call([], "<tool_call>", ToolSpec.of(WEATHER, "none")) is False


def test_tool_formats_are_told_apart_on_real_templates():
    from transformers.models.llama4.processing_llama4 import chat_template as llama4   # renders `tools`

    folder = resolve_source("demo:smollm2").folder
    assert renders_tools(llama4)
    assert renders_tools({"default": "{{ messages }}", "tool_use": llama4})
    assert not renders_tools(AutoTokenizer.from_pretrained(str(folder)).chat_template)
    assert not renders_tools("{% if %}")   # a template that does not parse renders nothing


def test_a_forced_call_in_another_call_format_is_refused_naming_tool_choice():
    """A parser whose calls are not <tool_call> JSON: auto holds the reply for the parser, forcing is refused."""
    prompt = template_prompt(tool_template_model(), "llama")
    prompt.codec.tokenizer.response_template = {"fields": {"tool_calls": {
        "open_pattern": r"<\|call\|>(?P<name>\w+)", "close": "<|/call|>", "repeats": True, "content": "json",
        "transform": {"type": "function", "function": {"name": "{name}", "arguments": "{content}"}}},
        "content": {"content": "text"}}}
    assert prompt.is_call([], "Sunny", ToolSpec.of(WEATHER, "auto")) is True
    prompt.encode(ASK, ToolSpec.of(WEATHER, "auto"))
    with pytest.raises(ToolsUnsupported, match=r"tool_choice 'required' forces a call") as err:
        prompt.encode(ASK, ToolSpec.of(WEATHER, "required"))
    assert err.value.param == "tool_choice"


def test_a_streamed_reply_is_held_only_while_it_may_be_a_call():
    """The stream wrapper the engine uses: a reply opening with <tool_call> gives no text and becomes calls;
    one that starts like the tag but is not a call comes out whole, and plain text flows piece by piece."""
    from engine.serving.generation import StreamStats, _tool_reply

    prompt = template_prompt(tool_template_model(), "qwen2")
    spec = ToolSpec.of(WEATHER, "auto")
    ids = prompt.encode(ASK, spec)

    def run(pieces: list[str]) -> tuple[list[str], StreamStats]:
        stats = StreamStats()
        out = list(_tool_reply((p for p in pieces), stats, False, lambda t, text: prompt.is_call(t, text, spec),
                               lambda text: prompt.parse(text, spec, ids)))
        return out, stats

    out, stats = run(["\n<tool", '_call>\n{"name": "get_weather", ', '"arguments": {"city": "Seoul"}}\n</tool_call>'])
    assert out == [] and [(c.name, json.loads(c.arguments)) for c in stats.tool_calls] == [("get_weather",
                                                                                            {"city": "Seoul"})]
    out, stats = run(["<to", "day", " it rains"])
    assert out == ["<today", " it rains"] and stats.tool_calls is None
    out, stats = run(["Sun", "ny"])
    assert out == ["Sun", "ny"] and stats.tool_calls is None
