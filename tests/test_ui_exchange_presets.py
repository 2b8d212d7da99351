"""The page's export / import and presets handlers on the real store and the tiny engine: each refusal is one line
in the user's language (English or Korean, from the request), exports are per owner, a preset lands in the chat."""
from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import pytest

from config import AppConfig
from sessions import SessionStore
from ui.chat_exchange import ExchangeHandlers
from ui.chat_format import SETTING_KEYS
from ui.conversation import Conversation
from ui.owners import Owners, new_token
from ui.page import Shared
from ui.presets_panel import PresetHandlers
from ui.services import Services

EN = SimpleNamespace(headers={"accept-language": "en-US"}, username=None, session_hash="en")
KO = SimpleNamespace(headers={"accept-language": "ko-KR,ko;q=0.9"}, username=None, session_hash="ko")


@pytest.fixture
def shared(tiny_engine, tmp_path) -> Shared:
    cfg = AppConfig()
    cfg = replace(cfg, server=replace(cfg.server, max_upload_mb=1))
    services = Services(cfg, tiny_engine, SessionStore(tmp_path / "sessions"))
    return Shared(services, Owners(auth=False), Conversation(services), "secret")


def owner_of(token: str) -> str:
    return f"anon:{token}"


def test_import_says_what_it_did_or_why_not_in_one_line(shared, tmp_path):
    h, token = ExchangeHandlers(shared), new_token()
    files = {"foreign.json": json.dumps([{"title": "elsewhere", "mapping": {}}]).encode(),
             "picture.json": b"\x89PNG\r\n\x1a\n\xff\xfe\x00",
             "chat.md": "# Plan a trip\n\n### User\nhi".encode(),
             "big.json": b"[" + b" " * (1024 * 1024) + b"]"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    lines = {name: [h.import_file(token, str(tmp_path / name), "", request)[0] for request in (EN, KO)]
             for name in files}
    assert lines["foreign.json"] == ["⚠️ This file is not a chat export of this app. Nothing was imported.",
                                     "⚠️ 이 앱의 대화 내보내기 파일이 아닙니다. 아무것도 가져오지 않았습니다."]
    assert lines["picture.json"][0].startswith("⚠️ This file is not text")
    assert lines["picture.json"][1].startswith("⚠️ 텍스트 파일이 아닙니다")
    assert lines["chat.md"][0].startswith("⚠️ This file is not JSON")
    assert lines["big.json"] == ["⚠️ This file is larger than 1 MB, the most an import may be. Nothing was imported.",
                                 "⚠️ 파일이 가져오기 한도인 1 MB보다 큽니다. 아무것도 가져오지 않았습니다."]
    assert h.import_file(token, None, "", EN)[0] == "⚠️ Pick a .json file to import."
    assert shared.services.store.list(owner_of(token)) == []

    mixed = {"format": "chat-sessions", "schema": 2, "sessions": [
        {"title": "제주", "messages": [{"role": "user", "content": "안녕"}]},
        {"title": "broken", "messages": "not a list"},
        {"title": "bad role", "messages": [{"role": "wizard", "content": "hi"}]}]}
    (tmp_path / "mixed.json").write_text(json.dumps(mixed), encoding="utf-8")
    line, listed = h.import_file(token, str(tmp_path / "mixed.json"), "", KO)   # a Korean page: Korean reasons only
    assert line == ("대화 1개를 가져왔습니다. 2개는 건너뛰었습니다: 2번째 대화: 메시지 목록이 없습니다; "
                    "3번째 대화: 올바르지 않은 메시지나 설정이 있습니다")
    assert "제주" in listed and "broken" not in listed
    line, _ = h.import_file(token, str(tmp_path / "mixed.json"), "", EN)   # English: the store's own detail
    assert line.startswith("1 chat imported. 2 skipped: chat 2: its 'messages' is missing or not a list; chat 3: ")
    assert "wizard" in line or "role" in line


def test_an_owner_exports_only_their_own_chats(shared):
    h, store = ExchangeHandlers(shared), shared.services.store
    alice, bob = new_token(), new_token()
    sid = store.create(owner_of(alice), "제주 여행: 3일?")["id"]
    store.append(owner_of(alice), sid, {"role": "user", "content": "일정 짜줘"})

    file, line = h.export(bob, sid, "this", "json", EN)
    assert file.visible is False
    assert line == "⚠️ This chat no longer exists (deleted in another tab?). Pick or start another chat."
    assert h.export(bob, None, "all", "json", KO)[1] == "⚠️ 아직 내보낼 대화가 없습니다."
    assert h.export(alice, "", "this", "json", EN)[1] == "⚠️ This chat has no messages yet: there is nothing to export."

    file, line = h.export(alice, sid, "this", "markdown", EN)
    assert line == "" and file.value["orig_name"] == "제주-여행-3일.md"
    file, _ = h.export(alice, None, "all", "json", EN)
    exported = json.loads(open(file.value["path"], encoding="utf-8").read())
    assert [s["id"] for s in exported["sessions"]] == [sid]


def test_presets_from_the_page_refuse_in_one_line_and_land_in_the_chat(shared):
    h, store = PresetHandlers(shared), shared.services.store
    token = new_token()
    shown = dict(shared.services.default_settings(), system_prompt="해적처럼 답하세요.", temperature=0.3)
    values = [shown[k] for k in SETTING_KEYS]

    assert h.save(KO, token, "  ", *values)[2] == "⚠️ 먼저 프리셋 이름을 입력하세요."
    picked, name, note = h.save(EN, token, "Pirate", *values)
    assert note == "Preset “Pirate” saved." and name == ""
    assert picked.choices == [("Pirate", picked.value)]
    assert h.save(KO, token, "PIRATE", *values)[2] == "⚠️ “PIRATE” 프리셋이 이미 있습니다. 다른 이름을 고르세요."
    assert h.rename(token, None, "x", EN)[2] == "⚠️ Pick a preset first."

    sid = store.create(owner_of(token), "other", settings=shared.services.default_settings())["id"]
    defaults = [shared.services.default_settings()[k] for k in SETTING_KEYS]
    *applied, version, note = h.apply(EN, token, sid, picked.value, *defaults)
    assert note == "Preset “Pirate” applied to this chat."
    assert dict(zip(SETTING_KEYS, applied))["system_prompt"] == "해적처럼 답하세요."
    stored = store.get(owner_of(token), sid)
    assert version == stored["version"] == 2
    assert (stored["settings"]["system_prompt"], stored["settings"]["temperature"]) == ("해적처럼 답하세요.", 0.3)

    other = new_token()         # another owner neither sees nor uses it
    assert h.apply(EN, other, "", picked.value, *defaults)[-1] == \
        "⚠️ This preset no longer exists (deleted in another tab?)."
    assert h.delete(token, picked.value, EN)[1] == "Preset “Pirate” deleted."
    assert shared.services.presets.list(owner_of(token)) == []


def test_another_chat_shown_clears_the_pick_quietly_only_before_the_page_has_its_key(shared):
    """The first chat is shown as the page loads, before its owner key arrives: nothing to read, nothing said. Any
    later refusal (here a key that is not one) is the line, in the user's language."""
    h, token = PresetHandlers(shared), new_token()
    h.save(EN, token, "Pirate", *[shared.services.default_settings()[k] for k in SETTING_KEYS])
    picked, note = h.cleared("", EN)
    assert picked.value is None and note == {"__type__": "update"}      # gr.skip(): the line stays as it is
    picked, note = h.cleared(token, EN)
    assert picked.value is None and [c for c, _ in picked.choices] == ["Pirate"]
    assert h.cleared("not a key", KO)[1].startswith("⚠️ ")
