"""One chat request, validated once, and the one door every caller opens a reply through.

The page, the Gradio endpoints and /v1 each turn what they were sent into `Sampling` (what the caller asked
for, None where it asked nothing) and call `ChatService.request(...)`: every limit, the adapter, the image,
the JSON schema and the tool schemas are checked there and nowhere else, and a `ChatRequest` comes back that
`ChatService.open_chat` can serve. A refusal is a RequestError (engine/errors.py) naming the parameter, raised
before any model work, so a streaming client gets a 400, never an error event after a 200.

Adding a sampling option: a field of Sampling and a row of SAMPLING_LIMITS here, the field of GenerationParams
that carries it to generation, and the place in the caller that reads it from its input.
"""
from __future__ import annotations

import math
import threading
from contextlib import ExitStack
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Mapping, Sequence

from engine.adapters import AdapterInfo
from engine.errors import AdapterError, EngineError, MessageTooLong, ModelUnavailable, PromptTooLong, RequestError
from engine.prompting.constrained import JsonConstraint
from engine.prompting.tools import ToolSpec
from engine.serving.generation import ChatStream, GenerationParams
from engine.switching import ModelSwitch
from engine.serving.scoring import ScoredPrompt, check_ids, prompt_ids, scored

if TYPE_CHECKING:
    from config import AppConfig
    from engine.chat import ChatEngine
    from engine.manager import ModelManager
    from engine.media.inputs import CheckedImage, ImageData

DESCRIBE_IMAGE = "Describe this image."   # the question for an image sent without one
MAX_STOP = 4


@dataclass(frozen=True)
class Bound:
    """The values one sampling option takes: [low, high], an int or a float."""
    low: float
    high: float
    integer: bool = False


# The range of every option a caller may set per request (the OpenAI ranges where OpenAI has the option).
SAMPLING_LIMITS: dict[str, Bound] = {
    "max_new_tokens": Bound(1, 2**31 - 1, integer=True),      # also capped by the model's context below
    "min_new_tokens": Bound(0, 2**31 - 1, integer=True),
    "temperature": Bound(0.0, 2.0),
    "top_p": Bound(0.0, 1.0),
    "top_k": Bound(0, 1000, integer=True),
    "repetition_penalty": Bound(0.5, 2.0),
    "presence_penalty": Bound(-2.0, 2.0),
    "frequency_penalty": Bound(-2.0, 2.0),
    "seed": Bound(-(2**63), 2**63 - 1, integer=True),
    "max_history_turns": Bound(1, 1000, integer=True),
    "logprobs": Bound(0, 20, integer=True),
}


class OutOfRange(RequestError):
    """A sampling option outside its range; `values` fill the user's sentence (name, low, high)."""
    code = "out_of_range"

    def __init__(self, name: str, bound: Bound, shown: str | None = None):
        low, high = (int(bound.low), int(bound.high)) if bound.integer else (bound.low, bound.high)
        super().__init__(f"{shown or name} must be {'an integer' if bound.integer else 'a number'} from {low} "
                         f"to {high}", param=shown or name,
                         values={"name": shown or name, "low": low, "high": high, "integer": bound.integer})


@dataclass(frozen=True)
class Sampling:
    """What a caller asks of one reply; None keeps the chat's or the configured default."""
    max_new_tokens: int | None = None
    min_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    seed: int | None = None
    max_history_turns: int | None = None
    logprobs: int | None = None
    stop: tuple[str, ...] | None = None

    @classmethod
    def of(cls, values: Mapping[str, object]) -> "Sampling":
        """The options in `values` that Sampling knows (a chat's stored settings, a form), others ignored."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known and v is not None and v != ""})

    def over(self, other: "Sampling") -> "Sampling":
        """These values where set, else `other`'s (a request's options over a chat's settings)."""
        return replace(other, **{f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None})


def checked_number(name: str, value: object, shown: str | None = None) -> float | int:
    """`value` if it is a number in SAMPLING_LIMITS[name]; OutOfRange naming it otherwise (bools, NaN too)."""
    bound = SAMPLING_LIMITS[name]
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value) \
        and bound.low <= value <= bound.high and (not bound.integer or float(value).is_integer())
    if not ok:
        raise OutOfRange(name, bound, shown)
    return int(value) if bound.integer else float(value)


@dataclass(frozen=True)
class RequestLimits:
    """What this server takes per request: message length, upload size, the model's context."""
    max_message_chars: int
    max_upload_bytes: int
    max_context: int


