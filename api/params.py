"""What a chat request asks beyond the conversation (n, logprobs, response_format, tools), turned into
engine parameters; and the refusal, by name, of every field this server would otherwise ignore."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.errors import bad_request
from api.schemas import ChatCompletionRequest, JsonObjectFormat, JsonSchemaFormat, NamedToolChoice
from engine.prompting.constrained import JsonConstraint
from engine.prompting.tools import ToolSpec

# Fields that do not change the reply: accepted as OpenAI accepts them.
HARMLESS = frozenset({"user", "metadata", "store", "service_tier", "safety_identifier", "prompt_cache_key"})
# Fields accepted only at the value that means "off".
NEUTRAL: dict[str, tuple] = {"frequency_penalty": (0,), "presence_penalty": (0,), "logit_bias": ({},),
                             "modalities": (["text"],)}


@dataclass(frozen=True)
class Features:
    n: int = 1
    logprobs: int | None = None            # None: off; else top alternatives per token
    constraint: JsonConstraint | None = None
    tools: ToolSpec | None = None

    def overrides(self) -> dict[str, Any]:
        return {"logprobs": self.logprobs, "constraint": self.constraint, "tools": self.tools}

    @property
    def local_only(self) -> str | None:
        """The first parameter a remote backend or the image model cannot honour, if any."""
        return next((name for name, used in (("logprobs", self.logprobs is not None),
                                             ("response_format", self.constraint is not None),
                                             ("tools", self.tools is not None)) if used), None)


def refuse_unsupported(body: ChatCompletionRequest) -> None:
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
    """400 naming the parameter for anything not honoured."""
    refuse_unsupported(body)
    if body.top_logprobs is not None and not body.logprobs:
        raise bad_request("top_logprobs needs logprobs set to true", "top_logprobs")
    has_tool_messages = any(m["role"] == "tool" or m.get("tool_calls") for m in messages)
    features = Features(n=body.n, logprobs=(body.top_logprobs or 0) if body.logprobs else None,
                        constraint=_constraint(body), tools=_tools(body, has_tool_messages))
    if body.min_tokens and (features.constraint is not None or features.tools is not None):
        # The grammar ends the reply where the format is complete; held past that, only garbage can follow.
        raise bad_request("min_tokens cannot be combined with response_format or tools: the format decides "
                          "where the reply ends", "min_tokens")
    return features
