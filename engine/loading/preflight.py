"""How many bytes a model needs at each precision rung, computed from its config without loading it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from engine import hf_bridge

RUNGS = ("fp16", "8bit", "4bit", "4bit-offload")
GiB = 1024 ** 3
MiB = 1024 ** 2
# What creating the CUDA context takes on the card before any tensor (cuBLAS/cuDNN handles, kernels):
# 0.3-0.5 GiB on current drivers. Only counted against a configured budget: free memory read through
# torch.cuda.mem_get_info is read after the context exists.
CUDA_CONTEXT_BYTES = 512 * MiB

# Bytes per weight of a quantized nn.Linear inside the decoder layers. 8-bit: int8 plus one fp32
# scale per row (~0); 4-bit nf4 with double quantisation: 4 bits + ~0.127 bits of scales.
_LINEAR_BYTES = {"fp16": 2.0, "8bit": 1.0, "4bit": 0.516, "4bit-offload": 0.516}


@dataclass(frozen=True)
class RungEstimate:
    rung: str
    weight_bytes: int
    kv_cache_bytes: int
    needed_bytes: int      # on the device: weights there + KV caches + CUDA context + headroom share of the budget
    fits: bool
    offload_bytes: int = 0  # weights kept in CPU RAM (the offload rung: unquantized, 2 bytes per weight)


def _empty_model(config):
    """The architecture on the meta device: text models, then image-text models (LLaVA-NeXT)."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    with init_empty_weights():
        try:
            return AutoModelForCausalLM.from_config(config)
        except ValueError:  # "Unrecognized configuration class": not a plain causal LM
            return AutoModelForImageTextToText.from_config(config)


def layer_sizes(config, skip: tuple[str, ...] = ("lm_head",)) -> tuple[int, int, int]:
    """(params in quantizable linears, other params, params of the largest unsplittable block);
    modules named in `skip` stay unquantized. Builds the model on the meta device (about 2 s for a 7B on
    2 cores): a caller estimating several budgets passes the result to `estimate_rungs(sizes=...)`."""
    import torch

    model = _empty_model(config)
    quantizable = 0
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(part in name for part in skip):
            quantizable += module.weight.numel()
    total = sum(p.numel() for p in model.parameters())
    blocks = hf_bridge.no_split_modules(model)
    largest = max((sum(p.numel() for p in m.parameters()) for m in model.modules() if type(m).__name__ in blocks),
                  default=0)
    return quantizable, total - quantizable, largest


def kv_cache_bytes(config, context_tokens: int, bytes_per_value: int = 2) -> int:
    text = getattr(config, "text_config", None) or config
    heads = text.num_attention_heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    return 2 * text.num_hidden_layers * kv_heads * head_dim * context_tokens * bytes_per_value


def estimate_rungs(config, *, budget_bytes: int, context_tokens: int, headroom: float,
                   offload_bytes: int = 0, skip: tuple[str, ...] = ("lm_head",), concurrent: int = 1,
                   context_reserve: int = 0, sizes: tuple[int, int, int] | None = None) -> list[RungEstimate]:
    """One estimate per rung, in ladder order.

    `offload_bytes` is CPU RAM the last rung may spill into; `concurrent` requests each hold a full-context
    KV cache (the queue path); `context_reserve` is the CUDA context when the budget is a configured number.
    The offload rung keeps offloaded modules unquantized (transformers' fp32-cpu-offload recipe), so its RAM
    side is priced at 2 bytes per weight, and the card must hold the embeddings, the largest block (accelerate
    brings an offloaded block to the card to run it) and the caches.
    """
    quantizable, other, largest = sizes or layer_sizes(config, skip)
    kv = kv_cache_bytes(config, context_tokens) * max(1, concurrent)
    reserve = int(budget_bytes * headroom) + context_reserve
    out = []
    for rung in RUNGS:
        weights = int(quantizable * _LINEAR_BYTES[rung] + other * 2)
        if rung == "4bit-offload":
            on_device = other * 2 + largest * 2
            in_ram = quantizable * 2
            needed = on_device + kv + reserve
            out.append(RungEstimate(rung, on_device + in_ram, kv, needed,
                                    needed <= budget_bytes and in_ram <= offload_bytes, in_ram))
            continue
        needed = weights + kv + reserve
        out.append(RungEstimate(rung, weights, kv, needed, needed <= budget_bytes))
    return out


