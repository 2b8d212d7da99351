"""Load a model at the best precision that fits, stepping down on out-of-memory.

Ladder on a GPU: fp16 -> 8bit -> 4bit (nf4, double quant) -> 4bit with CPU offload -> clear error.
`auto` starts at the first rung the preflight says fits; an out-of-memory error while loading frees
what was taken and tries the next rung. Without a GPU the model loads on the CPU (bf16 or fp32),
stepping down to 8-bit/4-bit when RAM is short. Safetensors only, trust_remote_code off.
"""
from __future__ import annotations

import gc
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil
import torch

from engine.preflight import GiB, RUNGS, RungEstimate, estimate_rungs, first_fitting_rung


class ModelLoadError(RuntimeError):
    """No rung could load the model; the message says what was tried and what to change."""


@dataclass
class LoadAttempt:
    rung: str
    outcome: str          # "loaded", "out of memory: ...", "skipped: ..."
    seconds: float


@dataclass
class LoadReport:
    model_id: str
    folder: str
    rung: str             # fp16 | 8bit | 4bit | 4bit-offload | cpu-bfloat16 | cpu-float32
    device: str           # "cuda:0", "cpu", or "cuda:0+cpu"
    reason: str           # why this rung, in one sentence
    attempts: list[LoadAttempt] = field(default_factory=list)
    seconds: float = 0.0
    gpu_bytes: int = 0
    cpu_bytes: int = 0
    demo: bool = False
    notice: str = ""      # what the user must know: fallback to the demo model, no GPU, ...
    estimates: list[RungEstimate] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        where = f"{self.gpu_bytes / GiB:.2f} GiB GPU, {self.cpu_bytes / GiB:.2f} GiB CPU"
        return f"{self.model_id} at {self.rung} on {self.device} ({where}) in {self.seconds:.1f}s: {self.reason}"


@dataclass(frozen=True)
class LoadPlan:
    """What the loader was asked for; built from EngineConfig by the caller."""
    precision: str = "auto"                 # auto | fp16 | 8bit | 4bit
    budget_bytes: int | None = None         # GPU budget; None: free GPU memory from NVML
    cpu_dtype: str = "bfloat16"
    context_tokens: int = 4096
    headroom: float = 0.15
    skip_quantization: tuple[str, ...] = ("lm_head",)   # modules kept unquantized (vision towers, heads)


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, ValueError)) and (
        "out of memory" in text or "can't allocate memory" in text
        or "not enough gpu ram" in text or "enough gpu ram" in text)


