"""Request bodies of the OpenAI-compatible routes, as pydantic models (FastAPI validates them).

Parts of a request that do not change the reply (user, metadata, ...) are accepted; a chat request's
other unknown fields are kept so /v1/chat/completions can refuse them by name (api/params.py): no
parameter is silently ignored.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt

from engine.requests import SAMPLING_LIMITS


def limits_of(name: str) -> dict:
    """Field bounds of an engine sampling option, from the one table of ranges (engine/requests.py)."""
    bound = SAMPLING_LIMITS[name]
    return {"ge": bound.low, "le": bound.high}


def _encodable(text: str) -> str:
    """Text that cannot be UTF-8 (a lone surrogate such as \\ud800 in JSON) is refused here, never deeper."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"the text holds a character that cannot be encoded as UTF-8 "
                         f"(U+{ord(text[exc.start]):04X}, a lone surrogate)") from None
    return text


Text = Annotated[str, AfterValidator(_encodable)]
Number = Annotated[float, Strict()]   # OpenAI's strict types: "0.5" or true is not a number


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Lenient):
    type: Literal["text"]
    text: Text


class ImageUrl(_Lenient):
    url: str = Field(min_length=1)
    detail: str | None = None


class ImagePart(_Lenient):
    type: Literal["image_url"]
    image_url: ImageUrl


class FileData(_Lenient):
    filename: Text | None = None
    file_data: str | None = None      # data:<mime>;base64,<bytes>
    file_id: str | None = None        # a Files API id: refused (this server keeps no uploaded files)


class FilePart(_Lenient):
    """A document in a user message (OpenAI's `file` part): its text goes into the context (api/messages.py)."""
    type: Literal["file"]
    file: FileData


ContentPart = Annotated[Union[TextPart, ImagePart, FilePart], Field(discriminator="type")]


class FunctionCallIn(_Lenient):
    name: Text = Field(min_length=1)
    arguments: Text


class ToolCallIn(_Lenient):
    """A call the assistant made earlier in the conversation (sent back with the tool's result)."""
    id: Text | None = None
    type: Literal["function"] = "function"
    function: FunctionCallIn


class ChatMessage(_Lenient):
    role: str
    content: Text | list[ContentPart] | None = None
    name: Text | None = None
    tool_calls: list[ToolCallIn] | None = None      # assistant messages
    tool_call_id: Text | None = None                 # tool messages


class FunctionDef(_Lenient):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: Text | None = None
    parameters: dict | None = None
    strict: StrictBool | None = None


class ToolParam(_Lenient):
    type: Literal["function"]
    function: FunctionDef


class NamedFunction(_Lenient):
    name: str = Field(min_length=1)


class NamedToolChoice(_Lenient):
    type: Literal["function"]
    function: NamedFunction


class JsonSchemaSpec(_Lenient):
    name: str = Field(min_length=1, max_length=64)
    description: Text | None = None
    schema_: dict | None = Field(None, alias="schema")
    strict: StrictBool | None = None


class TextFormat(_Lenient):
    type: Literal["text"]


class JsonObjectFormat(_Lenient):
    type: Literal["json_object"]


class JsonSchemaFormat(_Lenient):
    type: Literal["json_schema"]
    json_schema: JsonSchemaSpec


ResponseFormat = Annotated[Union[TextFormat, JsonObjectFormat, JsonSchemaFormat], Field(discriminator="type")]
MAX_CHOICES = 8


class StreamOptions(_Lenient):
    include_usage: StrictBool = False


class ChatCompletionRequest(BaseModel):
    """Unknown fields are kept (model_extra) so the route can refuse those it would otherwise ignore."""
    model_config = ConfigDict(extra="allow")

    model: Text = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: Number | None = Field(None, **limits_of("temperature"))
    top_p: Number | None = Field(None, gt=0.0, le=1.0)
    max_tokens: StrictInt | None = Field(None, **limits_of("max_new_tokens"))
    max_completion_tokens: StrictInt | None = Field(None, **limits_of("max_new_tokens"))
    min_tokens: StrictInt | None = Field(None, **limits_of("min_new_tokens"),   # vLLM's name
                                         description="no end of reply before this many tokens")
    stop: Text | list[Text] | None = None
    seed: StrictInt | None = Field(None, **limits_of("seed"), description="a 64-bit integer, as OpenAI takes")
    top_k: StrictInt | None = Field(None, **limits_of("top_k"), description="vLLM's name; 0 turns it off")
    repetition_penalty: Number | None = Field(None, **limits_of("repetition_penalty"),
                                              description="vLLM's name; 1.0 turns it off")
    presence_penalty: Number | None = Field(None, **limits_of("presence_penalty"))
    frequency_penalty: Number | None = Field(None, **limits_of("frequency_penalty"))
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: StrictInt = Field(1, ge=1, le=MAX_CHOICES, description=f"choices per request, at most {MAX_CHOICES}")
    logprobs: StrictBool | None = None
    top_logprobs: StrictInt | None = Field(None, **limits_of("logprobs"))
    response_format: ResponseFormat | None = None
    tools: list[ToolParam] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: StrictBool | None = None


TokenIds = list[StrictInt]
MAX_PROMPTS = 32


class CompletionRequest(BaseModel):
    """POST /v1/completions (OpenAI's legacy endpoint). prompt: a text, a list of texts, token ids, or a list of
    those; max_tokens 0 with echo scores the prompt only. Unknown fields are kept, to be refused by name."""
    model_config = ConfigDict(extra="allow")

    model: Text = Field(min_length=1)
    prompt: Text | TokenIds | list[Text] | list[TokenIds]
    max_tokens: StrictInt = Field(16, ge=0, le=SAMPLING_LIMITS["max_new_tokens"].high,
                                  description="OpenAI's default 16; 0 with echo: the prompt's logprobs only")
    temperature: Number | None = Field(None, **limits_of("temperature"))
    top_p: Number | None = Field(None, gt=0.0, le=1.0)
    top_k: StrictInt | None = Field(None, **limits_of("top_k"), description="vLLM's name; 0 turns it off")
    repetition_penalty: Number | None = Field(None, **limits_of("repetition_penalty"))
    presence_penalty: Number | None = Field(None, **limits_of("presence_penalty"))
    frequency_penalty: Number | None = Field(None, **limits_of("frequency_penalty"))
    stop: Text | list[Text] | None = None
    seed: StrictInt | None = Field(None, **limits_of("seed"))
    n: StrictInt = Field(1, ge=1, le=MAX_CHOICES, description=f"choices per prompt, at most {MAX_CHOICES}")
    best_of: StrictInt | None = Field(None, ge=1, le=MAX_CHOICES, description="only equal to n: no hidden candidates")
    logprobs: StrictInt | None = Field(None, **limits_of("logprobs"),
                                       description="the most likely tokens to list per token, beside the one chosen")
    echo: StrictBool = False
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    suffix: Text | None = None


class SpeechRequest(_Lenient):
    model: str = "tts-1"
    input: Text = Field(min_length=1, max_length=4096)
    voice: str = "auto"
    response_format: str = "wav"
    speed: Number = Field(1.0, ge=0.25, le=4.0)