def ladder_for(precision: str | Sequence[str], *, cuda: bool, cpu_dtype: str = "bfloat16") -> list[str]:
    """The rungs engine.precision lets the loader try, in order: "auto" the whole ladder (the preflight then
    starts at the first that fits), one rung that rung and those below it, a list exactly its rungs in its
    order. Without a GPU fp16 means full precision on the CPU (cpu-<cpu_dtype>) and 4bit-offload, with no
    card to offload from, means 4bit."""
    cpu_full = f"cpu-{cpu_dtype}"
    ladder = list(RUNGS) if cuda else [cpu_full, "8bit", "4bit"]
    on_device = {} if cuda else {"fp16": cpu_full, "4bit-offload": "4bit"}
    if isinstance(precision, str):
        return ladder if precision == "auto" else ladder[ladder.index(on_device.get(precision, precision)):]
    rungs: list[str] = []
    for rung in precision:
        if rung not in RUNGS:
            raise ValueError(f"unknown rung {rung!r}; the rungs are {', '.join(RUNGS)}")
        rung = on_device.get(rung, rung)
        if rung not in rungs:
            rungs.append(rung)
    return rungs


def first_fitting_rung(estimates: list[RungEstimate], allowed: tuple[str, ...] = RUNGS) -> str | None:
    for e in estimates:
        if e.rung in allowed and e.fits:
            return e.rung
    return None


# engine.max_concurrent "auto" never batches more than this: on the bench model (issue 14, 2 CPU cores) 32 slots
# matched transformers serve's continuous batching at 8 and 32 clients; past it a step's batch only adds waiting
# time per token, and server.max_wait_s already answers the overflow with "busy, retry".
AUTO_SLOTS_CAP = 32


@dataclass(frozen=True)
class Concurrency:
    """How many requests are generated at once, and why (shown on /health and the Models tab)."""
    slots: int
    auto: bool
    why: str
    kv_budget_bytes: int = 0      # auto on a local model: what it was sized from (0 otherwise)
    kv_bytes_per_token: int = 0
    context_tokens: int = 0

    def to_dict(self) -> dict:
        return {"slots": self.slots, "setting": "auto" if self.auto else self.slots, "why": self.why,
                "kv_budget_bytes": self.kv_budget_bytes, "kv_bytes_per_token": self.kv_bytes_per_token,
                "context_tokens": self.context_tokens}


def fixed_concurrency(slots: int) -> Concurrency:
    return Concurrency(slots, False, f"{slots} set by engine.max_concurrent")


def size_concurrency(config, *, context_tokens: int, kv_budget_bytes: int, dtype_bytes: int = 2,
                     where: str = "RAM", cap: int = AUTO_SLOTS_CAP) -> Concurrency:
    """engine.max_concurrent "auto": as many full-context KV caches as the KV budget holds, 1 to `cap`.

    The budget is what the KV cache may take once the weights are loaded (engine.batching.kv_budget_bytes), so
    every slot can hold a whole context; bytes per token come from the model config via kv_cache_bytes.
    """
    per_token = kv_cache_bytes(config, 1, dtype_bytes)
    slots = max(1, min(cap, kv_budget_bytes // (per_token * context_tokens)))
    why = (f"auto: {slots} from {kv_budget_bytes / 1e9:.1f} GB KV budget ({where}), {per_token / 1024:g} KiB/token, "
           f"context {context_tokens}")
    return Concurrency(int(slots), True, why, kv_budget_bytes, per_token, context_tokens)
