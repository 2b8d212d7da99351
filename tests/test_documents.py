"""engine/media/documents.py on real files: text in the encodings Korean users have, real PDFs written with
pypdf (Latin, Korean, encrypted), every refusal by its code and sentence, and the cut that fits the tiny demo
model's real context (counted with its real tokenizer), with the history trimmer dropping older turns after it."""
from __future__ import annotations

import pytest

from engine.media.documents import Cut, DocumentError, DocumentLimits, fit_documents, read_document
from engine.requests import ChatService
from engine.serving.generation import GenerationParams
from tests.document_fixtures import make_pdf, numbered_pages

KOREAN = "# 회의록\n\n다음 회의는 목요일 오후 3시입니다. 예산은 4,200유로입니다.\n"


@pytest.mark.parametrize("data,encoding", [
    (KOREAN.encode("utf-8"), "utf-8"),
    (b"\xef\xbb\xbf" + KOREAN.encode("utf-8"), "utf-8"),         # Notepad's UTF-8 with a BOM
    (KOREAN.encode("cp949"), "cp949"),                          # Korean Windows
    (KOREAN.encode("euc-kr"), "cp949"),                         # EUC-KR is a subset of CP949
    (KOREAN.encode("utf-16"), "utf-16"),                        # with its BOM
])
def test_korean_text_survives_every_common_encoding(data, encoding):
    doc = read_document(data, "회의록.md")
    assert (doc.text, doc.encoding, doc.filename) == (KOREAN, encoding, "회의록.md")


def test_pdf_pages_latin_korean_and_an_empty_password_are_read():
    doc = read_document(make_pdf([["Hello from page one", "second line"], ["Page two here"]]), "a.pdf")
    assert (doc.pages, doc.page_count) == (("Hello from page one\nsecond line", "Page two here"), 2)
    assert doc.text == "[page 1]\nHello from page one\nsecond line\n\n[page 2]\nPage two here"
    korean = read_document(make_pdf([["한국어 문서입니다", "둘째 줄: 예산 4,200유로"]], korean=True), "문서.pdf")
    assert korean.text == "한국어 문서입니다\n둘째 줄: 예산 4,200유로"
    # encrypted with an empty user password (only editing is restricted): anyone may read it
    assert read_document(make_pdf([["open to read"]], password=""), "o.pdf").text == "open to read"


@pytest.mark.parametrize("data,name,code,sentence", [
    (b"plain text pretending to be a PDF", "report.pdf", "document_not_pdf",
     "report.pdf is not a PDF (it does not start like one)"),
    (b"%PDF-1.7\n" + b"\x00garbage" * 50, "broken.pdf", "document_not_pdf", "broken.pdf is a damaged PDF that cannot be read"),
    (make_pdf([["top secret"]], password="hunter2"), "locked.pdf", "document_encrypted",
     "locked.pdf is password-protected; remove the password and attach it again"),
    (make_pdf([[]]), "scan.pdf", "document_no_text", "scan.pdf has no text to read (a scanned PDF holds only images)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, "photo.txt", "document_binary", "photo.txt is a binary file, not text"),
    (bytes(range(1, 32)) * 40, "controls.txt", "document_binary", "controls.txt is a binary file, not text"),
    ("naïve café".encode("latin-1"), "legacy.txt", "document_encoding",
     "legacy.txt is not text in UTF-8 or CP949/EUC-KR (Korean); save it as UTF-8 and attach it again"),
    (b"  \n ", "blank.md", "document_empty", "blank.md is empty"),
    (b"MZ\x90\x00", "tool.exe", "document_type",
     "tool.exe is not a document this app reads (text, Markdown, PDF or source code files)"),
])
def test_bad_documents_are_refused_with_their_reason(data, name, code, sentence):
    with pytest.raises(DocumentError) as caught:
        read_document(data, f"/uploads/x/{name}")
    assert (caught.value.code, str(caught.value), caught.value.values["name"]) == (code, sentence, name)


def test_fifty_megabytes_of_text_are_refused_by_size():
    with pytest.raises(DocumentError) as caught:
        read_document(b"a" * (50 * 2**20), "huge.txt", DocumentLimits(max_bytes=25 * 2**20))
    assert caught.value.code == "document_too_large"
    assert str(caught.value) == "huge.txt is 50.0 MB; at most 25 MB is accepted"


def test_refusals_are_one_sentence_in_the_users_language():
    from ui.errors import message_for

    with pytest.raises(DocumentError) as caught:
        read_document(make_pdf([["x"]], password="pw"), "잠긴.pdf")
    assert message_for(caught.value, "ko") == "잠긴.pdf은(는) 암호로 보호되어 있습니다. 암호를 해제한 뒤 다시 첨부하세요."
    assert message_for(caught.value, "en") == "잠긴.pdf is password-protected: remove the password and attach it again."


@pytest.fixture(scope="module")
def chat(tiny_engine):
    return ChatService(tiny_engine, None, GenerationParams(max_new_tokens=64), max_message_chars=200_000,
                       max_upload_bytes=25 * 2**20)


def test_a_long_pdf_keeps_the_first_pages_that_fit(chat, tiny_engine):
    doc = read_document(make_pdf(numbered_pages(24, lines=14)), "survey.pdf")
    [fitted], content = fit_documents([doc], chat, question="What is on page 2?", max_new_tokens=64)
    kept = len(fitted.pages)
    assert 1 < kept < 24 and fitted.cut == Cut(kept + 1, 24)
    assert f"[pages {kept + 1}–24 left out to fit the context]" in content
    assert f"Page {kept}, line 14" in content and f"Page {kept + 1}, line 1:" not in content
    assert fitted.tokens == len(tiny_engine.codec.encode(fitted.text))
    used = tiny_engine.generator.count_prompt_tokens([{"role": "user", "content": content}])
    assert used <= 4096 - 64
    # one more page would not have fitted
    more = fit_documents([read_document(make_pdf(numbered_pages(kept + 1, lines=14)), "survey.pdf")], chat,
                         question="What is on page 2?", max_new_tokens=64)[0][0]
    assert more.cut == Cut(kept + 1, kept + 1)


def test_a_long_korean_text_is_cut_at_its_end_and_the_trimmer_drops_older_turns(chat, tiny_engine):
    text = "".join(f"{i}번째 줄: 강물은 계절마다 제 이야기를 적어 둡니다.\n" for i in range(1, 3001))
    doc = read_document(text.encode("cp949"), "강.txt")
    [fitted], content = fit_documents([doc], chat, question="요약해 주세요", system="한국어로 답하세요.",
                                      max_new_tokens=64)
    assert fitted.cut is not None and fitted.cut.chars == len(text) - len(fitted.text)
    assert text.startswith(fitted.text) and fitted.text.endswith("둡니다.")          # cut at a line's end
    assert f"[the last {fitted.cut.chars:,} characters left out to fit the context]" in content
    history = [{"role": "system", "content": "한국어로 답하세요."}, {"role": "user", "content": "안녕"},
               {"role": "assistant", "content": "안녕하세요"}, {"role": "user", "content": content}]
    kept, dropped = tiny_engine.generator.trim(history, GenerationParams(max_new_tokens=64), None)
    assert dropped == 1 and kept[-1]["content"] == content
