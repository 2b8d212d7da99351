"""ZeroGPU on Hugging Face Spaces: the GPU exists only inside functions decorated with `spaces.GPU`.

What the pinned `spaces` package (0.51.3) does, read from its source:
- Outside ZeroGPU (env SPACES_ZERO_GPU not true) `spaces.GPU(fn)` returns `fn` itself: a no-op.
- On ZeroGPU, `import spaces` patches torch before anything touches CUDA: in the main process
  `torch.cuda.is_available()` is True and `.to("cuda")` only records the tensor (it stays on CPU).
  When Gradio launches, the recorded tensors are packed; each decorated call runs in a forked worker
  that receives the GPU for `duration` seconds and moves them there. So models load at start
  "on cuda" in the main process, and the GPU work happens inside the decorated call.
- Arguments, return values and every yielded item are pickled between the two processes, and an
  exception raised in the worker reaches the caller only as "ZeroGPU worker error" with its class name.

Hence the rules here: import `spaces` first (`import_first`), validate in the main process, pass only
plain data (no models, locks or events), and carry exceptions back as values so users keep the message.
The same wrappers run everywhere; only the decorator is a no-op off ZeroGPU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import wraps
from typing import Any, Callable, Iterator, Mapping, TypeVar

T = TypeVar("T")
FLAG = "SPACES_ZERO_GPU"


def enabled(env: Mapping[str, str] | None = None) -> bool:
    """True on ZeroGPU hardware; parsed exactly as `spaces.config.boolean` does."""
    value = (os.environ if env is None else env).get(FLAG)
    return value is not None and value.lower() in ("1", "t", "true")


def import_first() -> None:
    """On ZeroGPU, import `spaces` before torch initialises CUDA (the package refuses to work after)."""
    if enabled():
        import spaces  # noqa: F401 - importing patches torch for ZeroGPU


@dataclass(frozen=True)
class GpuSeconds:
    """How long to ask ZeroGPU for: long enough for the request, short enough to keep the user's quota."""
    base: float = 10.0          # worker start and moving weights to the GPU
    per_token: float = 0.05     # one new token of the chat/image model
    per_audio_second: float = 0.5
    per_char: float = 0.02      # text-to-speech
    most: int = 120

    @classmethod
    def from_config(cls, cfg: Any) -> "GpuSeconds":
        """From an EngineConfig's zerogpu_* keys."""
        return cls(base=cfg.zerogpu_base_seconds, per_token=cfg.zerogpu_seconds_per_token,
                   most=cfg.zerogpu_max_seconds)

    def clamp(self, seconds: float) -> int:
        return int(max(1, min(self.most, round(seconds))))

    def tokens(self, max_new_tokens: int) -> int:
        return self.clamp(self.base + self.per_token * max_new_tokens)

    def audio(self, seconds_audio: float) -> int:
        return self.clamp(self.base + self.per_audio_second * seconds_audio)

    def text(self, chars: int) -> int:
        return self.clamp(self.base + self.per_char * chars)


@dataclass
class Raised:
    """An exception carried back from the GPU worker as a value (spaces would hide its message)."""
    error: BaseException


def _decorate(inside: Callable[..., Any], seconds: Callable[..., int]) -> Callable[..., Any]:
    try:
        import spaces
    except ImportError:
        if enabled():
            raise RuntimeError(f"{FLAG} is set but the `spaces` package is missing: pip install -r requirements.txt")
        return inside
    return spaces.GPU(inside, duration=seconds)


def _bare(exc: BaseException) -> BaseException:
    """The exception without its frames: they hold tensors, and frames do not pickle."""
    return exc.with_traceback(None)


def on_gpu(fn: Callable[..., T], seconds: Callable[..., int]) -> Callable[..., T]:
    """`fn` runs inside spaces.GPU with `seconds(*args, **kwargs)` as its duration; errors keep their message."""
    def inside(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised unchanged by `outside`
            return Raised(_bare(exc))

    decorated = _decorate(inside, seconds)

    @wraps(fn)
    def outside(*args: Any, **kwargs: Any) -> T:
        out = decorated(*args, **kwargs)
        if isinstance(out, Raised):
            raise out.error
        return out

    outside.seconds = seconds  # type: ignore[attr-defined] - the duration each call asks for, for checks
    return outside


def stream_on_gpu(fn: Callable[..., Iterator[T]], seconds: Callable[..., int]) -> Callable[..., Iterator[T]]:
    """A generator `fn` run inside spaces.GPU; its items stream back one by one, errors keep their message."""
    def inside(*args: Any, **kwargs: Any) -> Iterator[Any]:
        try:
            yield from fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - re-raised unchanged by `outside`
            yield Raised(_bare(exc))

    decorated = _decorate(inside, seconds)

    @wraps(fn)
    def outside(*args: Any, **kwargs: Any) -> Iterator[T]:
        for item in decorated(*args, **kwargs):
            if isinstance(item, Raised):
                raise item.error
            yield item

    outside.seconds = seconds  # type: ignore[attr-defined] - the duration each call asks for, for checks
    return outside


def text_then_stats(stream: Any) -> Iterator[Any]:
    """Inside the GPU call: a ChatStream's text pieces, then its finished stats (they cannot be shared)."""
    yield from stream
    yield stream.stats


def relay(items: Iterator[Any], stats: Any) -> Any:
    """Outside: a ChatStream over `text_then_stats` items; the last item's values are copied into `stats`."""
    from engine.serving.generation import ChatStream

    def pieces() -> Iterator[str]:
        try:
            for item in items:
                if isinstance(item, str):
                    yield item
                else:
                    vars(stats).update(vars(item))
        finally:
            items.close()

    return ChatStream(pieces(), stats)


__all__ = ["FLAG", "GpuSeconds", "Raised", "enabled", "import_first", "on_gpu", "relay", "stream_on_gpu",
           "text_then_stats"]
