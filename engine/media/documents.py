"""Documents in a chat: a file's bytes and name -> its text (a Document), then cut to fit the model's context.

Text files are UTF-8 (with or without a BOM), UTF-16 with a BOM, or CP949 / EUC-KR (common for Korean files
made on Windows): each is detected, never guessed into mojibake. PDFs are read with pypdf, page by page. Every
refusal is a DocumentError whose `code` names the reason (ui/ and api/ map it once) and whose `values` fill
the user's sentence; nothing is stored before a document has been read.

A document too long for the context is cut, never refused: whole pages go first (PDF), else the end of the
text, and the Document says what was left out (`Cut`). The room it gets is what the chat's system prompt, the
user's question and the reply length leave of the context, counted with the model's own prompt counter; older
turns of the conversation are then dropped by the one history trimmer (engine/serving/generation.py), as for
any long message.
"""
from __future__ import annotations

import io
import json
import unicodedata
from dataclasses import dataclass, replace
from pathlib import PurePosixPath, PureWindowsPath
from typing import TYPE_CHECKING, Callable, Sequence

from engine.errors import MediaError

if TYPE_CHECKING:
    from engine.requests import ChatService

PDF = "pdf"
TEXT_SUFFIXES = frozenset({
    "txt", "md", "markdown", "rst", "log", "csv", "tsv", "json", "jsonl", "yaml", "yml", "toml", "ini", "cfg",
    "conf", "xml", "html", "htm", "css", "tex", "sql", "py", "js", "mjs", "ts", "jsx", "tsx", "c", "h", "cc",
    "cpp", "hpp", "cs", "java", "kt", "go", "rs", "rb", "php", "swift", "scala", "lua", "pl", "r", "sh", "bash",
    "ps1", "bat", "vue", "svelte", "dart", "m", "ipynb"})
DOCUMENT_SUFFIXES = TEXT_SUFFIXES | {PDF}
# Why a document was refused: the error's code, and the ui.i18n key of the user's sentence.
DOCUMENT_CODES = ("document_type", "document_empty", "document_too_large", "document_binary", "document_encoding",
                  "document_not_pdf", "document_encrypted", "document_no_text", "document_no_room")
CARD_SUFFIX = "document"        # a stored card's attachment suffix (a JSON Document beside the file itself)
SNAP_BACK = 0.1                 # a cut ends at a line break (else a space) found in its last 10 %


class DocumentError(MediaError):
    """A document that cannot be read; `code` is one of DOCUMENT_CODES, `values` fill the sentence."""
    code, param = "document_type", "file"


@dataclass(frozen=True)
class DocumentLimits:
    max_bytes: int = 25 * 2**20     # the server's upload limit (server.max_upload_mb)
    max_chars: int = 4_000_000      # text read from a PDF at most (later pages are left out): more than any context


@dataclass(frozen=True)
class Cut:
    """What was left out to fit the context: pages first_page..last_page of a PDF, or the last `chars`."""
    first_page: int = 0
    last_page: int = 0
    chars: int = 0

    def english(self) -> str:
        if self.chars:
            return f"the last {self.chars:,} characters left out to fit the context"
        if self.first_page == self.last_page:
            return f"page {self.first_page} left out to fit the context"
        return f"pages {self.first_page}–{self.last_page} left out to fit the context"


@dataclass(frozen=True)
class Document:
    """A document's text as the model reads it: `pages` (one for a text file), how many the file has, the
    encoding it was read in, its token count once fitted, and what was cut."""
    filename: str
    kind: str                       # "pdf" or "text"
    pages: tuple[str, ...]
    page_count: int                 # pages in the file (1 for a text file)
    encoding: str                   # "utf-8", "utf-16", "cp949" or "pdf"
    tokens: int = 0                 # tokens of `text` for the loaded model (set by fit_documents)
    cut: Cut | None = None

    @property
    def text(self) -> str:
        if self.kind != PDF or self.page_count == 1 or (self.cut and self.cut.chars):   # a char cut keeps marks
            return "\n\n".join(self.pages)
        return "\n\n".join(f"[page {i}]\n{page}" for i, page in enumerate(self.pages, 1))

    def prompt(self) -> str:
        """The block the model reads: the document's name, its text, and what was left out."""
        pages = f" pages=\"{self.page_count}\"" if self.kind == PDF else ""
        cut = f"\n[{self.cut.english()}]" if self.cut else ""
        name = self.filename.replace('"', "'")
        return f"<document name=\"{name}\"{pages}>\n{self.text}{cut}\n</document>"

    def as_dict(self) -> dict:
        cut = None if self.cut is None else {"first_page": self.cut.first_page, "last_page": self.cut.last_page,
                                             "chars": self.cut.chars}
        return {"filename": self.filename, "kind": self.kind, "pages": list(self.pages),
                "page_count": self.page_count, "encoding": self.encoding, "tokens": self.tokens, "cut": cut}

    @classmethod
    def from_dict(cls, data: dict) -> "Document":
        cut = data.get("cut")
        return cls(str(data["filename"]), str(data["kind"]), tuple(str(p) for p in data["pages"]),
                   int(data["page_count"]), str(data["encoding"]), int(data.get("tokens") or 0),
                   Cut(int(cut["first_page"]), int(cut["last_page"]), int(cut["chars"])) if cut else None)


