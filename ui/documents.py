"""Documents attached in the chat: read and fit one upload, store it, and read it back for the model and the page.

A document is stored as two attachments of its message: the file as uploaded, and a card (CARD_SUFFIX) holding
the text the model reads, cut to fit the context when it was sent, with its token count and what was left out.
The model and the page read the card, so a reply, a Retry or a reload see the same text the user was shown.
"""
from __future__ import annotations

import html
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from engine.media.documents import (CARD_SUFFIX, DOCUMENT_SUFFIXES, Cut, Document, DocumentLimits, card_bytes, check_size,
                                    fit_documents, from_card, is_document_name, read_document, suffix_of)

# What the message box offers to attach beside images.
DOCUMENT_TYPES = sorted(f".{suffix}" for suffix in DOCUMENT_SUFFIXES)
_LAST: list = []                     # [key, (bytes, Document)] of the last upload read
_LAST_LOCK = threading.Lock()

if TYPE_CHECKING:
    from sessions import SessionStore
    from ui.services import Services

__all__ = ["DOCUMENT_TYPES", "read_upload", "attach_document", "card_reader", "cut_line", "document_line", "is_document_name", "is_document_ref",
           "is_card_ref", "read_card_file"]


def is_card_ref(ref: str) -> bool:
    return ref.endswith("." + CARD_SUFFIX)


def is_document_ref(ref: str) -> bool:
    """A stored document or its card (never given to the image model, never shown as an image)."""
    return is_card_ref(ref) or ref.rsplit(".", 1)[-1] in DOCUMENT_SUFFIXES


def read_upload(services: "Services", path: str) -> tuple[bytes, Document]:
    """An uploaded file's bytes and Document (uncut); DocumentError saying why not. The last one read is kept,
    so the check before a message is saved and the storing after it read a PDF once."""
    limits = DocumentLimits(max_bytes=services.chat.limits.max_upload_bytes)
    file = Path(path)
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns, limits)
    with _LAST_LOCK:
        if _LAST and _LAST[0] == key:
            return _LAST[1]
    check_size(stat.st_size, file.name, limits)      # before reading 50 MB into memory
    data = file.read_bytes()
    read = (data, read_document(data, file.name, limits))
    with _LAST_LOCK:
        _LAST[:] = [key, read]
    return read


def attach_document(services: "Services", store: "SessionStore", path: str, question: str, settings: dict) -> list[str]:
    """Read the uploaded file, cut it to the room the chat's settings leave, store it: [file ref, card ref].
    A DocumentError (a sentence in the user's language through ui/errors.py) comes before anything is stored."""
    data, doc = read_upload(services, path)
    name = doc.filename
    [doc], _ = fit_documents([doc], services.chat, question=question, system=str(settings.get("system_prompt") or ""),
                             max_new_tokens=settings.get("max_new_tokens"))
    source = store.put_attachment(data, suffix_of(name))
    return [source, store.put_attachment(card_bytes(doc, source), CARD_SUFFIX)]


def read_card_file(path: str | Path) -> Document | None:
    """The Document of a stored card; None for a file that is not one (shown as nothing, never an error)."""
    try:
        return from_card(Path(path).read_bytes())[0]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def card_reader(store: "SessionStore", owner: str) -> Callable[[str], Document | None]:
    """ref -> the owner's stored Document (for the model's view of a chat)."""
    def read(ref: str) -> Document | None:
        try:
            return read_card_file(store.attachment_path(owner, ref))
        except Exception:  # noqa: BLE001 - a card gone from the store: the message is sent without it
            return None
    return read


def cut_line(cut: Cut, words: Callable[..., str]) -> str:
    if cut.chars:
        return words("document_cut_chars", n=f"{cut.chars:,}")
    if cut.first_page == cut.last_page:
        return words("document_cut_page", page=cut.first_page)
    return words("document_cut_pages", first=cut.first_page, last=cut.last_page)


def document_line(doc: Document, words: Callable[..., str]) -> str:
    """What the chat shows for an attached document: its name and token count, and what was left out."""
    line = words("document_line", name=html.escape(doc.filename).replace("*", "\\*").replace("_", "\\_"), tokens=f"{doc.tokens:,}")
    if doc.kind == "pdf":
        line += " · " + words("document_pages", n=doc.page_count)
    return line + ("\n\n✂️ " + cut_line(doc.cut, words) if doc.cut else "")
