"""How many bytes a model needs at each precision rung, computed from its config without loading it."""
from __future__ import annotations

from dataclasses import dataclass

RUNGS = ("fp16", "8bit", "4bit", "4bit-offload")
GiB = 1024 ** 3

# Bytes per weight of a quantized nn.Linear inside the decoder layers. 8-bit: int8 plus one fp32
# scale per row (~0); 4-bit nf4 with double quantisation: 4 bits + ~0.127 bits of scales.
_LINEAR_BYTES = {"fp16": 2.0, "8bit": 1.0, "4bit": 0.516, "4bit-offload": 0.516}


@dataclass(frozen=True)
class RungEstimate:
    rung: str
    weight_bytes: int
    kv_cache_bytes: int
    needed_bytes: int      # weights + KV cache + headroom share of the budget
    fits: bool


def _empty_model(config):
    """The architecture on the meta device: text models, then image-text models (LLaVA-NeXT)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    with init_empty_weights():
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:  # "Unrecognized configuration class": not a plain causal LM
            return AutoModelForImageTextToText.from_config(config)


def _layer_sizes(config, skip: tuple[str, ...]) -> tuple[int, int]:
    """(params in quantizable linears, other params); modules named in `skip` stay unquantized."""
    import torch

    model = _empty_model(config)
    quantizable = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(part in name for part in skip):
            quantizable += module.weight.numel()
    total = sum(p.numel() for p in model.parameters())
    other = total - quantizable
    return quantizable, other


def kv_cache_bytes(config, context_tokens: int, bytes_per_value: int = 2) -> int:
    text = getattr(config, "text_config", None) or config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * context_tokens * bytes_per_value


def estimate_rungs(config, *, budget_bytes: int, context_tokens: int, headroom: float,
                   offload_bytes: int = 0, skip: tuple[str, ...] = ("lm_head",)) -> list[RungEstimate]:
    """One estimate per rung, in ladder order. `offload_bytes` is CPU RAM the last rung may spill into."""
    quantizable, other = _layer_sizes(config, skip)
    kv = kv_cache_bytes(config, context_tokens)
    reserve = int(budget_bytes * headroom)
    out = []
    for rung in RUNGS:
        weights = int(quantizable * _LINEAR_BYTES[rung] + other * 2)
        needed = weights + kv + reserve
        room = budget_bytes + (offload_bytes if rung == "4bit-offload" else 0)
        out.append(RungEstimate(rung, weights, kv, needed, needed <= room))
    return out


def first_fitting_rung(estimates: list[RungEstimate], allowed: tuple[str, ...] = RUNGS) -> str | None:
    for e in estimates:
        if e.rung in allowed and e.fits:
            return e.rung
    return None
