"""What a chat request asks beyond the conversation (n, logprobs, response_format, tools), turned into
engine parameters; and the refusal, by name, of every field this server would otherwise ignore."""
from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel

from api.errors import bad_request
from api.schemas import ChatCompletionRequest, JsonObjectFormat, JsonSchemaFormat, NamedToolChoice
from engine.prompting.constrained import JsonConstraint
from engine.prompting.tools import ToolSpec
from engine.requests import Sampling

# Fields that do not change the reply: accepted as OpenAI accepts them.
HARMLESS = frozenset({"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"})
# Fields accepted only at the value that means "off".
NEUTRAL: dict[str, tuple] = {"logit_bias": ({},), "modalities": (["text"],)}
# /v1's names for the engine's sampling options, so a refusal names what the client sent.
NAMES = {"max_new_tokens": "max_tokens", "min_new_tokens": "min_tokens", "logprobs": "top_logprobs"}


@dataclass(frozen=True)
class Features:
    """What the body asks of the engine, in the engine's terms (checked by ChatService.request)."""
    sampling: Sampling
    n: int = 1
    constraint: JsonConstraint | None = None
    tools: ToolSpec | None = None


def refuse_unsupported(body: BaseModel) -> None:
    """400 naming the first unknown field (a body kept with extra="allow": chat's or completion's) that would
    change the reply if this server honoured it."""
    for key, value in (body.model_extra or {}).items():
        if key in HARMLESS or value is None or any(value == v for v in NEUTRAL.get(key, ())):
            continue
        raise bad_request(f"{key} is not supported by this server; leave it out of the request", key,
                          "unsupported_parameter")


def _constraint(body: ChatCompletionRequest) -> JsonConstraint | None:
    fmt = body.response_format
    if isinstance(fmt, JsonObjectFormat):
        return JsonConstraint.from_schema(None)
    if isinstance(fmt, JsonSchemaFormat):
        if fmt.json_schema.schema_ is None:
            return JsonConstraint.from_schema(None)
        return JsonConstraint.from_schema(fmt.json_schema.schema_)
    return None


def _tools(body: ChatCompletionRequest, has_tool_messages: bool) -> ToolSpec | None:
    names = [t.function.name for t in body.tools or []]
    choice = body.tool_choice
    if choice is not None and not names and choice != "none":
        raise bad_request("tool_choice needs tools: offer the functions in `tools`", "tool_choice")
    if isinstance(choice, NamedToolChoice):
        if choice.function.name not in names:
            raise bad_request(f"tool_choice names {choice.function.name!r}, which is not among the tools offered "
                              f"({', '.join(names)})", "tool_choice")
        choice = choice.function.name
    if len(set(names)) != len(names):
        raise bad_request("two tools have the same name", "tools")
    if not names and not has_tool_messages:
        return None
    tools = [t.model_dump(exclude_none=True) for t in body.tools or []]
    for t in tools:
        t["function"].pop("strict", None)
    return ToolSpec.of(tools, choice, body.parallel_tool_calls)


def request_features(body: ChatCompletionRequest, messages: list[dict]) -> Features:
    """400 naming the parameter for anything this server would otherwise ignore."""
    refuse_unsupported(body)
    if body.top_logprobs is not None and not body.logprobs:
        raise bad_request("top_logprobs needs logprobs set to true", "top_logprobs")
    has_tool_messages = any(m["role"] == "tool" or m.get("tool_calls") for m in messages)
    constraint, tools = _constraint(body), _tools(body, has_tool_messages)
    if body.min_tokens and (constraint is not None or tools is not None):
        # The grammar ends the reply where the format is complete; held past that, only garbage can follow.
        raise bad_request("min_tokens cannot be combined with response_format or tools: the format decides "
                          "where the reply ends", "min_tokens")
    stop = None if body.stop is None else (body.stop,) if isinstance(body.stop, str) else tuple(body.stop)
    sampling = Sampling(max_new_tokens=body.max_completion_tokens or body.max_tokens, min_new_tokens=body.min_tokens,
                        temperature=body.temperature, top_p=body.top_p, top_k=body.top_k,
                        repetition_penalty=body.repetition_penalty, seed=body.seed,
                        presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
                        logprobs=(body.top_logprobs or 0) if body.logprobs else None, stop=stop)
    return Features(sampling, body.n, constraint, tools)
