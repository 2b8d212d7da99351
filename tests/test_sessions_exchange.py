"""Search (Korean, casefold, newest first) and export/import round trips."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from sessions import InvalidSessionData, SessionStore

OWNER = "alice"


def reply(text: str) -> dict:
    prov = {"model": "mistralai/Mistral-7B-Instruct-v0.3", "rung": "8bit", "adapter": "ko-chat",
            "adapter_fingerprint": "ab12", "sampling": {"temperature": 0.7}, "prompt_tokens": 12,
            "completion_tokens": 34, "tokens_per_second": 17.5, "seconds": 1.9}
    return {"role": "assistant", "content": text, "provenance": prov}


@pytest.fixture
def store(tmp_path: Path) -> SessionStore:
    return SessionStore(tmp_path)


def test_korean_and_casefold_search_newest_first(store: SessionStore):
    old = store.create(OWNER, "인사")["id"]
    store.append(OWNER, old, {"role": "user", "content": "안녕하세요, 반갑습니다"})
    english = store.create(OWNER, "Greetings")["id"]
    store.append(OWNER, english, {"role": "user", "content": "Say HELLO to the Straße"})
    newer = store.create(OWNER, "second")["id"]
    store.append(OWNER, newer, {"role": "user", "content": "다시 안녕! 잘 지냈어?"})
    store.create(OWNER, "nothing here")

    hits = store.search(OWNER, "안녕")
    assert [h["session_id"] for h in hits] == [newer, old]
    assert "안녕하세요" in hits[1]["snippet"] and hits[1]["message_index"] == 0
    assert set(hits[0]) >= {"session_id", "title", "snippet", "updated_at"}
    assert [h["session_id"] for h in store.search(OWNER, "hello")] == [english]
    assert [h["session_id"] for h in store.search(OWNER, "STRASSE")] == [english]
    # Decomposed jamo (as macOS and some IMEs produce) match composed syllables.
    assert [h["session_id"] for h in store.search(OWNER, unicodedata.normalize("NFD", "반갑"))] == [old]
    # Titles are searched too.
    title_hit = store.search(OWNER, "GREET")
    assert [h["session_id"] for h in title_hit] == [english]
    assert title_hit[0]["snippet"] == "Greetings" and title_hit[0]["message_index"] is None
    assert [h["session_id"] for h in store.search(OWNER, "인사")] == [old]
    assert store.search(OWNER, "없는 단어") == []
    assert len(store.search(OWNER, "a", limit=1)) == 1
    with pytest.raises(InvalidSessionData, match="empty"):
        store.search(OWNER, "   ")


def test_search_snippet_is_cut_around_the_match(store: SessionStore):
    sid = store.create(OWNER)["id"]
    store.append(OWNER, sid, {"role": "user", "content": "가" * 300 + " 목표단어 " + "나" * 300})
    (hit,) = store.search(OWNER, "목표단어")
    assert "목표단어" in hit["snippet"] and hit["snippet"].startswith("…") and hit["snippet"].endswith("…")
    assert len(hit["snippet"]) < 200


def test_export_import_round_trip(store: SessionStore):
    ref = store.put_attachment(b"RIFF fake wav", ".wav")
    first = store.create(OWNER, "첫 대화", {"system_prompt": "한국어로 답하세요", "temperature": 0.3})["id"]
    store.append(OWNER, first, {"role": "system", "content": "You are kind."})
    store.append(OWNER, first, {"role": "user", "content": "이 소리 들어봐", "attachments": [ref]})
    store.append(OWNER, first, {**reply("좋은 소리네요"), "status": "stopped"})
    second = store.create(OWNER, "Second")["id"]
    store.append(OWNER, second, {"role": "user", "content": "[INST] literal text [/INST]"})

    exported = store.export(OWNER)
    data = json.loads(exported)
    assert data["format"] == "chat-sessions" and len(data["sessions"]) == 2
    assert "owner" not in data["sessions"][0]

    report = store.import_json("bob", exported)
    assert report.skipped == [] and len(report.imported) == 2
    for original_id in (first, second):
        original = store.get(OWNER, original_id)
        (copy_id,) = [i for i in report.imported if store.get("bob", i)["title"] == original["title"]]
        copy = store.get("bob", copy_id)
        assert copy["messages"] == original["messages"]  # roles, text, status, times, provenance, attachments
        assert copy["settings"] == original["settings"]
        assert copy["created_at"] == original["created_at"]
    assert store.attachment_path("bob", ref).read_bytes() == b"RIFF fake wav"

    # Importing into the same owner never overwrites: existing ids get new ones.
    again = store.import_json(OWNER, store.export(OWNER, first))
    assert len(again.imported) == 1 and again.imported[0] != first
    assert any("already exists" in note for note in again.notes)
    assert len(store.list(OWNER)) == 3
    assert store.get(OWNER, first)["version"] == 4


def test_markdown_export_is_readable(store: SessionStore):
    sid = store.create(OWNER, "요리 질문")["id"]
    store.append(OWNER, sid, {"role": "user", "content": "김치찌개 만드는 법?"})
    store.append(OWNER, sid, reply("먼저 김치를 볶으세요."))
    text = store.export(OWNER, sid, "markdown")
    assert text.startswith("# 요리 질문")
    assert "### User" in text and "김치찌개 만드는 법?" in text
    assert "### Assistant" in text and "먼저 김치를 볶으세요." in text
    assert "rung `8bit`" in text and "17.5 tokens/s" in text
    with pytest.raises(InvalidSessionData, match="'json' or 'markdown'"):
        store.export(OWNER, sid, "pdf")


def test_broken_import_reports_each_skipped_session_with_its_reason(store: SessionStore):
    good = {"title": "good", "messages": [{"role": "user", "content": "ok"}, reply("fine")]}
    payload = {
        "format": "chat-sessions",
        "schema": 2,
        "sessions": [
            good,
            "not a session",
            {"title": "bad role", "messages": [{"role": "user", "content": "a"}, {"role": "robot", "content": "b"}]},
            {"title": "no list", "messages": "hello"},
            {"title": "no provenance", "messages": [{"role": "assistant", "content": "x"}]},
            {"title": "t" * 500, "messages": []},
            {"title": "bad settings", "settings": [1, 2], "messages": []},
        ],
    }
    report = store.import_json(OWNER, json.dumps(payload))
    assert len(report.imported) == 1
    assert store.get(OWNER, report.imported[0])["title"] == "good"
    reasons = dict(report.skipped)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert "not an object" in reasons[1]
    assert "message 1" in reasons[2] and "robot" in reasons[2]
    assert "messages" in reasons[3]
    assert "provenance" in reasons[4]
    assert "200" in reasons[5]
    assert "settings" in reasons[6]
    assert [s["title"] for s in store.list(OWNER)] == ["good"]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("{not json", "not valid JSON"),
        ('{"format": "other-app", "sessions": []}', "format"),
        ('{"format": "chat-sessions", "schema": 9, "sessions": []}', "schema 9"),
        ('{"hello": 1}', "no sessions"),
        ('{"sessions": {"a": 1}}', "must be a list"),
    ],
)
def test_unusable_import_file_is_refused_whole(store: SessionStore, text: str, pattern: str):
    with pytest.raises(InvalidSessionData, match=pattern):
        store.import_json(OWNER, text)
    assert store.list(OWNER) == []


def test_import_drops_unknown_attachments_with_a_note(store: SessionStore):
    ghost = "a" * 64 + ".png"
    text = json.dumps({"sessions": [{"title": "t", "messages": [{"role": "user", "content": "x", "attachments": [ghost]}]}]})
    report = store.import_json(OWNER, text)
    assert len(report.imported) == 1 and any("attachment" in n for n in report.notes)
    assert store.get(OWNER, report.imported[0])["messages"][0]["attachments"] == []


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("# My chat\n\n### User\nhello", "not_json"),                          # a Markdown export: for reading only
        ('[{"title": "x", "mapping": {}}]', "foreign"),                       # another app's list of conversations
        ('{"format": "other-app", "sessions": [{"messages": []}]}', "foreign"),
        ('{"conversations": []}', "foreign"),
        ("[]", "empty"),
        ('{"format": "chat-sessions", "schema": 2, "sessions": []}', "empty"),
        ('{"format": "chat-sessions", "schema": "9", "sessions": [{"messages": []}]}', "schema"),
        ("[" * 100_000 + "]" * 100_000, "not_json"),                         # nested past the parser's depth
    ],
)
def test_refused_import_names_its_reason_and_writes_nothing(store: SessionStore, text: str, reason: str):
    from sessions import ImportRefused

    with pytest.raises(ImportRefused) as refused:
        store.import_json(OWNER, text)
    assert refused.value.reason == reason
    assert store.list(OWNER) == []


def test_uploaded_bytes_are_decoded_or_refused(tmp_path: Path):
    from sessions import ImportRefused, Limits, decode_import

    limits = Limits(max_import_bytes=64)
    assert decode_import("\ufeff[]".encode(), limits) == "[]"                  # a BOM is fine
    with pytest.raises(ImportRefused) as binary:
        decode_import(b"\x89PNG\r\n\x1a\n\xff\xfe", limits)
    assert binary.value.reason == "not_text"
    with pytest.raises(ImportRefused) as big:
        decode_import(b"[" + b" " * 64 + b"]", limits)
    assert big.value.reason == "too_large" and big.value.values == {"limit_mb": 1}
    small = SessionStore(tmp_path, limits=limits)
    with pytest.raises(ImportRefused) as big_text:
        small.import_json(OWNER, "[" + " " * 64 + "]")
    assert big_text.value.reason == "too_large"


def test_exported_chat_imported_back_is_a_new_chat_beside_the_old(store: SessionStore):
    sid = store.create(OWNER, "제주 여행", {"system_prompt": "짧게", "temperature": 0.1})["id"]
    store.append(OWNER, sid, {"role": "user", "content": "3일 일정?"})
    store.append(OWNER, sid, reply("첫날은 성산일출봉."))
    before = store.get(OWNER, sid)
    report = store.import_json(OWNER, store.export(OWNER, sid))
    (copy_id,) = report.imported
    assert copy_id != sid and report.skipped == []
    assert store.get(OWNER, sid) == before                                   # the original is untouched
    copy = store.get(OWNER, copy_id)
    assert (copy["title"], copy["settings"], copy["messages"]) == (before["title"], before["settings"],
                                                                  before["messages"])
    assert sorted(s["id"] for s in store.list(OWNER)) == sorted([sid, copy_id])
