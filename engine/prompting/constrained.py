"""Replies that must be JSON (any object, or one matching a JSON schema), by constrained decoding.

llguidance (Microsoft's grammar engine, also used by vLLM and llama.cpp) compiles the schema and, before
each token, says which tokens keep the reply valid; everything else gets probability zero. We only
translate its bitmask into logits. No grammar is written by hand here.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import torch
from engine.errors import ConstraintError

ANY_OBJECT = {"type": "object"}
# JSON laid out as json.dumps writes it (", " and ": "), which is how models saw JSON in training and how
# mistral-common writes tool calls; no other whitespace, or a model may pad forever between tokens.
# Unknown keywords (format, title, ...) are ignored rather than refused: OpenAI's own schemas carry many.
OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": ", "lenient": True}


@dataclass(frozen=True)
class JsonConstraint:
    """The reply is one JSON value matching `schema` (JSON text, so the params stay hashable)."""
    schema: str

    @classmethod
    def from_schema(cls, schema: dict | None) -> "JsonConstraint":
        return cls(json.dumps(ANY_OBJECT if schema is None else schema, ensure_ascii=False))

    def grammar(self) -> str:
        import llguidance

        try:
            return llguidance.LLMatcher.grammar_from_json_schema(json.loads(self.schema), overrides=OPTIONS)
        except (ValueError, TypeError, RuntimeError) as exc:
            raise ConstraintError(f"the JSON schema cannot be used: {exc}") from None


class GrammarTokenizer:
    """llguidance's view of one transformers tokenizer: built once per model (about 0.3 s), then shared."""

    def __init__(self, tokenizer: Any):
        self._tokenizer = tokenizer
        self._ll = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        with self._lock:
            if self._ll is None:
                import llguidance.hf

                self._ll = llguidance.hf.from_tokenizer(self._tokenizer)
            return self._ll

    def matcher(self, constraint: JsonConstraint) -> Any:
        """A fresh matcher at the start of the reply; ConstraintError if the schema does not compile."""
        import llguidance

        try:
            matcher = llguidance.LLMatcher(self.get(), constraint.grammar())
        except (ValueError, RuntimeError) as exc:
            raise ConstraintError(f"the JSON schema cannot be used: {exc}") from None
        if matcher.is_error():
            raise ConstraintError(f"the JSON schema cannot be used: {matcher.get_error()}")
        return matcher


class ConstrainedLogits:
    """transformers LogitsProcessor: tokens the grammar does not allow next get -inf (batch of one).

    Should the grammar engine fail mid-reply (it has fuel limits), only the end tokens stay allowed:
    the reply ends there, as text, instead of sampling from nothing.
    """

    def __init__(self, matcher: Any, prompt_length: int, end_ids: tuple[int, ...] = ()):
        self.matcher, self._seen, self.end_ids = matcher, prompt_length, end_ids

    def restart_at(self, length: int) -> None:
        """A new generate() call (after an out-of-memory retry) whose input ends at `length` ids."""
        self._seen = length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        for token in input_ids[0, self._seen:].tolist():
            self.matcher.consume_token(token)
        self._seen = input_ids.shape[1]
        allowed = allowed_tokens(self.matcher, scores.shape[-1], self.end_ids)
        return scores.masked_fill(~allowed.to(scores.device), float("-inf"))


def allowed_tokens(matcher: Any, vocab: int, end_ids: tuple[int, ...]) -> torch.Tensor:
    """[vocab] bools: the tokens `matcher` allows next (llguidance's bitmask unpacked; ids past the tokenizer's
    own vocabulary, where a model pads its embedding, are never allowed). When nothing is allowed (the grammar
    engine failed), only `end_ids`: the reply ends there. The one translation of the mask, for the plain path
    (ConstrainedLogits) and for each row of the continuous batch (engine/serving/sampling.GrammarRows)."""
    allowed = torch.zeros(vocab, dtype=torch.bool)
    if not matcher.is_error():
        bits = torch.frombuffer(bytearray(matcher.compute_bitmask()), dtype=torch.uint8)
        mask = ((bits.unsqueeze(1) >> torch.arange(8, dtype=torch.uint8)) & 1).reshape(-1).bool()[:vocab]
        allowed[:mask.numel()] = mask
    if not allowed.any():
        allowed[list(end_ids)] = True
    return allowed