def refuse(code: str, message: str, filename: str, **values: object) -> DocumentError:
    return DocumentError(message, code=code, values={"name": filename, **values})


def clean_name(filename: str) -> str:
    """The file's own name (no folders, no control characters), at most 120 characters."""
    name = PureWindowsPath(PurePosixPath(filename or "").name).name
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return (name or "document")[-120:]


def suffix_of(filename: str) -> str:
    name = clean_name(filename)
    return name.rsplit(".", 1)[1].lower() if "." in name else ""


def is_document_name(filename: str) -> bool:
    return suffix_of(filename) in DOCUMENT_SUFFIXES


def read_document(data: bytes, filename: str, limits: DocumentLimits = DocumentLimits()) -> Document:
    """A file's bytes -> its Document (uncut; fit_documents cuts it); DocumentError saying why not."""
    name = clean_name(filename)
    suffix = suffix_of(name)
    if suffix not in DOCUMENT_SUFFIXES:
        raise refuse("document_type", f"{name} is not a document this app reads (text, Markdown, PDF or source "
                     "code files)", name)
    check_size(len(data), name, limits)
    if not data.strip():
        raise refuse("document_empty", f"{name} is empty", name)
    return _read_pdf(data, name, limits) if suffix == PDF else _read_text(data, name, limits)


