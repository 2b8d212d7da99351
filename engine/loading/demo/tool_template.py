"""A tiny random Qwen2 whose chat template (written here) has a tool format: tests tools on the chat-template path.

The template follows the widely used Hermes/Qwen convention (tools as JSON inside <tools></tools> in the
system turn, calls as <tool_call>{"name", "arguments"}</tool_call>, results as a `tool` turn), so that
transformers' built-in response parser for model_type "qwen2" reads the calls back. The tokenizer is
SmolLM2's (ChatML tokens), from the offline model package; the weights are random (replies are noise).
"""
from __future__ import annotations

import json
from pathlib import Path

from engine.loading.demo.build import cached_build

CHAT_TEMPLATE = """\
{%- set system = messages | selectattr('role', 'equalto', 'system') | map(attribute='content') | list -%}
{%- if tools or system %}<|im_start|>system
{% if system %}{{ system[0] }}{% if tools %}{{ '\n\n' }}{% endif %}{% endif %}{% if tools %}You may call functions. Their signatures are inside <tools></tools>:
<tools>
{% for tool in tools %}{{ tool | tojson }}
{% endfor %}</tools>
To call one, reply with <tool_call>
{"name": <function name>, "arguments": <arguments as a JSON object>}
</tool_call>{% endif %}<|im_end|>
{% endif %}
{%- for m in messages if m.role != 'system' %}
{%- if m.role == 'assistant' and m.tool_calls %}<|im_start|>assistant
{% if m.content %}{{ m.content }}
{% endif %}{% for call in m.tool_calls %}<tool_call>
{"name": {{ call.function.name | tojson }}, "arguments": {% if call.function.arguments is string %}\
{{ call.function.arguments }}{% else %}{{ call.function.arguments | tojson }}{% endif %}}
</tool_call>{% if not loop.last %}
{% endif %}{% endfor %}<|im_end|>
{% else %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endif %}
{%- endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

SIZE = dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
BUILDER_VERSION = 1


def tool_template_model(seed: int = 0) -> Path:
    """Folder of the tiny Qwen2 tool-template model (config, safetensors, tokenizer); built once, then cached."""
    spec = {"arch": "Qwen2ForCausalLM", "size": SIZE, "seed": seed, "template": CHAT_TEMPLATE, "v": BUILDER_VERSION}
    return cached_build("qwen2-tools-tiny", spec, lambda out: _build(out, seed))


def _build(out: Path, seed: int) -> None:
    import torch
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM

    from engine.loading.demo.gguf import offline_chat_model

    tokenizer = AutoTokenizer.from_pretrained(str(offline_chat_model()))
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = Qwen2Config(vocab_size=len(tokenizer), max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=end, **SIZE)
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.bfloat16)
    model.generation_config.eos_token_id = end
    model.save_pretrained(str(out), safe_serialization=True)
    (out / "demo.json").write_text(json.dumps({"demo": True, "note": "random weights: replies are noise",
                                               "seed": seed}))
