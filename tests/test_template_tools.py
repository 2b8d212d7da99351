"""`tools` on a chat-template model: the 400's reason says whether the template has a tool format at all."""
from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from engine.codec import TextCodec
from engine.sources import resolve_source
from engine.tools import MistralToolPrompt, ToolSpec, ToolsUnsupported, renders_tools

WEATHER = [{"type": "function", "function": {"name": "get_weather", "description": "Weather in a city",
                                             "parameters": {"type": "object", "properties": {
                                                 "city": {"type": "string"}}, "required": ["city"]}}}]


def test_template_without_tools_is_refused_naming_that():
    folder = resolve_source("demo:smollm2").folder   # SmolLM2-135M-Instruct: a ChatML template without tools
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    prompt = MistralToolPrompt(TextCodec.load(folder, tokenizer))
    with pytest.raises(ToolsUnsupported, match=r"this model's chat template has no tool format"):
        prompt.encode([{"role": "user", "content": "Weather in Seoul?"}], ToolSpec.of(WEATHER))


def test_tool_formats_are_told_apart_on_real_templates():
    from transformers.models.llama4.processing_llama4 import chat_template as llama4   # renders `tools`

    folder = resolve_source("demo:smollm2").folder
    assert renders_tools(llama4)
    assert renders_tools({"default": "{{ messages }}", "tool_use": llama4})
    assert not renders_tools(AutoTokenizer.from_pretrained(str(folder)).chat_template)
    assert not renders_tools("{% if %}")   # a template that does not parse renders nothing
