"""Tool calling in the model's own format: Mistral's [AVAILABLE_TOOLS] / [TOOL_CALLS] / [TOOL_RESULTS].

The prompt of a conversation with tools is encoded by mistral-common itself (the reference for Mistral
prompts), from the model folder's SentencePiece file. The reply is a tool call when it starts with the
[TOOL_CALLS] control token; the JSON list after it is parsed into OpenAI's tool_calls. When the caller
requires a call (tool_choice "required" or a named function), [TOOL_CALLS] is placed by us and the JSON
is constrained (engine/prompting/constrained.py) to calls of the offered functions with their parameter schemas.

Chat-template models (TemplateToolPrompt) whose template renders `tools` and for which transformers has a
response parser (the tokenizer's `response_template`, or the built-in one for its model_type: Qwen2/Qwen3,
Qwen3.5, Gemma 4) get the tools through their template and their replies parsed by `parse_response`. A
forced call there needs the Hermes/Qwen form (`<tool_call>` + JSON): we place the opening tag and constrain
the JSON. Other templates, and Mistral tokenizers without the control tokens, refuse tools.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from engine import hf_bridge
from engine.prompting.constrained import JsonConstraint
from engine.errors import PromptError, ToolsUnsupported

CONTROL = ("[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]", "[TOOL_CALLS]", "[TOOL_RESULTS]", "[/TOOL_RESULTS]")
VERSION_FILE = re.compile(r"tokenizer\.model\.(v\d+)$")


@dataclass(frozen=True)
class ToolSpec:
    """What a request offers: OpenAI tool objects (as JSON text, so params stay hashable) and the choice."""
    tools: str = "[]"
    choice: str = "auto"        # none | auto | required | the name of one function
    parallel: bool = True

    @classmethod
    def of(cls, tools: list[dict] | None, choice: str | None = None, parallel: bool | None = None) -> "ToolSpec":
        return cls(json.dumps(tools or [], ensure_ascii=False), choice or ("auto" if tools else "none"),
                   True if parallel is None else parallel)

    def functions(self) -> list[dict]:
        return [t["function"] for t in json.loads(self.tools)]

    @property
    def forced(self) -> bool:
        return self.choice not in ("auto", "none")

    def calls_constraint(self, single: bool = False) -> JsonConstraint:
        """The JSON list of calls a forced reply must be: offered names, arguments matching each schema.
        `single`: one call object instead of a list (formats that wrap each call in its own tags)."""
        def call(f: dict) -> dict:
            return {"type": "object", "additionalProperties": False, "required": ["name", "arguments"],
                    "properties": {"name": {"const": f["name"]},
                                   "arguments": f.get("parameters") or {"type": "object"}}}

        wanted = [f for f in self.functions() if self.choice == "required" or f["name"] == self.choice]
        if single:
            return JsonConstraint.from_schema({"anyOf": [call(f) for f in wanted]})
        schema: dict[str, Any] = {"type": "array", "minItems": 1, "items": {"anyOf": [call(f) for f in wanted]}}
        if not self.parallel:
            schema["maxItems"] = 1
        return JsonConstraint.from_schema(schema)


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str              # JSON text, as OpenAI sends it

    def to_dict(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def parse_calls(text: str) -> list[ToolCall] | None:
    """The calls in the JSON after [TOOL_CALLS]; None when it is not a list of {name, arguments}."""
    try:
        calls = json.loads(text)
    except ValueError:
        return None
    if isinstance(calls, dict):
        calls = [calls]
    if not isinstance(calls, list) or not calls:
        return None
    out = []
    for c in calls:
        if not isinstance(c, dict) or not isinstance(c.get("name"), str):
            return None
        args = c.get("arguments", {})
        out.append(ToolCall(uuid.uuid4().hex[:9], c["name"],
                            args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)))
    return out


class MistralToolPrompt:
    """Prompt ids of a conversation with tools, by mistral-common, for one Mistral model folder."""

    def __init__(self, codec: Any):
        self.codec = codec
        ids = codec.tokenizer.convert_tokens_to_ids(list(CONTROL))
        unk = codec.tokenizer.unk_token_id
        self.supported = getattr(codec, "path", "mistral") == "mistral" and all(i not in (None, unk) for i in ids)
        self.tool_calls_id = ids[2]
        self._reference = None
        self._lock = threading.Lock()

    def _tokenizer(self) -> Any:
        with self._lock:
            if self._reference is None:
                self._reference = _mistral_tokenizer(Path(self.codec.tokenizer.name_or_path))
            return self._reference

    def encode(self, messages: Sequence[dict], spec: ToolSpec) -> list[int]:
        """ids ending where the reply starts ([TOOL_CALLS] included when a call is forced). PromptError on
        a conversation mistral-common refuses (its validator names the problem)."""
        from mistral_common.exceptions import MistralCommonException
        from mistral_common.protocol.instruct.request import ChatCompletionRequest
        from pydantic import ValidationError


        if getattr(self.codec, "path", "mistral") != "mistral":
            raise ToolsUnsupported(chat_template_refusal(self.codec.tokenizer))
        if not self.supported:
            raise ToolsUnsupported("this Mistral tokenizer has no [TOOL_CALLS]/[AVAILABLE_TOOLS] control tokens")
        tools = [{"type": "function", "function": f} for f in spec.functions()] if spec.choice != "none" else None
        try:
            request = ChatCompletionRequest(messages=[_reference_message(m) for m in messages], tools=tools)
            ids = list(self._tokenizer().encode_chat_completion(request).tokens)
        except (MistralCommonException, ValidationError, ValueError, TypeError) as exc:
            raise PromptError(f"the conversation with tools is not valid: {_first_line(exc)}") from None
        return ids + [self.tool_calls_id] if spec.forced else ids

    def constraint(self, spec: ToolSpec) -> JsonConstraint:
        return spec.calls_constraint()

    def is_call(self, token_ids: list[int], text: str, spec: ToolSpec) -> bool | None:
        """A reply is a call when its first token is [TOOL_CALLS] (never with tool_choice "none")."""
        return spec.choice != "none" and token_ids[:1] == [self.tool_calls_id]

    def parse(self, text: str, spec: ToolSpec, prompt: list[int]) -> list[ToolCall] | None:
        return parse_calls(text)


HERMES_OPEN = "<tool_call>"
HERMES_CALLS = r"\s*<tool_call>"   # transformers' Qwen2/Qwen3 response template opens a call with this


def response_schema(tokenizer: Any, model: Any) -> dict | None:
    """transformers' response parser for this model: the tokenizer's response_template, else its built-in one
    by model_type (imported only here: transformers' serving module also loads fastapi)."""
    if getattr(tokenizer, "response_template", None) is not None:
        return tokenizer.response_template
    return hf_bridge.response_template(tokenizer, model)   # None without transformers' serving extras (fastapi)


class TemplateToolPrompt:
    """Tools through a model's own chat template; calls read back by transformers' response parser."""

    def __init__(self, codec: Any, model: Any):
        self.codec, self.model = codec, model

    @functools.cached_property
    def schema(self) -> dict | None:
        """Looked up once; two threads racing to the first look compute the same value."""
        return response_schema(self.codec.tokenizer, self.model)

    def _hermes(self) -> bool:
        calls = ((self.schema or {}).get("fields") or {}).get("tool_calls") or {}
        return calls.get("open_pattern") == HERMES_CALLS and calls.get("content") == "json"

    def encode(self, messages: Sequence[dict], spec: ToolSpec) -> list[int]:
        """ids ending where the reply starts (the opening <tool_call> tag included when a call is forced).
        ToolsUnsupported when the template has no tool format or no parser; PromptError on a bad history."""
        from engine.prompting.template import render_ids

        tokenizer = self.codec.tokenizer
        if not renders_tools(getattr(tokenizer, "chat_template", None)) or self.schema is None:
            raise ToolsUnsupported(chat_template_refusal(tokenizer, getattr(self.model.config, "model_type", None)))
        if spec.forced and not self._hermes():
            raise ToolsUnsupported(f"tool_choice {spec.choice!r} forces a call, which this server does only for "
                                   "the <tool_call>{json}</tool_call> format (Qwen2/Qwen3 and Hermes templates); "
                                   "use tool_choice auto with this model", param="tool_choice")
        tools = [{"type": "function", "function": f} for f in spec.functions()] if spec.choice != "none" else None
        ids = render_ids(self.codec, _template_messages(messages), generation_prompt=True, tools=tools)
        return ids + self.codec.encode(HERMES_OPEN + "\n") if spec.forced else ids

    def constraint(self, spec: ToolSpec) -> JsonConstraint:
        return spec.calls_constraint(single=True)

    def is_call(self, token_ids: list[int], text: str, spec: ToolSpec) -> bool | None:
        """True once the reply opens with the call tag, False once it cannot, None while it still may."""
        if spec.choice == "none":
            return False
        if not self._hermes():   # other call formats: the whole reply is held and parsed at its end
            return True
        start = text.lstrip()
        if start.startswith(HERMES_OPEN):
            return True
        return None if HERMES_OPEN.startswith(start) else False

    def parse(self, text: str, spec: ToolSpec, prompt: list[int]) -> list[ToolCall] | None:
        """A forced reply is the JSON of one call; a free one goes through transformers' parser."""
        if spec.forced:
            return parse_calls(text)
        tokenizer = self.codec.tokenizer
        try:
            message = tokenizer.parse_response(text, self.schema, prefix=tokenizer.decode(prompt),
                                               tools=[{"type": "function", "function": f} for f in spec.functions()])
        except (ValueError, TypeError, KeyError):   # not a well-formed call: the text goes out as text
            return None
        calls = [c.get("function") or {} for c in message.get("tool_calls") or []]
        if not calls or any(not isinstance(c.get("name"), str) for c in calls):
            return None
        return [ToolCall(uuid.uuid4().hex[:9], c["name"], c["arguments"] if isinstance(c.get("arguments"), str)
                         else json.dumps(c.get("arguments") or {}, ensure_ascii=False)) for c in calls]


def tool_prompt(codec: Any, model: Any) -> "MistralToolPrompt | TemplateToolPrompt":
    """The tool format of this model's prompt path."""
    return MistralToolPrompt(codec) if getattr(codec, "path", "mistral") == "mistral" else TemplateToolPrompt(codec, model)


TEMPLATE_ROLES = ("system", "user", "assistant", "tool")


def _template_messages(messages: Sequence[dict]) -> list[dict]:
    """OpenAI messages -> what chat templates read (transformers' convention: arguments as a dict).
    PromptError names a message a template could not take."""
    from engine.prompting.mistral import check_message
    from engine.errors import PromptError

    out = []
    for i, m in enumerate(messages):
        role, content = check_message(i, m, TEMPLATE_ROLES, content_default="")
        message: dict[str, Any] = {"role": role, "content": content}
        if role == "assistant" and m.get("tool_calls"):
            message["tool_calls"] = [{"id": c.get("id"), "type": "function",
                                      "function": {"name": c["function"]["name"],
                                                   "arguments": _arguments(c["function"]["arguments"])}}
                                     for c in m["tool_calls"]]
        if role == "tool":
            message["tool_call_id"] = m.get("tool_call_id")
            if m.get("name"):
                message["name"] = m["name"]
        out.append(message)
    if not out or out[-1]["role"] not in ("user", "tool"):
        raise PromptError("the conversation must end with a user message or a tool result")
    return out


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, TypeError):
        return text


