"""OpenAI chat messages -> the engine's [{"role", "content": str}] plus at most one image.

Content may be a string or a list of parts (text / image_url). Images are accepted only as
`data:image/...;base64,...` URLs: the server never fetches a URL it is given (no requests to
arbitrary hosts on a client's behalf).
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from api.errors import bad_request
from api.schemas import ChatMessage, ImagePart, TextPart

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)"
                      r"(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True)
class ParsedChat:
    messages: list[dict]
    image: bytes | None           # the image of the last user message, if any


def decode_image_url(url: str, param: str, max_bytes: int) -> bytes:
    """The bytes of a base64 data: URL of an image; 400 for anything else."""
    if url.startswith(("http://", "https://")):
        raise bad_request("image_url must be a data: URL (data:image/png;base64,...); this server does not "
                          "download images from the web", param, "invalid_image_url")
    match = DATA_URL.match(url)
    if not match or not match.group("b64"):
        raise bad_request("image_url must be a base64 data: URL of an image (data:image/png;base64,...)",
                          param, "invalid_image_url")
    mime = (match.group("mime") or "").lower()
    if not mime.startswith("image/"):
        raise bad_request(f"image_url holds {mime or 'data without a type'}, not an image", param, "invalid_image_url")
    data = match.group("data")
    if len(data) * 3 // 4 > max_bytes:
        raise bad_request(f"the image is larger than {max_bytes // 2**20} MB", param, "image_too_large")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("image_url is not valid base64", param, "invalid_image_url") from None
    if not raw:
        raise bad_request("image_url holds no data", param, "invalid_image_url")
    return raw


def parse_messages(messages: list[ChatMessage], max_image_bytes: int) -> ParsedChat:
    out: list[dict] = []
    image: bytes | None = None
    image_at: int | None = None
    for i, m in enumerate(messages):
        if isinstance(m.content, list):
            texts = []
            for j, part in enumerate(m.content):
                if isinstance(part, TextPart):
                    texts.append(part.text)
                elif isinstance(part, ImagePart):
                    param = f"messages.{i}.content.{j}.image_url.url"
                    if m.role != "user":
                        raise bad_request("images can only be sent in user messages", param)
                    if image is not None:
                        raise bad_request("send one image per request (the image model reads one at a time)", param)
                    image, image_at = decode_image_url(part.image_url.url, param, max_image_bytes), i
            text = "\n".join(t for t in texts if t)
        else:
            text = m.content or ""
        message = {"role": m.role, "content": text}
        if m.tool_calls:  # an earlier call by the assistant, and the tool's answer to it (engine/prompting/tools.py)
            message["tool_calls"] = [c.model_dump() for c in m.tool_calls]
        if m.tool_call_id is not None:
            message["tool_call_id"] = m.tool_call_id
        if m.role == "tool" and m.name:
            message["name"] = m.name
        out.append(message)
    if image_at is not None and image_at != len(messages) - 1:
        raise bad_request("the image must be in the last message (the one being answered)",
                          f"messages.{image_at}.content")
    return ParsedChat(out, image)