def free_memory() -> None:
    """Give back what a failed load or generation held: Python objects, then the CUDA cache."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def model_bytes(model: torch.nn.Module) -> tuple[int, int]:
    """(bytes on GPU, bytes on CPU) of parameters and buffers as they are stored."""
    gpu = cpu = 0
    for t in list(model.parameters()) + list(model.buffers()):
        n = t.numel() * t.element_size()
        if t.device.type == "cuda":
            gpu += n
        else:
            cpu += n
    return gpu, cpu


def _rung_kwargs(rung: str, *, cuda: bool, plan: LoadPlan, budget: int | None) -> dict:
    from transformers import BitsAndBytesConfig

    target = {"": 0} if cuda else {"": "cpu"}
    compute = torch.bfloat16 if (not cuda or torch.cuda.is_bf16_supported()) else torch.float16
    if rung == "fp16":
        return {"dtype": torch.float16, "device_map": target}
    if rung.startswith("cpu-"):
        return {"dtype": getattr(torch, rung[4:])}
    skip = list(plan.skip_quantization)
    if rung == "8bit":
        q = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=skip)
        return {"quantization_config": q, "dtype": torch.float16, "device_map": target}
    q4 = dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
              bnb_4bit_compute_dtype=compute, llm_int8_skip_modules=skip)
    if rung == "4bit":
        return {"quantization_config": BitsAndBytesConfig(**q4), "dtype": compute, "device_map": target}
    if rung == "4bit-offload":
        ram = int(psutil.virtual_memory().available * 0.8)
        max_memory = {0: int(budget or 0), "cpu": ram}
        q = BitsAndBytesConfig(llm_int8_enable_fp32_cpu_offload=True, **q4)
        return {"quantization_config": q, "dtype": compute, "device_map": "auto", "max_memory": max_memory}
    raise ValueError(f"unknown rung {rung}")


def plan_rungs(config: Any, plan: LoadPlan, *, cuda: bool) -> tuple[list[str], str, list[RungEstimate]]:
    """The rungs to try in order, why we start where we do, and the preflight estimates."""
    cpu_full = f"cpu-{plan.cpu_dtype}"
    if cuda:
        from engine.monitor import free_gpu_bytes

        budget = plan.budget_bytes if plan.budget_bytes is not None else free_gpu_bytes()
        where = "engine.max_gpu_memory" if plan.budget_bytes is not None else "free GPU memory"
        ladder = list(RUNGS)
    elif plan.budget_bytes is not None:
        # No GPU but a budget: the ladder still decides the rung; quantized rungs load on the CPU.
        budget, where, ladder = plan.budget_bytes, "engine.max_gpu_memory (no GPU: on the CPU)", [cpu_full, "8bit", "4bit"]
    else:
        budget, where = int(psutil.virtual_memory().available * 0.9), "available RAM (no GPU)"
        ladder = [cpu_full, "8bit", "4bit"]
    offload = int(psutil.virtual_memory().available * 0.8) if cuda else 0
    estimates = estimate_rungs(config, budget_bytes=int(budget or 0), context_tokens=plan.context_tokens,
                               headroom=plan.headroom, offload_bytes=offload, skip=plan.skip_quantization)
    if not cuda:  # full precision on CPU: 2 bytes/weight for bf16, 4 for fp32
        full = estimates[0]
        scale = 2 if plan.cpu_dtype == "float32" else 1
        need = full.weight_bytes * scale + full.kv_cache_bytes + int(budget * plan.headroom)
        estimates = [RungEstimate(cpu_full, full.weight_bytes * scale, full.kv_cache_bytes, need, need <= budget)] + [
            e for e in estimates if e.rung in ("8bit", "4bit")]
    if plan.precision != "auto":
        start = plan.precision if (cuda or plan.precision != "fp16") else cpu_full
        why = f"engine.precision is {plan.precision}" + ("" if cuda or plan.precision != "fp16" else
                                                         f"; no GPU, so {plan.cpu_dtype} on the CPU")
        return ladder[ladder.index(start):], why, estimates
    first = first_fitting_rung(estimates, tuple(ladder))
    if first is None:
        need = min(e.needed_bytes for e in estimates)
        raise ModelLoadError(f"the model needs at least {need / GiB:.1f} GiB even at the smallest rung, but "
                             f"{where} is {budget / GiB:.1f} GiB: free memory, raise engine.max_gpu_memory, "
                             "or pick a smaller model")
    fitted = next(e for e in estimates if e.rung == first)
    why = (f"preflight: {fitted.weight_bytes / GiB:.2f} GiB of weights + {fitted.kv_cache_bytes / GiB:.2f} GiB "
           f"KV cache fit in {where} ({budget / GiB:.1f} GiB, {plan.headroom:.0%} kept free)")
    return ladder[ladder.index(first):], why, estimates


def load_pretrained(model_cls: Any, folder: str | Path, model_id: str, plan: LoadPlan,
                    **extra: Any) -> tuple[Any, LoadReport]:
    """Load `model_cls` from `folder` down the ladder; return (model, LoadReport) or raise ModelLoadError."""
    from transformers import AutoConfig

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    rungs, why, estimates = plan_rungs(config, plan, cuda=cuda)
    attempts: list[LoadAttempt] = []
    budget = plan.budget_bytes
    for rung in rungs:
        t0 = time.perf_counter()
        kwargs = _rung_kwargs(rung, cuda=cuda, plan=plan, budget=budget) | extra
        model = None
        try:
            model = model_cls.from_pretrained(str(folder), use_safetensors=True, trust_remote_code=False, **kwargs)
        except Exception as exc:  # noqa: BLE001 - only out-of-memory steps down; anything else is re-raised
            if not is_out_of_memory(exc):
                raise
            attempts.append(LoadAttempt(rung, f"out of memory: {str(exc).splitlines()[0][:160]}",
                                        time.perf_counter() - t0))
            del model
            free_memory()
            why = f"{rung} ran out of memory while loading; stepped down"
            continue
        model.eval()
        attempts.append(LoadAttempt(rung, "loaded", time.perf_counter() - t0))
        gpu, cpu = model_bytes(model)
        device = "cpu" if not cuda else ("cuda:0+cpu" if rung == "4bit-offload" else "cuda:0")
        notice = "" if cuda else "No GPU found: running on the CPU, replies will be slow."
        return model, LoadReport(model_id=model_id, folder=str(folder), rung=rung, device=device, reason=why,
                                 attempts=attempts, seconds=time.perf_counter() - started, gpu_bytes=gpu,
                                 cpu_bytes=cpu, notice=notice, estimates=estimates)
    tried = "; ".join(f"{a.rung}: {a.outcome}" for a in attempts)
    raise ModelLoadError(f"{model_id} could not be loaded at any precision ({tried}). "
                         "Close other programs using the GPU, set engine.max_gpu_memory lower, or use a smaller model.")