def renders_tools(template: str | dict | None) -> bool:
    """Whether a chat template (or any of a tokenizer's named templates) reads the `tools` variable."""
    import jinja2
    from jinja2 import meta

    sources = template.values() if isinstance(template, dict) else [template]
    for source in sources:
        if not isinstance(source, str):
            continue
        try:
            if "tools" in meta.find_undeclared_variables(jinja2.Environment().parse(source)):
                return True
        except jinja2.TemplateSyntaxError:
            continue
    return False


def chat_template_refusal(tokenizer: Any, model_type: str | None = None) -> str:
    """Why a chat-template model refuses `tools`: its template has no tool format, or we cannot read its calls."""
    if not renders_tools(getattr(tokenizer, "chat_template", None)):
        return "this model's chat template has no tool format (it does not render `tools`)"
    return (f"this model's chat template has a tool format, but transformers has no parser for its tool calls "
            f"(no response_template in the tokenizer, and none built in for model type {model_type or 'unknown'!r})")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _short_id(call_id: str | None) -> str:
    """Mistral v3 takes 9-character alphanumeric call ids; other ids map to one consistently."""
    call_id = call_id or ""
    return call_id if re.fullmatch(r"[A-Za-z0-9]{9}", call_id) else hashlib.sha1(call_id.encode()).hexdigest()[:9]


