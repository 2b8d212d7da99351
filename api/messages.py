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
class WithDocuments:
    """The messages with their documents' text in, and one notice per document cut to fit the context
    ("report.pdf: pages 7–20 left out to fit the context"), for the client to see (api/chat.py)."""
    messages: list[dict]
    notices: tuple[str, ...] = ()


@dataclass(frozen=True)
class ParsedChat:
    messages: list[dict]
    image: bytes | None           # the image of the last user message, if any
    files: dict[int, list[AttachedFile]] | None = None    # message index -> its documents, in order

    def with_documents(self, chat: ChatService, sampling: Sampling) -> WithDocuments:
        """The messages with each document's text (cut to fit the context) before its message's text, and what
        was cut; a DocumentError names the part it came from. Blocking (PDF reading, token counts): run it in a
        thread."""
        if not self.files:
            return WithDocuments(self.messages)
        notices: list[str] = []
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
                fitted, out[index]["content"] = fit_documents(docs, chat, question=out[index]["content"],
                                                              system=system, max_new_tokens=sampling.max_new_tokens)
            except DocumentError as exc:
                exc.param = files[-1].param
                raise
            notices += [f"{doc.filename}: {doc.cut.english()}" for doc in fitted if doc.cut is not None]
        return WithDocuments(out, tuple(notices))


@dataclass(frozen=True)
class DataField:
    """A request field that carries a base64 data: URL, and how its refusals read (name, codes, the kind of
    media it must hold)."""
    name: str                 # as the client wrote it: image_url, file_data
    example: str              # a valid value's shape, shown in the refusal
    thing: str                # what it holds, in "the image is larger than ..."
    invalid: str              # error code of a malformed value
    too_large: str            # error code of a value over the upload limit
    mime_prefix: str = ""     # the media type it must declare ("image/"); "" takes any
    needs: str = ""           # " of an image": what a malformed value must be, said in its refusal


IMAGE_URL = DataField("image_url", "data:image/png;base64,...", "image", "invalid_image_url", "image_too_large",
                      mime_prefix="image/", needs=" of an image")
FILE_DATA = DataField("file_data", "data:application/pdf;base64,...", "file", "invalid_file", "document_too_large")


@dataclass(frozen=True)
class DataUrl:
    mime: str                 # lower case; "" when the URL declares none
    data: bytes


def decode_data_url(url: str, param: str, max_bytes: int, field: DataField) -> DataUrl:
    """The media type and bytes of a base64 data: URL; 400 naming `param` for anything else, for a type the
    field does not take, and for more than max_bytes (checked before decoding)."""
    match = DATA_URL.match(url)
    if not match or not match.group("b64"):
        raise bad_request(f"{field.name} must be a base64 data: URL{field.needs} ({field.example})", param,
                          field.invalid)
    mime = (match.group("mime") or "").lower()
    if not mime.startswith(field.mime_prefix):
        raise bad_request(f"{field.name} holds {mime or 'data without a type'}, not an {field.thing}", param,
                          field.invalid)
    data = match.group("data")
    if len(data) * 3 // 4 > max_bytes:
        raise bad_request(f"the {field.thing} is larger than {max_bytes // 2**20} MB", param, field.too_large)
    try:
        return DataUrl(mime, base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError):
        raise bad_request(f"{field.name} is not valid base64", param, field.invalid) from None


def decode_image_url(url: str, param: str, max_bytes: int) -> bytes:
    """The bytes of a base64 data: URL of an image; 400 for anything else (a web URL is never fetched)."""
    if url.startswith(("http://", "https://")):
        raise bad_request("image_url must be a data: URL (data:image/png;base64,...); this server does not "
                          "download images from the web", param, "invalid_image_url")
    raw = decode_data_url(url, param, max_bytes, IMAGE_URL).data
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
    decoded = decode_data_url(f.file_data, f"{param}.file.file_data", max_bytes, FILE_DATA)
    mime = decoded.mime
    filename = f.filename or NAME_FOR_MIME.get(mime) or ("document.txt" if mime.startswith("text/") else "")
    if not filename:
        raise bad_request("a file part needs a filename (report.pdf, notes.md, main.py)", f"{param}.file.filename",
                          "invalid_file")
    return AttachedFile(decoded.data, filename, f"{param}.file.file_data")


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
