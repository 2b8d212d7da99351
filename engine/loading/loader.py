"""Load a model at the best precision that fits, stepping down on out-of-memory.

Ladder on a GPU: fp16 -> 8bit -> 4bit (nf4, double quant) -> 4bit with CPU offload -> clear error.
`auto` starts at the first rung the preflight says fits; an out-of-memory error while loading frees
what was taken and tries the next rung. engine.precision may name one rung (start there) or list the
rungs to try, in order (only those are tried). Without a GPU the model loads on the CPU (bf16 or fp32),
stepping down to 8-bit/4-bit when RAM is short. Safetensors only, trust_remote_code off.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import psutil
import torch

from engine import hf_bridge
from engine.loading.quiet_logs import hush_hub_kernel_notice
from engine.loading.memory import attempt, half_dtype, is_out_of_memory
from engine.loading.preflight import (CUDA_CONTEXT_BYTES, GiB, RungEstimate, estimate_rungs, first_fitting_rung,
                              kv_cache_bytes, ladder_for)
from engine.errors import ModelLoadError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class PretrainedClass(Protocol):
    """A transformers class that loads weights from a folder: AutoModelForCausalLM, LlavaNextForConditionalGeneration,
    WhisperForConditionalGeneration, ... (an Auto class is not a PreTrainedModel subclass, so `type[PreTrainedModel]`
    would not take it)."""

    def from_pretrained(self, pretrained_model_name_or_path: str, /, *args: object,
                        **kwargs: object) -> PreTrainedModel: ...


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
    random_weights: bool = False   # a demo model of random weights (tests): its replies are noise
    prompt_path: str = ""          # mistral | chat_template (engine/prompting/codec.py); "" for non-chat models

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        where = f"{self.gpu_bytes / GiB:.2f} GiB GPU, {self.cpu_bytes / GiB:.2f} GiB CPU"
        return f"{self.model_id} at {self.rung} on {self.device} ({where}) in {self.seconds:.1f}s: {self.reason}"


@dataclass(frozen=True)
class LoadPlan:
    """What the loader was asked for; built from EngineConfig by the caller."""
    precision: str | tuple[str, ...] = "auto"   # auto | one rung | the rungs to try, in order (engine.precision)
    budget_bytes: int | None = None         # GPU budget; None: free GPU memory from NVML
    cpu_dtype: str = "bfloat16"
    context_tokens: int = 4096
    headroom: float = 0.15
    skip_quantization: tuple[str, ...] = ("lm_head",)   # modules kept unquantized (vision towers, heads)
    concurrent: int = 1                     # requests that each hold a full-context KV cache (engine.max_concurrent)
    gpu: int = 0                            # torch's cuda index the model loads on

    def __post_init__(self) -> None:
        if not isinstance(self.precision, str):   # a list from config.json: kept hashable, like the rest
            object.__setattr__(self, "precision", tuple(self.precision))


__all__ = ["LoadAttempt", "LoadPlan", "LoadReport", "ModelLoadError", "PretrainedClass", "is_out_of_memory",
           "load_pretrained", "model_bytes", "offload_device_map", "plan_rungs"]


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


def _bnb4(plan: LoadPlan, compute: torch.dtype, *, offloaded: list[str] = ()) -> Any:
    from transformers import BitsAndBytesConfig

    # Offloaded modules are named in llm_int8_skip_modules as well as implied by the fp32-cpu-offload flag:
    # transformers 5.23 reads the flag only against an explicit dict device_map, so say it both ways.
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=compute,
                              llm_int8_skip_modules=list(plan.skip_quantization) + list(offloaded),
                              llm_int8_enable_fp32_cpu_offload=bool(offloaded))


def _empty(model_cls: PretrainedClass, config: Any, dtype: torch.dtype) -> PreTrainedModel:
    """The model on the meta device (no memory), for sizing."""
    from accelerate import init_empty_weights

    with init_empty_weights():
        if hasattr(model_cls, "from_config"):
            return model_cls.from_config(config, dtype=dtype)
        return hf_bridge.model_from_config(model_cls, config, dtype=dtype)


def offload_device_map(model_cls: PretrainedClass, config: Any, plan: LoadPlan, *, gpu_bytes: int, cpu_bytes: int,
                       compute: torch.dtype) -> dict[str, int | str]:
    """An explicit device map for the 4-bit + CPU offload rung: accelerate's infer_auto_device_map over the
    model as bitsandbytes will build it (4-bit on the card), with at most `gpu_bytes` on card `plan.gpu`.

    transformers 5.23 quantizes the model before it resolves device_map="auto", so only a dict map lets
    the offloaded modules stay unquantized; this computes that dict the way "auto" would have.
    """
    from transformers.integrations.accelerate import infer_auto_device_map
    from transformers.quantizers import AutoHfQuantizer

    model = _empty(model_cls, config, compute)
    quantizer = AutoHfQuantizer.from_config(_bnb4(plan, compute), pre_quantized=False)
    quantizer.preprocess_model(model, dtype=compute, device_map=None)
    max_memory = quantizer.adjust_max_memory({plan.gpu: int(gpu_bytes), "cpu": int(cpu_bytes)})
    device_map = infer_auto_device_map(model, max_memory=max_memory,
                                       no_split_module_classes=hf_bridge.no_split_modules(model), hf_quantizer=quantizer)
    return dict(device_map)


def offloaded_modules(device_map: dict[str, int | str]) -> list[str]:
    return [name for name, where in device_map.items() if where in ("cpu", "disk")]


def offload_gpu_bytes(config: Any, plan: LoadPlan, *, budget: int, failed_bytes: int | None) -> int:
    """Card bytes the offload rung may fill with weights: the budget less caches, context and headroom, and
    always less than what the rung before it needed (that just ran out, or was priced not to fit)."""
    kv = kv_cache_bytes(config, plan.context_tokens) * max(1, plan.concurrent)
    room = int(budget * (1 - plan.headroom)) - kv
    if failed_bytes:
        room = min(room, int(failed_bytes * 0.8))
    return max(0, room)


def _rung_kwargs(rung: str, *, cuda: bool, plan: LoadPlan, model_cls: PretrainedClass | None = None,
                 config: Any = None, budget: int = 0, failed_bytes: int | None = None) -> dict:
    from transformers import BitsAndBytesConfig

    if rung in ("8bit", "4bit", "4bit-offload"):
        hush_hub_kernel_notice()

    target = {"": plan.gpu} if cuda else {"": "cpu"}
    # On a CPU bitsandbytes dequantizes each 4-bit weight to the compute dtype for every matmul, and without
    # AVX512-BF16 a bfloat16 matmul is the slow one: float32 compute was 1.3x (one token), 1.75x (32 rows) and 2.3x
    # (a 512-token prefill) faster on the bench-size model here (AVX2). Activations and the KV cache stay bfloat16:
    # bitsandbytes casts each result back to its input's dtype.
    compute = half_dtype(plan.gpu) if cuda else torch.float32
    if rung == "fp16":
        return {"dtype": torch.float16, "device_map": target}
    if rung.startswith("cpu-"):
        return {"dtype": getattr(torch, rung[4:])}
    if rung == "8bit":
        q = BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=list(plan.skip_quantization))
        return {"quantization_config": q, "dtype": torch.float16, "device_map": target}
    if rung == "4bit":
        return {"quantization_config": _bnb4(plan, compute), "dtype": compute if cuda else torch.bfloat16,
                "device_map": target}
    if rung == "4bit-offload":
        ram = int(psutil.virtual_memory().available * 0.8)
        gpu_bytes = offload_gpu_bytes(config, plan, budget=budget, failed_bytes=failed_bytes)
        device_map = offload_device_map(model_cls, config, plan, gpu_bytes=gpu_bytes, cpu_bytes=ram, compute=compute)
        offloaded = offloaded_modules(device_map)
        if not offloaded or plan.gpu not in device_map.values():
            raise ModelLoadError(f"4bit-offload: with {gpu_bytes / GiB:.2f} GiB for weights on the card the device map "
                                 f"puts {'nothing on the CPU' if not offloaded else 'nothing on the card'}")
        return {"quantization_config": _bnb4(plan, compute, offloaded=offloaded), "dtype": compute,
                "device_map": device_map}
    raise ValueError(f"unknown rung {rung}")


def _device_budget(plan: LoadPlan) -> tuple[int, str, int]:
    """(bytes, where they come from, CUDA context reserve) for the card the model loads on."""
    from engine.monitor import free_gpu_bytes

    if plan.budget_bytes is not None:
        return plan.budget_bytes, "engine.max_gpu_memory", CUDA_CONTEXT_BYTES
    return int(free_gpu_bytes(plan.gpu) or 0), f"free memory of cuda:{plan.gpu}", 0


def plan_rungs(config: Any, plan: LoadPlan, *, cuda: bool) -> tuple[list[str], str, list[RungEstimate]]:
    """The rungs to try in order, why we start where we do, and the preflight estimates.

    "auto" starts at the first rung of the whole ladder that the preflight says fits; one rung starts there;
    a list is tried exactly as listed (preflight.ladder_for), each stepping down on out-of-memory."""
    cpu_full = f"cpu-{plan.cpu_dtype}"
    context_reserve = 0
    ladder = ladder_for(plan.precision, cuda=cuda, cpu_dtype=plan.cpu_dtype)
    if cuda:
        budget, where, context_reserve = _device_budget(plan)
    elif plan.budget_bytes is not None:
        # No GPU but a budget: the ladder still decides the rung; quantized rungs load on the CPU.
        budget, where = plan.budget_bytes, "engine.max_gpu_memory (no GPU: on the CPU)"
    else:
        budget, where = int(psutil.virtual_memory().available * 0.9), "available RAM (no GPU)"
    offload = int(psutil.virtual_memory().available * 0.8) if cuda else 0
    estimates = estimate_rungs(config, budget_bytes=int(budget or 0), context_tokens=plan.context_tokens,
                               headroom=plan.headroom, offload_bytes=offload, skip=plan.skip_quantization,
                               concurrent=plan.concurrent, context_reserve=context_reserve)
    if not cuda:  # full precision on CPU: 2 bytes/weight for bf16, 4 for fp32
        full = estimates[0]
        scale = 2 if plan.cpu_dtype == "float32" else 1
        need = full.weight_bytes * scale + full.kv_cache_bytes + int(budget * plan.headroom)
        estimates = [RungEstimate(cpu_full, full.weight_bytes * scale, full.kv_cache_bytes, need, need <= budget)] + [
            e for e in estimates if e.rung in ("8bit", "4bit")]
    if plan.precision != "auto":
        named = plan.precision if isinstance(plan.precision, str) else " → ".join(plan.precision)
        why = f"engine.precision is {named}" + ("" if cuda or "fp16" not in named else
                                                f"; no GPU, so fp16 is {plan.cpu_dtype} on the CPU")
        return ladder, why, estimates
    first = first_fitting_rung(estimates, tuple(ladder))
    if first is None:
        need = min(e.needed_bytes for e in estimates)
        smallest = min(estimates, key=lambda e: e.needed_bytes)
        raise ModelLoadError(f"the model needs at least {need / GiB:.1f} GiB (at {smallest.rung}, with "
                             f"{plan.concurrent} full-context KV cache(s) of {plan.context_tokens} tokens) but "
                             f"{where} is {budget / GiB:.1f} GiB: free memory, raise engine.max_gpu_memory, lower "
                             "engine.max_context or engine.max_concurrent, or pick a smaller model")
    fitted = next(e for e in estimates if e.rung == first)
    why = (f"preflight: {fitted.weight_bytes / GiB:.2f} GiB of weights + {fitted.kv_cache_bytes / GiB:.2f} GiB "
           f"KV cache fit in {where} ({budget / GiB:.1f} GiB, {plan.headroom:.0%} kept free)")
    return ladder[ladder.index(first):], why, estimates


class _ConversionLog(logging.Handler):
    """Keeps transformers' load report: an OOM while quantizing a tensor is only logged there, then re-raised
    as a generic "issues during automatic conversion" RuntimeError."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines += record.getMessage().splitlines()