def _reference_message(m: dict) -> dict:
    """Our message dict -> mistral-common's (OpenAI's shape: tool_calls with JSON-text arguments)."""
    role = m.get("role")
    out: dict[str, Any] = {"role": role, "content": m.get("content") or ""}
    if role == "assistant" and m.get("tool_calls"):
        out["tool_calls"] = [{"id": _short_id(c.get("id")), "type": "function",
                              "function": {"name": c["function"]["name"], "arguments": c["function"]["arguments"]}}
                             for c in m["tool_calls"]]
        if not out["content"]:
            out["content"] = None
    if role == "tool":
        out["tool_call_id"] = _short_id(m.get("tool_call_id"))
        if m.get("name"):
            out["name"] = m["name"]
    return out


def _mistral_tokenizer(folder: Path) -> Any:
    """mistral-common's tokenizer for the folder's SentencePiece file; v3 unless the file name says otherwise."""
    from mistral_common.tokens.tokenizers import mistral as mc
    from mistral_common.tokens.tokenizers.base import TokenizerVersion
    from mistral_common.tokens.tokenizers.sentencepiece import SentencePieceTokenizer

    versioned = sorted(p for p in folder.glob("tokenizer.model.v*") if VERSION_FILE.search(p.name))
    path = versioned[-1] if versioned else folder / "tokenizer.model"
    if not path.is_file():
        raise ToolsUnsupported("the model folder has no SentencePiece tokenizer.model to encode tools with")
    version = TokenizerVersion(VERSION_FILE.search(path.name).group(1)) if versioned else TokenizerVersion.v3
    if version != TokenizerVersion.v3:
        raise ToolsUnsupported(f"tool calling is implemented for Mistral's v3 tokenizer; this model has {version.value}")
    tokenizer = SentencePieceTokenizer(path, tokenizer_version=version)
    return mc.MistralTokenizer(mc.InstructTokenizerV3(tokenizer), validator=mc.get_validator(version, mode=mc.ValidationMode.test),
                               request_normalizer=mc.get_normalizer(version, tokenizer.model_settings_builder))
