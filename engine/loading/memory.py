"""One discipline for getting memory back after an out-of-memory error, used by every model path.

Why a module: an exception object keeps its traceback, the traceback keeps every frame it passed
through, and those frames keep their locals -- a half-loaded model, a KV cache, activations. Calling
`gc.collect()` / `torch.cuda.empty_cache()` while that chain is alive frees nothing. So:

    try:
        ...
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
        failure = forget(exc)       # frames cleared, traceback and context dropped; a short reason kept
    release()                       # OUTSIDE the except block: sys.exc_info() no longer holds it

`attempt(fn, ...)` is that pattern packaged for a single call.

Also here: which half-precision dtype a card really runs (compute capability >= 8 for bf16).
"""
from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

T = TypeVar("T")

# Text of errors that mean "memory ran out" although their type is generic. CUBLAS_STATUS_ALLOC_FAILED is
# how an OOM often shows at the first matmul (cuBLAS allocates its workspace there).
_OOM_TEXT = ("out of memory", "can't allocate memory", "cannot allocate memory", "enough gpu ram",
             "cublas_status_alloc_failed", "cudnn_status_alloc_failed", "cuda_error_out_of_memory",
             "failed to allocate")


def is_out_of_memory(exc: BaseException) -> bool:
    """True for torch's OutOfMemoryError, MemoryError and runtime errors whose text says memory ran out."""
    if isinstance(exc, (torch.OutOfMemoryError, MemoryError)):
        return True
    text = str(exc).lower()
    return isinstance(exc, (RuntimeError, ValueError)) and any(t in text for t in _OOM_TEXT)


@dataclass(frozen=True)
class Failure:
    """What is kept of an out-of-memory error once its frames are gone: enough to tell the user."""
    kind: str
    reason: str           # first line, at most 160 characters

    def __str__(self) -> str:
        return self.reason


def forget(exc: BaseException) -> Failure:
    """Cut `exc` loose from the frames (and the tensors in them) it keeps alive; return a short record.

    Clears the locals of every finished frame in its traceback (and in its chained context/cause), then
    drops the traceback and the chain. The exception object itself stays usable as a `from` cause.
    """
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        tb = e.__traceback__
        while tb is not None:
            try:
                tb.tb_frame.clear()
            except RuntimeError:  # a frame still executing (the caller's own): its locals stay
                pass
            tb = tb.tb_next
        todo += [e.__context__, e.__cause__]
        e.__traceback__ = None
        e.__context__ = None
    text = str(exc).strip()
    return Failure(type(exc).__name__, text.splitlines()[0][:160] if text else type(exc).__name__)


def release() -> None:
    """Collect unreachable objects, then return cached CUDA blocks to the driver. Call outside `except`."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def attempt(fn: Callable[..., T], *args, **kwargs) -> tuple[T | None, Failure | None]:
    """Run `fn`; on out-of-memory return (None, Failure) with the memory it took already given back.
    Any other error propagates unchanged."""
    try:
        return fn(*args, **kwargs), None
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is handled; the rest is re-raised
        if not is_out_of_memory(exc):
            raise
        failure = forget(exc)
    release()
    return None, failure


def supports_bf16(device: int = 0) -> bool:
    """bf16 on a CUDA card only at compute capability >= 8 (Ampere+): torch.cuda.is_bf16_supported() also
    counts emulation, which is True but slow on sm_75 (RTX 20xx, T4). On the CPU bf16 is native."""
    if not torch.cuda.is_available():
        return True
    major, _ = torch.cuda.get_device_capability(device)
    return major >= 8


def half_dtype(device: int = 0) -> torch.dtype:
    """The 16-bit dtype to compute in: bf16 where the hardware has it, else fp16."""
    return torch.bfloat16 if supports_bf16(device) else torch.float16


__all__ = ["Failure", "attempt", "forget", "half_dtype", "is_out_of_memory", "release", "supports_bf16"]
