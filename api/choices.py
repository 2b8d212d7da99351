"""OpenAI's choice objects from engine streams: message or delta, tool_calls, logprobs, finish_reason."""
from __future__ import annotations

from typing import Any, Sequence


def finish_reason(stats: Any) -> str:
    if getattr(stats, "tool_calls", None):
        return "tool_calls"
    return "length" if stats.finish_reason == "length" else "stop"


def tool_calls(stats: Any) -> list[dict] | None:
    calls = getattr(stats, "tool_calls", None)
    return [c.to_dict() for c in calls] if calls else None


def logprobs(entries: Sequence[Any]) -> dict:
    return {"content": [e.to_dict() for e in entries], "refusal": None}


def choice(index: int, text: str, stats: Any, with_logprobs: bool) -> dict:
    calls = tool_calls(stats)
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else text}
    if calls:
        message["tool_calls"] = calls
    return {"index": index, "message": message, "finish_reason": finish_reason(stats),
            "logprobs": logprobs(stats.logprobs) if with_logprobs else None}


def tool_call_delta(stats: Any) -> dict | None:
    """The delta that carries the calls when a streamed reply turned out to be tool calls."""
    calls = tool_calls(stats)
    return {"tool_calls": [c | {"index": i} for i, c in enumerate(calls)]} if calls else None


def usage(all_stats: Sequence[Any]) -> dict:
    prompt = all_stats[0].prompt_tokens if all_stats else 0   # one prompt, as OpenAI counts it for n > 1
    completion = sum(s.completion_tokens for s in all_stats)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
