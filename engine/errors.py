"""One error shape for everything the engine refuses or fails at: a code, an HTTP status, the parameter to blame,
and when to retry.

api/ turns an EngineError into OpenAI's error body once (api/errors.py), ui/ into a sentence in the user's
language once (ui/errors.py), both from these fields alone: nobody reads the message text or the class name to
decide what happened. Subclasses set the class defaults; a raise may override `code` or `param` for one case.
"""
from __future__ import annotations


class EngineError(Exception):
    """A refusal (4xx) or a failure (5xx) with a message written for the person who sent the request."""

    code: str = "engine_error"
    status: int = 500
    param: str | None = None
    retry_after: int | None = None
    values: dict | None = None      # what a translated sentence needs (a name, a limit), beside the English one

    def __init__(self, message: str = "", *, code: str | None = None, param: str | None = None,
                 retry_after: int | None = None, status: int | None = None, values: dict | None = None):
        super().__init__(message)
        self.values = values
        if code is not None:
            self.code = code
        if param is not None:
            self.param = param
        if retry_after is not None:
            self.retry_after = retry_after
        if status is not None:
            self.status = status

    @property
    def message(self) -> str:
        return str(self)


# ----------------------------------------------------------------- the request: 400, answered before any work
class RequestError(EngineError, ValueError):
    """A request that cannot be served as asked: a value out of range, a parameter this model cannot take."""
    code, status = "invalid_parameter", 400


class PromptError(RequestError):
    """A conversation the model cannot take (wrong roles or order, empty text)."""
    code, param = "invalid_messages", "messages"


class PromptTooLong(PromptError):
    """Even the last message alone does not fit the context."""
    code = "context_length_exceeded"


class MessageTooLong(PromptError):
    """One message is longer than generation.max_message_chars, before any tokenizing."""
    code = "message_too_long"


class ConstraintError(RequestError):
    """A JSON schema llguidance cannot compile; the message says why."""
    code, param = "invalid_json_schema", "response_format"


class ToolsUnsupported(RequestError):
    """This model has no tool-call format we can encode."""
    code, param = "unsupported_parameter", "tools"


class AdapterError(RequestError):
    """An adapter cannot be used; the message says which and why."""
    code, param = "adapter_unusable", "model"


class AdapterNameError(AdapterError):
    """The name is not a plain folder name inside the adapters folder."""
    code = "adapter_not_found"


class AdapterNotFound(AdapterError):
    """No complete adapter of that name."""
    code = "adapter_not_found"


class AdapterMismatch(AdapterError):
    """The adapter was trained on another base model."""
    code = "adapter_base_mismatch"


class MediaError(RequestError):
    """An upload the app cannot use (an image or audio file); one sentence why."""
    code, param = "invalid_media", "messages"


class ImageError(MediaError):
    """An image the app cannot use."""
    code = "invalid_image"


class AudioError(MediaError):
    """An audio file the app cannot use."""
    code, param = "invalid_audio", "file"


class SpeechError(RequestError):
    """A request the speech models cannot serve (unknown language, nothing speakable)."""
    code, param = "invalid_input", "input"


# ----------------------------------------------------------------- capacity: 503 with a time to come back
class EngineBusy(EngineError, RuntimeError):
    """Too many requests are waiting; retry after `retry_after` seconds."""
    code, status, retry_after = "server_busy", 503, 2

    def __init__(self, message: str, retry_after: int = 2):
        super().__init__(message, retry_after=retry_after)


class ModelUnavailable(EngineError, RuntimeError):
    """A model could not be made resident (or none is configured); `what` names the feature that needed it."""
    code, status, retry_after = "model_not_available", 503, 30

    def __init__(self, message: str, what: str = ""):
        super().__init__(message)
        self.what, self.detail = what, message


class ModelLoadError(EngineError, RuntimeError):
    """No rung could load the model; the message says what was tried and what to change."""
    code, status, retry_after = "model_not_available", 503, 30


class SourceError(EngineError, RuntimeError):
    """The model cannot be had; the message says why and how to fix it."""
    code, status, retry_after = "model_not_available", 503, 30


class TemplateMissing(SourceError):
    """Not a Mistral tokenizer and no chat template: we would not know how to build a prompt."""


# ----------------------------------------------------------------- generation: the model stays usable
class GenerationError(EngineError, RuntimeError):
    """Generation failed in a way the user must hear about."""
    code, status = "generation_failed", 500


class GenerationOutOfMemory(GenerationError):
    """The device ran out of memory mid-reply; what the attempt held is freed, a retry may fit."""
    code, status, retry_after = "out_of_memory", 503, 5


class RemoteServerError(GenerationError):
    """The OpenAI-compatible server behind us refused, failed or cannot be reached: a gateway error."""
    code, status = "remote_server_error", 502
