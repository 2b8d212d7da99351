"""Out-of-memory recovery frees what the failed attempt took, before the retry or the next rung starts.

Real allocations on the tiny demo model: a forward hook raises torch's OutOfMemoryError after the KV
cache exists (as a real OOM at a decode step would), and weak references show whether the failed
attempt's cache -- or a half-loaded model -- is still alive when the next attempt runs.
"""
from __future__ import annotations

import gc
import weakref

import pytest
import torch
from transformers import AutoModelForCausalLM

from engine.serving.generation import GenerationParams
from engine.loading.loader import LoadPlan, load_pretrained
from engine.loading.memory import attempt, forget, is_out_of_memory

GREEDY = GenerationParams(max_new_tokens=6, min_new_tokens=6, temperature=0.0)
CONVERSATION = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there"},
                {"role": "user", "content": "Tell me about Seoul in two sentences."}]


def test_oom_after_the_kv_cache_exists_frees_that_cache_before_the_retry(tiny_engine):
    """The third forward (a decode step, the cache holds two steps) runs out of memory; every forward of the
    retry must find the failed attempt's cache collected."""
    seen: dict = {"calls": 0, "cache": None, "alive": []}

    def hook(module, args, kwargs):
        seen["calls"] += 1
        cache = kwargs.get("past_key_values")
        if seen["cache"] is None and seen["calls"] == 3:
            assert cache is not None and cache.get_seq_length() > 0
            seen["cache"] = weakref.ref(cache)
            del cache
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if seen["cache"] is not None:
            seen["alive"].append(seen["cache"]() is not None)

    handle = tiny_engine.model.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        stream = tiny_engine.generator.stream(CONVERSATION, GREEDY)
        text = stream.text()
    finally:
        handle.remove()
    assert any("ran out of memory; retried" in n for n in stream.stats.notices), stream.stats.notices
    assert stream.stats.completion_tokens == GREEDY.max_new_tokens and isinstance(text, str)
    assert len(seen["alive"]) >= 3       # the retry's forwards (the tokens the failed attempt did not give)
    assert not any(seen["alive"]), f"failed cache alive at {sum(seen['alive'])} of {len(seen['alive'])} retry forwards"


class _HalfLoaded:
    """A model class whose first load builds the real model, then runs out of memory in a deeper frame
    (as a load does when the last shards do not fit); later loads record whether that model is still alive."""

    def __init__(self):
        self.first: weakref.ref | None = None
        self.alive_at_next_rung: list[bool] = []

    def from_pretrained(self, folder, **kwargs):
        if self.first is not None:
            self.alive_at_next_rung.append(self.first() is not None)
            return AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        self.first = weakref.ref(model)
        return self._place(model)

    @staticmethod
    def _place(model):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 112.00 MiB")


def test_half_loaded_model_is_gone_before_memory_is_collected_and_the_next_rung(tiny_model_dir):
    """The collection that follows the failure (and with it torch.cuda.empty_cache on a GPU) must find the
    half-loaded model already unreachable; so must the next rung. Automatic collections are off meanwhile,
    so the ones seen are the loader's own."""
    cls = _HalfLoaded()
    at_collection: list[bool] = []

    def on_gc(phase, info):
        if phase == "start" and cls.first is not None and not cls.alive_at_next_rung:
            at_collection.append(cls.first() is not None)

    gc.callbacks.append(on_gc)
    gc.disable()
    try:
        model, report = load_pretrained(cls, tiny_model_dir, "demo:tiny", LoadPlan(precision="fp16"))
    finally:
        gc.enable()
        gc.callbacks.remove(on_gc)
    assert [a.rung for a in report.attempts] == ["cpu-bfloat16", "8bit"]
    assert report.attempts[0].outcome.startswith("out of memory: CUDA out of memory")
    assert at_collection and not any(at_collection), f"half-loaded model alive at collections: {at_collection}"
    assert cls.alive_at_next_rung == [False]


def test_forget_clears_the_frames_an_exception_keeps():
    holder: dict = {}

    def deep():
        big = torch.zeros(1024)
        holder["ref"] = weakref.ref(big)
        raise MemoryError("can't allocate memory")

    result, failure = attempt(deep)
    assert result is None and failure is not None and failure.reason == "can't allocate memory"
    assert holder["ref"]() is None
    try:
        deep()
    except MemoryError as exc:
        kept = exc
    assert holder["ref"]() is not None          # the exception's traceback keeps the frame, and the tensor
    forget(kept)
    assert holder["ref"]() is None and kept.__traceback__ is None


def test_attempt_lets_other_errors_through():
    def broken():
        raise ValueError("header of model.safetensors is corrupt")

    with pytest.raises(ValueError, match="corrupt"):
        attempt(broken)


@pytest.mark.parametrize("exc, oom", [
    (torch.OutOfMemoryError("CUDA out of memory"), True),
    (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"), True),
    (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 bytes"), True),
    (ValueError("Some modules are dispatched on the CPU or the disk. Make sure you have enough GPU RAM to fit"), True),
    (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED"), False),
    (RuntimeError("shape mismatch"), False),
])
def test_out_of_memory_classifier(exc, oom):
    assert is_out_of_memory(exc) is oom


def test_speech_oom_is_a_clear_error_and_the_voice_stays_usable():
    from config import EngineConfig
    from engine.media.speech import Voice
    from engine.errors import SpeechError

    voice = Voice.load(EngineConfig(demo_speech="tiny"), "en", demo=True)   # the tiny VITS (a torch model)
    fired = []

    def hook(module, args, kwargs):
        if not fired:
            fired.append(True)
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")

    handle = voice.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with pytest.raises(SpeechError, match="ran out of memory while speaking .*the voice is still loaded"):
            voice.speak("Hello there.")
    finally:
        handle.remove()
    assert voice.speak("Hello there.").wav[:4] == b"RIFF"