@dataclass(frozen=True)
class ChatRequest:
    """A request that passed every check: `ChatService.open_chat` serves it as it is."""
    messages: tuple[dict, ...]                 # [{"role", "content", ...}], the last one the user's
    params: GenerationParams
    adapter: AdapterInfo | None = None         # None: the base model
    image: "CheckedImage | None" = None        # the last user message's image: the image model answers


@dataclass
class Reply:
    """One reply's stream and where it came from (stored as the reply's provenance)."""
    stream: ChatStream
    model: str
    rung: str
    params: GenerationParams = GenerationParams()   # what it was generated with
    adapter: str | None = None
    adapter_fingerprint: str | None = None     # the adapter's own id (meta.json run_id)
    adapter_base: str | None = None            # fingerprint of the base it was trained on


class ChatService:
    """The chat model, the optional image model behind it, and the request checks both share."""

    def __init__(self, engine: "ChatEngine | ModelSwitch", manager: "ModelManager | None", defaults: GenerationParams,
                 *, max_message_chars: int, max_upload_bytes: int):
        # The chat model lives in a ModelSwitch (engine/switching.py): app.py builds one; a bare engine gets its own.
        self.models = engine if isinstance(engine, ModelSwitch) else ModelSwitch(engine)
        self.manager, self.defaults = manager, defaults
        self._max_chars, self._max_upload = max_message_chars, max_upload_bytes

    @property
    def engine(self) -> "ChatEngine":
        """The chat engine serving now (a reply holds its own from open_chat to its end)."""
        return self.models.current

    @property
    def limits(self) -> RequestLimits:
        return RequestLimits(self._max_chars, self._max_upload, self.engine.max_context)

    @classmethod
    def from_config(cls, cfg: AppConfig, engine: ChatEngine | ModelSwitch, manager: ModelManager | None) -> ChatService:
        """The door as config.json sets it: generation defaults, generation.max_message_chars, the upload limit."""
        return cls(engine, manager, GenerationParams.from_config(cfg.generation),
                   max_message_chars=cfg.generation.max_message_chars,
                   max_upload_bytes=cfg.server.max_upload_mb * 2**20)

    # ------------------------------------------------------------------------------------ validation
    def request(self, messages: Sequence[dict], sampling: Sampling = Sampling(), *, adapter: str | None = None,
                image: ImageData | CheckedImage | None = None, constraint: JsonConstraint | None = None, tools: ToolSpec | None = None,
                names: dict[str, str] | None = None, reply_prefix: str = "") -> ChatRequest:
        """Every check of a chat request, once. `names` maps an option to the caller's own name for it
        (/v1's max_tokens for max_new_tokens), so a refusal names what the caller sent. `reply_prefix`
        (Continue): the reply so far to the last user message; the model goes on from its end, and the stream
        gives only the new text."""
        self.models.check_open()          # ModelSwitching while the chat model is being replaced
        names = names or {}
        messages = tuple(messages)
        for i, m in enumerate(messages):
            if isinstance(m.get("content"), str):
                self.check_text(m["content"], f"messages.{i}.content")
        if reply_prefix:
            self._check_prefix(reply_prefix, image is not None, constraint is not None or tools is not None)
        params = self._params(sampling, names)
        params = replace(params, constraint=constraint, tools=tools, reply_prefix=reply_prefix or "")
        local_only = next((name for name, used in (("logprobs", params.logprobs is not None),
                                                   ("response_format", constraint is not None),
                                                   ("tools", tools is not None)) if used), None)
        if local_only and (self.engine.remote or image is not None):
            where = "a remote backend (engine.backend openai)" if self.engine.remote else "a message with an image"
            raise RequestError(f"{local_only} is not supported with {where}", param=local_only,
                               code="unsupported_parameter")
        checked_image = self._image(image, adapter) if image is not None else None
        info = self.check_adapter(adapter) if adapter else None
        if checked_image is None and not self.engine.remote:
            self.engine.check_request(params)        # JSON schema and forced tool calls compiled now
        if checked_image is not None:
            messages = self._with_question(messages)
        return ChatRequest(messages, params, info, checked_image)

    def completion(self, prompt: str | Sequence[int], sampling: Sampling = Sampling(), *, adapter: str | None = None,
                   names: dict[str, str] | None = None, param: str = "prompt", generate: bool = True,
                   scoring: bool = False) -> ChatRequest:
        """A raw completion (/v1/completions), every check once: the prompt's ids without a chat template (a text
        as the model's own tokenizer starts it, ids as sent), the sampling options and the adapter as for a chat,
        and room in the context for the prompt and the reply (`generate` False: max_tokens 0, the prompt alone).
        `scoring`: its prompt tokens' logprobs will be asked (`score`). RequestError naming `param` (the prompt)
        or the reply length otherwise; open_chat serves the request as it serves a chat."""
        self.models.check_open()          # ModelSwitching while the chat model is being replaced
        if self.engine.remote:
            raise RequestError("/v1/completions needs the model loaded here, and engine.backend is openai (a remote "
                               "server): use /v1/chat/completions", code="unsupported_endpoint")
        if scoring and self.engine.scheduler is None:
            raise RequestError("echo with logprobs (the prompt's logprobs) is not supported on ZeroGPU", param="echo",
                               code="unsupported_parameter")
        if not prompt:
            raise RequestError(f"{param} is empty: send the text (or token ids) to complete", param=param)
        names, codec = names or {}, self.engine.codec
        if isinstance(prompt, str):
            self.check_text(prompt, param)
        ids = prompt_ids(codec, prompt) if isinstance(prompt, str) else check_ids(prompt, len(codec.tokenizer), param)
        params = self._params(sampling, names)
        info = self.check_adapter(adapter) if adapter else None
        reply, limit = (params.max_new_tokens if generate else 0), self.limits.max_context
        if len(ids) + reply > limit:
            blame = param if len(ids) >= limit or not generate else names.get("max_new_tokens", "max_new_tokens")
            raise PromptTooLong(f"the prompt is {len(ids)} tokens and the reply may be {reply}: this model takes at "
                                f"most {limit} tokens of context (prompt and reply together)", param=blame,
                                values={"n": len(ids), "limit": limit})
        return ChatRequest((), replace(params, prompt_ids=tuple(ids)), info)

    def score(self, request: ChatRequest, top: int, cancel: threading.Event | None = None
              ) -> ScoredPrompt | None:
        """The logprob of each prompt token of a completion request but the first, with the `top` most likely
        tokens at each place, from the model and adapter that would generate its reply; None when
        `cancel` was set while it waited for a slot. The engine is held while it scores, as a reply holds it."""
        engine = self.models.hold()
        try:
            return scored(engine, request.params.prompt_ids or (), top, cancel, request.adapter)
        finally:
            self.models.release()

    def _check_prefix(self, prefix: object, image: bool, structured: bool) -> None:
        """A reply to continue: text within the message limit, for a chat model loaded here, answering text
        without tools or a JSON format (RequestError naming reply_prefix otherwise)."""
        if not isinstance(prefix, str):
            raise RequestError(f"reply_prefix must be text, got {type(prefix).__name__}", param="reply_prefix")
        where = ("a remote backend (engine.backend openai)" if self.engine.remote else
                 "a message with an image" if image else "tools or response_format" if structured else None)
        if where is not None:
            raise RequestError(f"reply_prefix (continuing a reply) is not supported with {where}",
                               param="reply_prefix", code="unsupported_parameter")
        self.check_text(prefix, "reply_prefix")

    def check_text(self, text: str, param: str = "messages") -> None:
        """generation.max_message_chars, before any tokenizing (MessageTooLong naming the message)."""
        limit = self.limits.max_message_chars
        if len(text) > limit:
            raise MessageTooLong(f"{param} is {len(text)} characters; this server takes at most {limit} per "
                                 "message (generation.max_message_chars)", param=param,
                                 values={"n": len(text), "limit": limit})

    def check_sampling(self, sampling: Sampling) -> None:
        """The sampling checks alone, for a caller that stores a message before asking for its reply (refused
        while the chat model is switched, too: the message would wait unanswered)."""
        self.models.check_open()
        self._params(sampling, {})

    def _params(self, sampling: Sampling, names: dict[str, str]) -> GenerationParams:
        values = {}
        for f in fields(Sampling):
            value = getattr(sampling, f.name)
            if value is None or f.name == "stop":
                continue
            values[f.name] = checked_number(f.name, value, names.get(f.name))
        longest = values.get("max_new_tokens", self.defaults.max_new_tokens)
        if "max_new_tokens" in values and longest > self.limits.max_context:
            name = names.get("max_new_tokens", "max_new_tokens")
            raise RequestError(f"{name} is {longest}, but this model takes at most {self.limits.max_context} tokens "
                               "of context (prompt and reply together)", param=name)
        if values.get("min_new_tokens", 0) > longest:
            name = names.get("min_new_tokens", "min_new_tokens")
            raise RequestError(f"{name} is {values['min_new_tokens']}, more than the {longest} tokens the reply "
                               f"may have ({names.get('max_new_tokens', 'max_new_tokens')})", param=name)
        if sampling.stop is not None:
            stop = [s for s in sampling.stop if s]
            if len(sampling.stop) > MAX_STOP:
                raise RequestError(f"stop takes at most {MAX_STOP} sequences, got {len(sampling.stop)}", param="stop")
            values["stop"] = stop
        return self.defaults.with_overrides(**values)

    def check_adapter(self, name: str) -> AdapterInfo:
        """The adapter `name` if this engine can use it (made for this base); AdapterError saying why not."""
        registry = self.engine.adapters
        if registry is None:
            raise AdapterError(f"adapter {name!r} cannot be used: the chat model runs on a remote server "
                               "(engine.backend = \"openai\"), and adapters need the model loaded here")
        return registry.check(name)

    def _image(self, image: ImageData | CheckedImage, adapter: str | None) -> CheckedImage:
        if adapter:
            raise RequestError(f"the adapter {adapter!r} applies to the chat model; a message with an image is "
                               "answered by the image model, which takes no adapter", param="model")
        return self.check_image(image)

    def check_image(self, image: ImageData | CheckedImage) -> CheckedImage:
        """An image (bytes or a path) decoded and checked against the upload limit; ImageError saying why not."""
        from engine.media.inputs import CheckedImage, ImageLimits, load_image

        if isinstance(image, CheckedImage):
            return image
        return load_image(image, ImageLimits(max_bytes=self.limits.max_upload_bytes))

    @staticmethod
    def _with_question(messages: tuple[dict, ...]) -> tuple[dict, ...]:
        *history, last = messages
        question = (last.get("content") or "").strip() or DESCRIBE_IMAGE
        return (*history, {**last, "content": question})

    # ------------------------------------------------------------------------------------ the door
    def open_chat(self, request: ChatRequest, cancel: threading.Event | None = None) -> Reply:
        """The reply's stream; refusals found only now (busy, a prompt too long) raise before any text."""
        if request.image is not None:
            return self._open_image(request, cancel)
        engine = self.models.hold()     # ModelSwitching while the model is switched; held to the reply's end
        try:
            reply = self._open_text(engine, request, cancel)
        except BaseException:
            self.models.release()
            raise
        reply.stream = reply.stream.finally_(self.models.release)
        return reply

    def _open_text(self, engine: "ChatEngine", request: ChatRequest, cancel: threading.Event | None) -> Reply:
        """The reply on `engine`, the one model it is written by from the first token to the last."""
        if request.adapter is not None and getattr(engine.adapters, "fingerprint", None) != request.adapter.base_fingerprint:
            self.check_adapter(request.adapter.name)     # checked on a model since switched: made for another base
        report = engine.report
        stream = engine.stream(list(request.messages), request.params, cancel, adapter=request.adapter)
        before = request.params.reply_prefix or self._prompt_end(engine, request.params)
        if before and engine.generator is not None:
            stream = engine.generator.continued(stream, before)
        info = request.adapter
        if info is None:
            return Reply(stream, report.model_id, report.rung, request.params)
        return Reply(stream, report.model_id, report.rung, request.params, info.name, info.run_id,
                     info.base_fingerprint)

    @staticmethod
    def _prompt_end(engine: "ChatEngine", params: GenerationParams) -> str:
        """The text a raw completion's last prompt tokens make: its reply goes on from there, so a first word
        keeps the space it has after them (Generator.continued), as prompt + text must read."""
        return engine.codec.decode(list(params.prompt_ids[-8:])) if params.prompt_ids else ""

    def _open_image(self, request: ChatRequest, cancel: threading.Event | None) -> Reply:
        if self.manager is None:
            raise ModelUnavailable("no image model is configured", what="image")
        stack = ExitStack()
        try:
            try:
                vision = stack.enter_context(self.manager.use("vision"))
            except EngineError:
                raise
            except (KeyError, RuntimeError, OSError, ValueError) as exc:   # a load failure the manager passed on
                raise ModelUnavailable(str(exc).splitlines()[0].strip("'\"") if str(exc) else type(exc).__name__,
                                       what="image") from exc
            *history, last = request.messages
            stream = vision.ask(request.image, last["content"], request.params, history=history, cancel=cancel)
        except BaseException:
            stack.close()
            raise
        # the image model stays marked busy until the reply ends or is closed
        return Reply(stream.finally_(stack.close), vision.report.model_id, vision.report.rung, request.params)


__all__ = ["ChatRequest", "ChatService", "DESCRIBE_IMAGE", "OutOfRange", "Reply",
           "RequestLimits", "SAMPLING_LIMITS", "Sampling", "checked_number"]