def check_size(size: int, filename: str, limits: DocumentLimits) -> None:
    """The upload limit, checked before a file is read (DocumentError "document_too_large")."""
    if size > limits.max_bytes:
        mb, limit = f"{size / 2**20:.1f}", f"{limits.max_bytes / 2**20:.0f}"
        name = clean_name(filename)
        raise refuse("document_too_large", f"{name} is {mb} MB; at most {limit} MB is accepted", name,
                     mb=mb, limit=limit)


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """(text, encoding): UTF-8 / UTF-16 by BOM, UTF-8, else CP949 (a superset of EUC-KR); refused otherwise."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16"
        except UnicodeDecodeError:
            raise refuse("document_encoding", f"{name} claims UTF-16 but is not valid UTF-16", name) from None
    if b"\x00" in data:
        raise refuse("document_binary", f"{name} is a binary file, not text", name)
    for encoding in ("utf-8-sig", "cp949"):
        try:
            return data.decode(encoding), encoding.removesuffix("-sig")
        except UnicodeDecodeError:
            continue
    raise refuse("document_encoding", f"{name} is not text in UTF-8 or CP949/EUC-KR (Korean); save it as "
                 "UTF-8 and attach it again", name)


def _read_text(data: bytes, name: str, limits: DocumentLimits) -> Document:
    text, encoding = decode_text(data, name)
    controls = sum(1 for ch in text[:200_000] if unicodedata.category(ch) == "Cc" and ch not in "\t\n\r\f\v\x1b")
    if controls > max(8, len(text[:200_000]) // 200):
        raise refuse("document_binary", f"{name} is a binary file, not text", name)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Document(name, "text", (text,), 1, encoding)


def _read_pdf(data: bytes, name: str, limits: DocumentLimits) -> Document:
    import logging

    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    if b"%PDF-" not in data[:1024]:
        raise refuse("document_not_pdf", f"{name} is not a PDF (it does not start like one)", name)
    logging.getLogger("pypdf").setLevel(logging.ERROR)     # a damaged xref is repaired, not worth a warning
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")                   # encrypted for editing only: readable by anyone
            except (DependencyError, NotImplementedError, PyPdfError, ValueError):
                opened = False
            if not opened:
                raise refuse("document_encrypted", f"{name} is password-protected; remove the password and "
                             "attach it again", name)
        page_count = len(reader.pages)
        pages: list[str] = []
        read = 0
        for page in reader.pages:
            if read > limits.max_chars:
                break
            try:
                text = page.extract_text() or ""
            except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, ZeroDivisionError):
                text = ""                                   # one broken page does not lose the others
            text = "".join(ch for ch in text if ch in "\t\n" or unicodedata.category(ch) != "Cc").strip()
            pages.append(text)
            read += len(text)
    except DocumentError:
        raise
    except FileNotDecryptedError:
        raise refuse("document_encrypted", f"{name} is password-protected; remove the password and attach it "
                     "again", name) from None
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError, OSError, RecursionError,
            AssertionError, ZeroDivisionError):
        raise refuse("document_not_pdf", f"{name} is a damaged PDF that cannot be read", name) from None
    if not any(pages):
        raise refuse("document_no_text", f"{name} has no text to read (a scanned PDF holds only images)", name)
    doc = Document(name, PDF, tuple(pages), page_count, PDF)
    return doc if len(pages) == page_count else replace(doc, cut=Cut(len(pages) + 1, page_count))


# --------------------------------------------------------------------------------------------- fitting
def fit(doc: Document, fits: Callable[[str], bool], count: Callable[[str], int]) -> Document:
    """`doc` as much of it as fits: `fits(prompt)` says whether a message holding that block fits. Whole pages
    first (the most that fit, by bisection), else the longest start of the text; its token count set."""
    if fits(doc.prompt()):
        return replace(doc, tokens=count(doc.text))
    total = len(doc.pages)
    if doc.kind == PDF and total > 1:
        def first(k: int) -> Document:
            return replace(doc, pages=doc.pages[:k], cut=Cut(k + 1, doc.page_count))

        good, bad = 0, total
        while bad - good > 1:
            mid = (good + bad) // 2
            good, bad = (mid, bad) if fits(first(mid).prompt()) else (good, mid)
        if good:
            kept = first(good)
            return replace(kept, tokens=count(kept.text))
    text = doc.text

    def start(n: int) -> Document:
        return replace(doc, pages=(text[:n],), cut=Cut(chars=len(text) - n))

    good, bad = _bounds(start, len(text), fits)
    while bad - good > 1:
        mid = (good + bad) // 2
        good, bad = (mid, bad) if fits(start(mid).prompt()) else (good, mid)
    if good == 0:
        raise refuse("document_no_room", f"the message and the reply length leave no room in the context for "
                     f"{doc.filename}: shorten the message or lower the reply length", doc.filename)
    snapped = _snap(text, good)
    kept = start(snapped) if snapped == good or fits(start(snapped).prompt()) else start(good)
    return replace(kept, tokens=count(kept.text))


def _bounds(start: Callable[[int], Document], length: int, fits: Callable[[str], bool]) -> tuple[int, int]:
    """(a length of the text's start that fits, one that does not), found by doubling from 4096 characters:
    a 4 MB text is never tokenized whole, only about twice what fits."""
    good, n = 0, 4096
    while n < length:
        if not fits(start(n).prompt()):
            return good, n
        good, n = n, n * 2
    return good, length


def _snap(text: str, n: int) -> int:
    """End a cut at a line break (else a space) in the last SNAP_BACK of what is kept."""
    floor = int(n * (1 - SNAP_BACK))
    for sep in ("\n", " "):
        at = text.rfind(sep, floor, n)
        if at > 0:
            return at
    return n


def fit_documents(docs: Sequence[Document], chat: "ChatService", *, question: str, system: str = "",
                  max_new_tokens: int | None = None) -> tuple[list[Document], str]:
    """The documents of one user message fitted, in order, to the room the context leaves them, and the
    message's text for the model (the documents' blocks, then the question). The room: the model's context less
    the reply length (as the history trimmer counts it) and the system prompt with this message; counted with
    the loaded model's prompt counter (a remote backend: an estimate of 3 UTF-8 bytes a token). The message must
    also stay within generation.max_message_chars."""
    engine = chat.engine
    wanted = max_new_tokens if isinstance(max_new_tokens, int) and max_new_tokens > 0 else chat.defaults.max_new_tokens
    budget = engine.max_context - min(wanted, engine.max_context - 16)
    generator = engine.generator
    counter = generator.prompt_counter() if generator is not None else _estimate
    count: Callable[[str], int] = (lambda text: len(engine.codec.encode(text))) if engine.codec is not None \
        else (lambda text: len(text.encode("utf-8")) // 3)
    head = [{"role": "system", "content": system}] if system.strip() else []
    blocks: list[str] = []
    fitted: list[Document] = []

    def content(block: str) -> str:
        return "\n\n".join([*blocks, block, *([question] if question.strip() else [])])

    def fits(block: str) -> bool:
        text = content(block)
        return len(text) <= chat.limits.max_message_chars and \
            counter([*head, {"role": "user", "content": text}]) <= budget

    for doc in docs:
        doc = fit(doc, fits, count)
        blocks.append(doc.prompt())
        fitted.append(doc)
    return fitted, "\n\n".join([*blocks, *([question] if question.strip() else [])])


def _estimate(messages: Sequence[dict]) -> int:
    return sum(len(str(m.get("content", "")).encode("utf-8")) // 3 + 4 for m in messages)


def card_bytes(doc: Document, source: str) -> bytes:
    """The stored form of a fitted document beside its file (`source`: the file's attachment ref)."""
    return json.dumps({"version": 1, "source": source, **doc.as_dict()}, ensure_ascii=False).encode("utf-8")


def from_card(data: bytes) -> tuple[Document, str]:
    """(Document, source ref) from card_bytes; ValueError/KeyError for anything else."""
    raw = json.loads(data.decode("utf-8"))
    if not isinstance(raw, dict) or raw.get("version") != 1:
        raise ValueError("not a document card")
    return Document.from_dict(raw), str(raw.get("source") or "")


__all__ = ["CARD_SUFFIX", "Cut", "DOCUMENT_CODES", "DOCUMENT_SUFFIXES", "Document", "DocumentError",
           "DocumentLimits", "card_bytes", "check_size", "fit", "fit_documents", "from_card", "is_document_name",
           "read_document"]
