"""Documents over /v1/chat/completions: OpenAI's `file` content part, with the real `openai` client against the
real app (demo model, 4096 tokens of context). What reached the prompt is read from usage.prompt_tokens; what
was cut, from the X-Document-Notice header (UTF-8, percent-encoded where not plain ASCII)."""
from __future__ import annotations

import base64
import re
from urllib.parse import unquote

import openai
import pytest

from tests.document_fixtures import make_pdf, numbered_pages

QUESTION = "What does the document say?"
NOTES = ("# 회의록 (meeting notes)\n\n- 다음 회의는 목요일 오후 3시입니다.\n- The budget for the river survey is "
         "4,200 euros.\n- 담당자: 김민준\n")


@pytest.fixture(scope="module")
def client(app_server):
    return openai.OpenAI(base_url=app_server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def file_part(data: bytes, filename: str, mime: str = "text/plain") -> dict:
    return {"type": "file", "file": {"filename": filename,
                                     "file_data": f"data:{mime};base64,{base64.b64encode(data).decode()}"}}


def ask(client, *parts: dict, max_tokens: int = 1, raw: bool = False, **options):
    """The answer, or with raw=True the HTTP response (headers; .parse() gives the answer)."""
    content = [*parts, {"type": "text", "text": QUESTION}]
    create = client.chat.completions.with_raw_response.create if raw else client.chat.completions.create
    return create(model="local-chat", messages=[{"role": "user", "content": content}], max_tokens=max_tokens,
                  temperature=0, **options)


def test_document_text_reaches_the_prompt_utf8_and_cp949(client, tokenizer):
    """The prompt grows by the document's tokens (and a few for its name and frame): a Markdown file in UTF-8
    and the same text as a CP949 (Korean Windows) .txt file grow it alike, so the Korean text was decoded."""
    plain = ask(client).usage.prompt_tokens
    text_tokens = len(tokenizer(NOTES, add_special_tokens=False)["input_ids"])
    grown = []
    for data, name in ((NOTES.encode("utf-8"), "notes.md"), (NOTES.encode("cp949"), "회의록.txt")):
        answer = ask(client, file_part(data, name), raw=True)
        assert "x-document-notice" not in answer.headers        # nothing was cut
        grown.append(answer.parse().usage.prompt_tokens - plain)
    frame = len(tokenizer('<document name="notes.md">\n\n</document>\n\n', add_special_tokens=False)["input_ids"])
    assert text_tokens <= grown[0] <= text_tokens + frame + 4, (grown, text_tokens, frame)
    assert abs(grown[1] - grown[0]) <= 6, grown      # only the file name differs


def test_a_pdf_too_long_for_the_context_is_cut_to_fit(client):
    """A 24-page PDF (about 2,000 tokens) with a reply of up to 3,700 tokens in a 4,096-token context: whole
    pages are left out, the request is answered, and the prompt fills the 396 tokens of room without passing
    them. (A stop string ends the demo model's reply at once: a long prompt or reply costs seconds here.)
    The client sees the cut too: X-Document-Notice names the file (Korean, so percent-encoded) and the pages."""
    pdf = make_pdf(numbered_pages(24, lines=4))
    raw = ask(client, file_part(pdf, "하천 조사.pdf", "application/pdf"), max_tokens=3700, stop=[" ", ".", "e", "a"],
              raw=True)
    used = raw.parse().usage.prompt_tokens
    assert 396 - 120 <= used <= 396, used
    assert raw.headers["x-demo-model"] == "random weights: replies are noise"      # api/chat.demo_headers
    notice = raw.headers["x-document-notice"]
    assert notice.isascii(), notice
    assert re.fullmatch(r"하천 조사\.pdf: pages \d+–24 left out to fit the context", unquote(notice)), notice


@pytest.mark.parametrize("data,name,mime,code", [
    (b"just some text, named as if it were a PDF", "report.pdf", "application/pdf", "document_not_pdf"),
    (make_pdf([["top secret"]], password="hunter2"), "locked.pdf", "application/pdf", "document_encrypted"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "photo.txt", "text/plain", "document_binary"),
    ("naïve café, déjà vu".encode("latin-1"), "legacy.txt", "text/plain", "document_encoding"),
])
def test_bad_documents_are_refused_with_the_part_named(client, data, name, mime, code):
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, {"type": "text", "text": "Look:"}, file_part(data, name, mime))
    assert caught.value.status_code == 400
    assert caught.value.code == code
    assert caught.value.param == "messages.0.content.1.file.file_data"
    assert name in caught.value.message


def test_a_file_id_is_refused_by_name(client):
    """This server keeps no uploaded files: a Files API id is refused, naming the field."""
    with pytest.raises(openai.BadRequestError) as caught:
        ask(client, {"type": "file", "file": {"file_id": "file-abc123"}})
    assert (caught.value.code, caught.value.param) == ("invalid_file", "messages.0.content.0.file.file_id")
    assert "file_data" in caught.value.message