@contextmanager
def _conversion_oom_as_memory_error():
    log = _ConversionLog()
    logger = logging.getLogger("transformers")   # the load report is logged by transformers.modeling_utils
    logger.addHandler(log)
    try:
        yield
    except RuntimeError as exc:
        oom = [line.strip() for line in log.lines if is_out_of_memory(RuntimeError(line))]
        if "automatic conversion" in str(exc) and oom:
            raise MemoryError(f"out of memory while converting weights: {oom[0][:200]}") from None
        raise
    finally:
        logger.removeHandler(log)


def _from_pretrained(model_cls: PretrainedClass, folder: str, **kwargs: object) -> PreTrainedModel:
    with _conversion_oom_as_memory_error():
        return model_cls.from_pretrained(folder, use_safetensors=True, trust_remote_code=False, **kwargs)


def load_pretrained(model_cls: PretrainedClass, folder: str | Path, model_id: str, plan: LoadPlan,
                    **extra: object) -> tuple[PreTrainedModel, LoadReport]:
    """Load `model_cls` from `folder` down the ladder; return (model, LoadReport) or raise ModelLoadError."""
    from transformers import AutoConfig

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    config = AutoConfig.from_pretrained(str(folder), trust_remote_code=False)
    rungs, why, estimates = plan_rungs(config, plan, cuda=cuda)
    attempts: list[LoadAttempt] = []
    needed = {e.rung: e.needed_bytes for e in estimates}
    failed_bytes: int | None = None      # what the last rung needed on the card, when it ran out of memory
    for i, rung in enumerate(rungs):
        t0 = time.perf_counter()
        if rung == "4bit-offload" and failed_bytes is None and i > 0:
            failed_bytes = needed.get(rungs[i - 1])   # the rung before was priced not to fit
        try:
            kwargs = _rung_kwargs(rung, cuda=cuda, plan=plan, model_cls=model_cls, config=config,
                                  budget=_device_budget(plan)[0] if cuda else 0, failed_bytes=failed_bytes) | extra
        except ModelLoadError as exc:
            attempts.append(LoadAttempt(rung, f"skipped: {exc}", time.perf_counter() - t0))
            continue
        model, failure = attempt(_from_pretrained, model_cls, str(folder), **kwargs)
        if failure is not None:    # memory is back: the half-loaded model's frames were cleared, then collected
            attempts.append(LoadAttempt(rung, f"out of memory: {failure.reason}", time.perf_counter() - t0))
            failed_bytes = needed.get(rung)
            why = f"{rung} ran out of memory while loading; stepped down"
            continue
        model.eval()
        attempts.append(LoadAttempt(rung, "loaded", time.perf_counter() - t0))
        gpu, cpu = model_bytes(model)
        device = "cpu" if not cuda else (f"cuda:{plan.gpu}+cpu" if cpu and gpu else f"cuda:{plan.gpu}")
        notice = "" if cuda else "No GPU found: running on the CPU, replies will be slow."
        return model, LoadReport(model_id=model_id, folder=str(folder), rung=rung, device=device, reason=why,
                                 attempts=attempts, seconds=time.perf_counter() - started, gpu_bytes=gpu,
                                 cpu_bytes=cpu, notice=notice, estimates=estimates)
    tried = "; ".join(f"{a.rung}: {a.outcome}" for a in attempts)
    raise ModelLoadError(f"{model_id} could not be loaded at any precision ({tried}). "
                         "Close other programs using the GPU, set engine.max_gpu_memory lower, or use a smaller model.")
