"""Raw prompts (/v1/completions): their ids without a chat template, and the model's log-probability of each
prompt token given those before it (`echo` with `logprobs`: what evaluation harnesses read as log-likelihood).

Scoring is one teacher-forced forward pass over the prompt; it holds a slot of the engine's queue (admission
as for a reply: EngineBusy when full) and the adapter the request names, like a reply does.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator, Sequence

import torch

from engine.errors import GenerationOutOfMemory, RequestError
from engine.loading.memory import forget, is_out_of_memory, release
from engine.prompting.codec import TextCodec
from engine.serving.generation import ChatStream, StreamStats
from engine.serving.logprobs import TokenLogprob, describe, token_text

if TYPE_CHECKING:
    from engine.adapters import AdapterInfo
    from engine.chat import ChatEngine

ROWS_PER_SOFTMAX = 256     # log-softmax this many positions at a time: a float copy of all logits is not needed


def leading_ids(codec: TextCodec) -> list[int]:
    """The ids the tokenizer itself puts before a text (Mistral's <s> where its tokenizer adds it; none for
    SmolLM2): a raw prompt starts as the model's own tokenizer starts it, as vLLM and llama.cpp do."""
    plain = codec.tokenizer("a", add_special_tokens=False)["input_ids"]
    full = codec.tokenizer("a")["input_ids"]
    return list(full[:len(full) - len(plain)]) if plain and full[len(full) - len(plain):] == plain else []


def prompt_ids(codec: TextCodec, text: str) -> list[int]:
    """A text prompt's ids: the tokenizer's leading ids, then the text as the chat path encodes text (literal
    "[INST]" or "<|im_end|>" stays text, never a control token)."""
    return leading_ids(codec) + codec.encode(text)


def check_ids(ids: Sequence[int], vocab: int, param: str) -> list[int]:
    """Token ids a client sent: integers of this vocabulary (RequestError naming `param` otherwise)."""
    bad = next((i for i in ids if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < vocab), None)
    if bad is not None:
        raise RequestError(f"{param} holds the token id {bad!r}; this model's ids are 0 to {vocab - 1}", param=param)
    return list(ids)


@dataclass(frozen=True)
class ScoredPrompt:
    """A prompt's first token (nothing comes before it: no logprob, OpenAI's null) and each later token's logprob
    given the tokens before it, with the most likely tokens at its place."""
    first: str
    rest: list[TokenLogprob]


def logprobs_of(model: torch.nn.Module, codec: TextCodec, ids: Sequence[int], top: int) -> ScoredPrompt:
    """The prompt scored by one forward pass, `top` alternatives per token."""
    device = next(model.parameters()).device
    tokens = torch.tensor([list(ids)], device=device)
    with torch.inference_mode():
        logits = model(input_ids=tokens, attention_mask=torch.ones_like(tokens), use_cache=False).logits[0]
        out: list[TokenLogprob] = []
        for start in range(0, len(ids) - 1, ROWS_PER_SOFTMAX):     # the row at i predicts token i + 1
            rows = torch.log_softmax(logits[start:min(start + ROWS_PER_SOFTMAX, len(ids) - 1)].float(), dim=-1).cpu()
            out += [describe(codec.tokenizer, row, ids[start + 1 + i], top) for i, row in enumerate(rows)]
    return ScoredPrompt(token_text(codec.tokenizer, ids[0])[0], out)


def scored(engine: "ChatEngine", ids: Sequence[int], top: int, cancel: threading.Event | None = None,
           adapter: "AdapterInfo | None" = None) -> ScoredPrompt | None:
    """logprobs_of the prompt on the engine's model, in a slot of its queue and with `adapter` applied;
    None when `cancel` was set while waiting. EngineBusy before any work when the queue is full."""
    slots = engine.scheduler.slots
    slots.check_room()
    cancel = cancel or threading.Event()
    if not slots.acquire(cancel):
        return None
    try:
        found: list[ScoredPrompt] = []

        def run() -> Iterator[str]:
            """A generator, so the pass runs when the stream is read: inside the adapter's gate."""
            try:
                found.append(logprobs_of(engine.model, engine.codec, ids, top))
            except Exception as exc:
                if not is_out_of_memory(exc):
                    raise
                forget(exc)
                release()
                raise GenerationOutOfMemory("ran out of memory scoring the prompt: send a shorter prompt") from None
            yield from ()

        stream = ChatStream(run(), StreamStats(prompt_tokens=len(ids)))
        if engine.adapters is not None:
            stream = engine.adapters.gated(engine.model, stream, adapter)
        stream.text()
        return found[0] if found else None
    finally:
        slots.release()
