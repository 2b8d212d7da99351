"""Demo chat models: MistralForCausalLM with random seeded weights and the real v3 tokenizer."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from engine.loading.demo.build import cached_build, mistral_tokenizer_file

# Mistral-7B-Instruct-v0.3's message format without the tool-calling branches of the upstream template.
# Our engine encodes prompts itself (engine/prompting/mistral.py); this is here for tools that read the folder.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% set system = messages | selectattr('role', 'equalto', 'system') | map(attribute='content') | list %}"
    "{% set turns = messages | rejectattr('role', 'equalto', 'system') | list %}"
    "{% set last_user = (turns | selectattr('role', 'equalto', 'user') | list | length) %}{% set ns = namespace(u=0) %}"
    "{% for m in turns %}{% if m['role'] == 'user' %}{% set ns.u = ns.u + 1 %}"
    "{% if ns.u == last_user and system %}{{ '[INST] ' + system[0] + '\\n\\n' + m['content'] + '[/INST]' }}"
    "{% else %}{{ '[INST] ' + m['content'] + '[/INST]' }}{% endif %}"
    "{% else %}{{ ' ' + m['content'] + eos_token }}{% endif %}{% endfor %}"
)

SIZES = {
    # Fast enough for unit tests: a few ms per token.
    "tiny": dict(hidden_size=64, intermediate_size=192, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    # A decode step of a few tens of ms on a 2-core CPU, like a 7B model on a consumer GPU.
    "bench": dict(hidden_size=768, intermediate_size=2048, num_hidden_layers=8, num_attention_heads=12,
                  num_key_value_heads=4),
}
BUILDER_VERSION = 1


def demo_chat_model(size: str = "tiny", seed: int = 0) -> Path:
    """Folder of a demo Mistral chat model (config, safetensors, tokenizer); built once, then cached."""
    if size not in SIZES:
        raise ValueError(f"demo size {size!r}: choose one of {', '.join(SIZES)}")
    spec = {"arch": "MistralForCausalLM", "size": SIZES[size], "seed": seed, "v": BUILDER_VERSION}
    return cached_build(f"mistral-{size}", spec, lambda out: _build(out, SIZES[size], seed))


def _build(out: Path, size: dict, seed: int) -> None:
    import torch
    from transformers import LlamaTokenizer, MistralConfig, MistralForCausalLM

    tokenizer_dir = out / "_tok"
    tokenizer_dir.mkdir()
    shutil.copy(mistral_tokenizer_file(), tokenizer_dir / "tokenizer.model")
    tokenizer = LlamaTokenizer.from_pretrained(str(tokenizer_dir), legacy=False)
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(str(out))
    shutil.copy(mistral_tokenizer_file(), out / "tokenizer.model")
    shutil.rmtree(tokenizer_dir)

    config = MistralConfig(vocab_size=len(tokenizer), max_position_embeddings=32768, rope_theta=1_000_000.0,
                           sliding_window=None, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                           head_dim=size["hidden_size"] // size["num_attention_heads"], **size)
    torch.manual_seed(seed)
    model = MistralForCausalLM(config).to(torch.bfloat16)
    model.generation_config.bos_token_id, model.generation_config.eos_token_id = 1, 2
    model.save_pretrained(str(out), safe_serialization=True)
    meta = {"demo": True, "note": "random weights: replies are noise", "seed": seed}
    (out / "demo.json").write_text(json.dumps(meta))
