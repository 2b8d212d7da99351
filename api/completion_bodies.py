"""The answer bodies of POST /v1/completions, built as the `openai` package's own types (Completion,
CompletionChoice, its Logprobs), subclassed only where they cannot say what we send, each saying why.

logprobs is OpenAI's legacy shape: parallel lists `tokens`, `token_logprobs`, `top_logprobs` (a dict per token
of the most likely tokens, the chosen one included, so up to logprobs+1 entries, as OpenAI documents) and
`text_offset` (where each token starts in the choice's text; with echo the prompt's tokens come first).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Literal, Optional, Sequence

from openai.types import Completion, CompletionChoice
from openai.types.completion_choice import Logprobs
from openai.types.completion_usage import CompletionUsage

FinishReason = Literal["stop", "length"]


class TextLogprobs(Logprobs):
    """openai's Logprobs, but a prompt's first token has no logprob and no alternatives (nothing comes before
    it): null there with echo, as OpenAI and vLLM write it, which List[float] cannot hold."""
    token_logprobs: Optional[List[Optional[float]]] = None
    top_logprobs: Optional[List[Optional[Dict[str, float]]]] = None


class TextChoice(CompletionChoice):
    logprobs: Optional[TextLogprobs] = None


class TextChunkChoice(TextChoice):
    """A streamed piece of a choice: finish_reason is null until its last chunk (openai's type requires one)."""
    finish_reason: Optional[FinishReason] = None  # type: ignore[assignment]


class TextCompletion(Completion):
    choices: List[TextChoice]  # type: ignore[assignment]


class TextCompletionChunk(Completion):
    choices: List[TextChunkChoice]  # type: ignore[assignment]


@dataclass(frozen=True)
class Token:
    """One token of a choice's text: its text, logprob (None: a prompt's first token) and the alternatives."""
    text: str
    logprob: float | None
    top: dict[str, float] | None

    @classmethod
    def of(cls, entry: Any) -> "Token":
        """An engine.serving.logprobs.TokenLogprob; its alternatives and itself make the top dict."""
        return cls(entry.token, entry.logprob, {a.token: a.logprob for a in entry.top} | {entry.token: entry.logprob})

    @classmethod
    def first(cls, text: str) -> "Token":
        return cls(text, None, None)


class Offsets:
    """text_offset of a choice's tokens: each token starts where the text before it ends; a piece of text
    sent without tokens (the echoed prompt before generated tokens) moves the start on."""

    def __init__(self) -> None:
        self.at = 0

    def logprobs(self, tokens: Sequence[Token]) -> TextLogprobs:
        offsets = []
        for t in tokens:
            offsets.append(self.at)
            self.at += len(t.text)
        return TextLogprobs(tokens=[t.text for t in tokens], token_logprobs=[t.logprob for t in tokens],
                            top_logprobs=[t.top for t in tokens], text_offset=offsets)

    def skip_to(self, at: int) -> None:
        self.at = at


def joined(*parts: TextLogprobs) -> TextLogprobs:
    """One choice's logprobs from its parts in order (the echoed prompt's, then the reply's)."""
    fields = ("tokens", "token_logprobs", "top_logprobs", "text_offset")
    return TextLogprobs(**{f: [x for part in parts for x in getattr(part, f) or []] for f in fields})


def finish_reason(stats: Any) -> FinishReason:
    return "length" if stats is None or stats.finish_reason == "length" else "stop"


def usage(prompt_tokens: int, completion_tokens: int) -> CompletionUsage:
    return CompletionUsage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                           total_tokens=prompt_tokens + completion_tokens)


def completion(id: str, created: int, model: str, choices: Sequence[TextChoice], used: CompletionUsage
               ) -> TextCompletion:
    return TextCompletion(id=id, object="text_completion", created=created, model=model, choices=list(choices),
                          usage=used)


def chunk(id: str, created: int, model: str, index: int, text: str, logprobs: TextLogprobs | None = None,
          finish: FinishReason | None = None) -> TextCompletionChunk:
    """One streamed piece of one choice (logprobs and finish_reason always sent, null when none)."""
    return TextCompletionChunk(id=id, object="text_completion", created=created, model=model, choices=[
        TextChunkChoice(index=index, text=text, logprobs=logprobs, finish_reason=finish)])


def usage_chunk(id: str, created: int, model: str, used: CompletionUsage) -> TextCompletionChunk:
    """The last chunk when stream_options.include_usage asks: no choices, the usage of them all."""
    return TextCompletionChunk(id=id, object="text_completion", created=created, model=model, choices=[], usage=used)
