"""Log-probabilities of the tokens a reply was made of, with the most likely alternatives (OpenAI's logprobs).

A LogitsProcessor placed after the model's own processors and before sampling hands each step's
log-softmax to the consuming thread, which pairs it with the token the sampler picked.
"""
from __future__ import annotations

import math
import queue
import re
from dataclasses import dataclass
from typing import Any

import torch

MAX_TOP = 20                       # OpenAI's limit for top_logprobs
BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")


@dataclass(frozen=True)
class Alternative:
    token: str
    logprob: float
    bytes: list[int]

    def to_dict(self) -> dict:
        return {"token": self.token, "logprob": self.logprob, "bytes": self.bytes}


@dataclass(frozen=True)
class TokenLogprob(Alternative):
    top: tuple[Alternative, ...] = ()

    def to_dict(self) -> dict:
        return super().to_dict() | {"top_logprobs": [a.to_dict() for a in self.top]}


def token_text(tokenizer: Any, token_id: int) -> tuple[str, list[int]]:
    """A token's text and UTF-8 bytes; a lone byte of a longer character reads `bytes:\\xNN`, as OpenAI writes it."""
    piece = tokenizer.convert_ids_to_tokens(int(token_id)) or ""
    byte = BYTE_PIECE.fullmatch(piece)
    if byte:
        raw = bytes([int(byte.group(1), 16)])
    elif "\u2581" in piece:  # SentencePiece's word-start mark is a space
        raw = piece.replace("\u2581", " ").encode()
    else:
        raw = tokenizer.convert_tokens_to_string([piece]).encode()
    try:
        return raw.decode(), list(raw)
    except UnicodeDecodeError:
        return "".join(f"bytes:\\x{b:02x}" for b in raw), list(raw)


def _finite(x: float) -> float:
    return x if math.isfinite(x) else -9999.0   # a token the grammar ruled out: JSON has no -inf


def _alternative(tokenizer: Any, token_id: int, logprob: float) -> Alternative:
    text, raw = token_text(tokenizer, token_id)
    return Alternative(text, _finite(logprob), raw)


def describe(tokenizer: Any, row: torch.Tensor, token_id: int, top: int) -> TokenLogprob:
    """The chosen token's logprob and the `top` most likely tokens of the same step."""
    text, raw = token_text(tokenizer, token_id)
    alternatives: tuple[Alternative, ...] = ()
    if top:
        values, ids = torch.topk(row, min(top, row.numel()))
        alternatives = tuple(_alternative(tokenizer, i, v) for v, i in zip(values.tolist(), ids.tolist()))
    return TokenLogprob(text, _finite(float(row[token_id])), raw, alternatives)


class LogprobRecorder:
    """transformers LogitsProcessor that leaves the scores alone and sends their log-softmax to `sink`."""

    def __init__(self, sink: queue.Queue):
        self.sink = sink

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.sink.put(("scores", torch.log_softmax(scores[0].float(), dim=-1).cpu()))
        return scores
