"""OpenAI's choice objects from engine streams, typed (the `openai` package's own classes): message or delta,
tool_calls, logprobs, finish_reason. api/responses.py wraps them into whole answers and chunks."""
from __future__ import annotations

from typing import Any, Literal, Sequence

from openai.types.chat import ChatCompletionMessage
from openai.types.chat import chat_completion as completion_types
from openai.types.chat import chat_completion_chunk as chunk_types
from openai.types.chat.chat_completion_message_function_tool_call import (
    ChatCompletionMessageFunctionToolCall, Function)
from openai.types.chat.chat_completion_token_logprob import ChatCompletionTokenLogprob, TopLogprob

FinishReason = Literal["stop", "length", "tool_calls"]


def finish_reason(stats: Any) -> FinishReason:
    if getattr(stats, "tool_calls", None):
        return "tool_calls"
    return "length" if stats.finish_reason == "length" else "stop"


def token_logprobs(entries: Sequence[Any]) -> list[ChatCompletionTokenLogprob]:
    """engine.serving.logprobs.TokenLogprob entries (token, logprob, bytes, top) as OpenAI's objects."""
    return [ChatCompletionTokenLogprob(token=e.token, logprob=e.logprob, bytes=list(e.bytes),
                                       top_logprobs=[TopLogprob(token=a.token, logprob=a.logprob, bytes=list(a.bytes))
                                                     for a in e.top])
            for e in entries]


def logprobs(entries: Sequence[Any]) -> completion_types.ChoiceLogprobs:
    """A whole choice's logprobs (refusal always null: we never refuse in logprobs)."""
    return completion_types.ChoiceLogprobs(content=token_logprobs(entries), refusal=None)


def delta_logprobs(entries: Sequence[Any]) -> chunk_types.ChoiceLogprobs:
    """The logprobs of the tokens one chunk carries."""
    return chunk_types.ChoiceLogprobs(content=token_logprobs(entries), refusal=None)


def message(text: str, stats: Any) -> ChatCompletionMessage:
    """The assistant's message: its text, or (content null) the tool calls it made."""
    calls = getattr(stats, "tool_calls", None)
    if not calls:
        return ChatCompletionMessage(role="assistant", content=text)
    return ChatCompletionMessage(role="assistant", content=None, tool_calls=[
        ChatCompletionMessageFunctionToolCall(id=c.id, type="function",
                                              function=Function(name=c.name, arguments=c.arguments))
        for c in calls])


def choice(index: int, text: str, stats: Any, with_logprobs: bool) -> completion_types.Choice:
    return completion_types.Choice(index=index, message=message(text, stats), finish_reason=finish_reason(stats),
                                   logprobs=logprobs(stats.logprobs) if with_logprobs else None)


def first_delta() -> chunk_types.ChoiceDelta:
    """A choice's first chunk: who speaks, no text yet."""
    return chunk_types.ChoiceDelta(role="assistant", content="")


def text_delta(text: str) -> chunk_types.ChoiceDelta:
    return chunk_types.ChoiceDelta(content=text)


def no_delta() -> chunk_types.ChoiceDelta:
    """The last chunk of a choice, which only carries finish_reason."""
    return chunk_types.ChoiceDelta()


def tool_call_delta(stats: Any) -> chunk_types.ChoiceDelta | None:
    """The delta that carries the calls when a streamed reply turned out to be tool calls (None: it did not)."""
    calls = getattr(stats, "tool_calls", None)
    if not calls:
        return None
    return chunk_types.ChoiceDelta(tool_calls=[
        chunk_types.ChoiceDeltaToolCall(index=i, id=c.id, type="function",
                                        function=chunk_types.ChoiceDeltaToolCallFunction(name=c.name,
                                                                                         arguments=c.arguments))
        for i, c in enumerate(calls)])
