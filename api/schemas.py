"""Request bodies of the OpenAI-compatible routes, as pydantic models (FastAPI validates them).

Fields OpenAI clients commonly send but this server does not use (user, presence_penalty, ...) are
accepted and ignored, so stock clients work unchanged.
"""
from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict, StrictBool, StrictInt

INT64 = 2 ** 63


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


ContentPart = Annotated[Union[TextPart, ImagePart], Field(discriminator="type")]


class ChatMessage(_Lenient):
    role: str
    content: Text | list[ContentPart] | None = None
    name: Text | None = None


class StreamOptions(_Lenient):
    include_usage: StrictBool = False


class ChatCompletionRequest(_Lenient):
    model: Text = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    temperature: Number | None = Field(None, ge=0.0, le=2.0)
    top_p: Number | None = Field(None, gt=0.0, le=1.0)
    max_tokens: StrictInt | None = Field(None, ge=1, lt=INT64)
    max_completion_tokens: StrictInt | None = Field(None, ge=1, lt=INT64)
    stop: Text | list[Text] | None = None
    seed: StrictInt | None = Field(None, ge=-INT64, lt=INT64, description="a 64-bit integer, as OpenAI takes")
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1, description="only one choice per request")


class SpeechRequest(_Lenient):
    model: str = "tts-1"
    input: Text = Field(min_length=1, max_length=4096)
    voice: str = "auto"
    response_format: str = "wav"
    speed: Number = Field(1.0, ge=0.25, le=4.0)
