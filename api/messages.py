"""OpenAI chat messages -> the engine's [{"role", "content": str}] plus at most one image.

Content may be a string or a list of parts (text / image_url / file). Images are accepted only as
`data:image/...;base64,...` URLs: the server never fetches a URL it is given (no requests to
arbitrary hosts on a client's behalf). A `file` part (a document: text, Markdown, PDF, source code) is
decoded here and read and fitted to the context by `ParsedChat.with_documents` (engine/media/documents.py),
off the event loop: its text joins its message, before the message's own text.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from api.errors import bad_request
from api.schemas import ChatMessage, FilePart, ImagePart, TextPart
from engine.media.documents import Document, DocumentError, DocumentLimits, fit_documents, read_document
from engine.requests import ChatService, Sampling

DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[\w.+-]+)*)"
                      r"(?P<b64>;base64)?,(?P<data>.*)$", re.DOTALL)


# A file part without a filename: its name from its type.
NAME_FOR_MIME = {"application/pdf": "document.pdf", "text/markdown": "document.md", "text/x-markdown": "document.md",
                 "text/csv": "document.csv", "application/json": "document.json"}


@dataclass(frozen=True)
class AttachedFile:
    """A document as sent in a `file` part: its bytes, its name, and where it was (the param of a refusal)."""
    data: bytes
    filename: str
    param: str


@dataclass(frozen=True)
class ParsedChat:
    messages: list[dict]
    image: bytes | None           # the image of the last user message, if any
    files: dict[int, list[AttachedFile]] | None = None    # message index -> its documents, in order

    def with_documents(self, chat: ChatService, sampling: Sampling) -> list[dict]:
        """The messages with each document's text (cut to fit the context) before its message's text; a
        DocumentError names the part it came from. Blocking (PDF reading, token counts): run it in a thread."""
        if not self.files:
            return self.messages
        out = [dict(m) for m in self.messages]
        system = next((m["content"] for m in out if m["role"] == "system" and isinstance(m["content"], str)), "")
        limits = DocumentLimits(max_bytes=chat.limits.max_upload_bytes)
        for index, files in self.files.items():
            docs: list[Document] = []
            for f in files:
                try:
                    docs.append(read_document(f.data, f.filename, limits))
                except DocumentError as exc:
                    exc.param = f.param
                    raise
            try:
                _, out[index]["content"] = fit_documents(docs, chat, question=out[index]["content"], system=system,
                                                         max_new_tokens=sampling.max_new_tokens)
            except DocumentError as exc:
                exc.param = files[-1].param
                raise
        return out


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


def decode_file(part: FilePart, param: str, max_bytes: int) -> AttachedFile:
    """A `file` part's bytes and name; 400 naming the field for a file_id, a URL or data that is not base64."""
    f = part.file
    if f.file_data is None:
        where, what = ("file_id", "file_id is not supported: this server keeps no uploaded files; send the "
                       "document itself as file_data (data:application/pdf;base64,...)") if f.file_id else \
            ("file_data", "a file part needs file_data (data:application/pdf;base64,...)")
        raise bad_request(what, f"{param}.file.{where}", "invalid_file")
    param = f"{param}.file.file_data"
    match = DATA_URL.match(f.file_data)
    if not match or not match.group("b64"):
        raise bad_request("file_data must be a base64 data: URL (data:application/pdf;base64,...)", param,
                          "invalid_file")
    data = match.group("data")
    if len(data) * 3 // 4 > max_bytes:
        raise bad_request(f"the file is larger than {max_bytes // 2**20} MB", param, "document_too_large")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request("file_data is not valid base64", param, "invalid_file") from None
    mime = (match.group("mime") or "").lower()
    filename = f.filename or NAME_FOR_MIME.get(mime) or ("document.txt" if mime.startswith("text/") else "")
    if not filename:
        raise bad_request("a file part needs a filename (report.pdf, notes.md, main.py)", f"{param[:-10]}.filename",
                          "invalid_file")
    return AttachedFile(raw, filename, param)


def parse_messages(messages: list[ChatMessage], max_image_bytes: int) -> ParsedChat:
    out: list[dict] = []
    image: bytes | None = None
    image_at: int | None = None
    files: dict[int, list[AttachedFile]] = {}
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
                elif isinstance(part, FilePart):
                    param = f"messages.{i}.content.{j}"
                    if m.role != "user":
                        raise bad_request("files can only be sent in user messages", f"{param}.type")
                    files.setdefault(i, []).append(decode_file(part, param, max_image_bytes))
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
    return ParsedChat(out, image, files)
