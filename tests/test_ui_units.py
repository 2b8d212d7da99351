"""Fast checks of the UI's helpers and the chat operations, in-process with the tiny demo engine."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from types import SimpleNamespace

import pytest

from config import AppConfig, ConfigError
from engine.requests import Sampling
from tests.conftest import ROOT
from ui import chat_format, i18n
from ui.conversation import Conversation
from ui.errors import Refusal
from ui.owners import Owners, browser_secret, load_users, parse_users_env, read_users_file
from ui.services import Services


# ---------------------------------------------------------------- owners and auth
def test_users_from_env_and_file(tmp_path):
    assert parse_users_env("alice:pw1, bob:p:w2") == [("alice", "pw1"), ("bob", "p:w2")]
    with pytest.raises(ConfigError, match="APP_USERS"):
        parse_users_env("alice")
    path = tmp_path / "users.json"
    path.write_text(json.dumps({"민수": "비밀"}), encoding="utf-8")
    assert read_users_file(str(path)) == [("민수", "비밀")]
    path.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="server.auth_file"):
        read_users_file(str(path))
    assert load_users("", env={}) is None
    assert load_users("", env={"APP_USERS": "a:b"}) == [("a", "b")]


def test_owner_is_the_login_when_auth_is_on():
    request = SimpleNamespace(username="alice", headers={})
    assert Owners(auth=True).resolve(request, "ignored-token-ignored-token") == "user:alice"
    with pytest.raises(Refusal):
        Owners(auth=True).resolve(SimpleNamespace(username=None, headers={}), "a" * 32)


def test_anonymous_owner_needs_a_real_token():
    anon = Owners(auth=False)
    assert anon.resolve(None, "a" * 32) == "anon:" + "a" * 32
    for bad in ("short", "x" * 201, "has space in it....", "../../etc/passwd0000"):
        with pytest.raises(Refusal, match="bad_owner"):
            anon.resolve(None, bad)
    with pytest.raises(Refusal, match="need_owner"):
        anon.resolve(None, "")
    assert anon.resolve_optional(None, "") is None


def test_browser_secret_survives_a_restart(tmp_path):
    first = browser_secret(tmp_path)
    assert len(first) >= 32 and browser_secret(tmp_path) == first
    assert (tmp_path / "browser-state.key").stat().st_mode & 0o077 == 0


# ---------------------------------------------------------------- text helpers
def test_every_text_has_english_and_korean():
    assert set(i18n.EN) == set(i18n.KO)
    assert set(i18n.SAY_EN) == set(i18n.SAY_KO)
    assert i18n.lang_of(SimpleNamespace(headers={"accept-language": "ko-KR,ko;q=0.9"})) == "ko"
    assert i18n.lang_of(SimpleNamespace(headers={"accept-language": "en-US"})) == "en"
    assert i18n.lang_of(None) == "en"


def test_engine_messages_alternate_even_after_a_failed_reply():
    stored = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
              {"role": "assistant", "content": "c"}, {"role": "user", "content": "", "attachments": ["x"]}]
    assert chat_format.engine_messages(stored, "sys") == [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "a\n\nb"},
        {"role": "assistant", "content": "c"}, {"role": "user", "content": "(image)"}]


def test_provenance_line_is_small_and_escaped():
    words = lambda k: {"no_adapter": "no adapter", "stopped": "stopped", "error": "error"}[k]  # noqa: E731
    line = chat_format.provenance_line({"model": "<b>m</b>", "rung": "4bit", "tokens_per_second": 12.34}, "stopped", words)
    assert line == "<sub>&lt;b&gt;m&lt;/b&gt; · 4bit · no adapter · 12.3 tok/s · ⏹ stopped</sub>"


def test_a_reply_cut_at_the_token_limit_says_so_in_the_users_language():
    from ui.i18n import say

    prov = {"model": "m", "rung": "4bit", "finish_reason": "length"}
    for lang, words in (("en", "cut at the token limit"), ("ko", "토큰 한도에서 잘림")):
        assert words in chat_format.provenance_line(prov, "done", lambda k, **v: say(lang, k, **v))
    finished = chat_format.provenance_line(prov | {"finish_reason": "stop"}, "done", lambda k, **v: say("en", k, **v))
    assert "cut" not in finished


def test_settings_keep_only_known_keys_with_sane_types():
    defaults = {"system_prompt": "", "temperature": 0.7, "max_new_tokens": 512, "top_p": 0.95}
    merged = chat_format.settings_from({"temperature": 1, "max_new_tokens": 33.0, "top_p": "x", "evil": 1}, defaults)
    assert merged == {"system_prompt": "", "temperature": 1.0, "max_new_tokens": 33, "top_p": 0.95}
    # the chat's adapter travels with its settings (the endpoint and Voice tab use it too)
    assert chat_format.settings_from({"adapter": "my-bot"}, defaults)["adapter"] == "my-bot"
    assert "adapter" not in chat_format.settings_from({"adapter": 3}, defaults)


# ---------------------------------------------------------------- app start rules
def test_share_without_login_is_refused(tmp_path):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"sessions": {"path": str(tmp_path / "s")}}))
    proc = subprocess.run([sys.executable, str(ROOT / "app.py"), "--config", str(config), "--share"],
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin",
                                                                           "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2
    assert "--public-share-i-understand" in proc.stderr and "APP_USERS" in proc.stderr
    assert proc.stderr.count("\n") == 1


def test_public_share_needs_the_explicit_flag():
    import app

    cfg = AppConfig()
    args = app.parse_args(["--share"])
    with pytest.raises(ConfigError):
        app.check_share(app.read_config_from(cfg, args), None)
    args = app.parse_args(["--share", "--public-share-i-understand"])
    app.check_share(app.read_config_from(cfg, args), None)
    app.check_share(app.read_config_from(cfg, app.parse_args(["--share"])), [("a", "b")])


# ---------------------------------------------------------------- chat operations (tiny engine)
@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    """The tiny demo engine on the plain queue path, closed afterwards (its batching thread would outlive us)."""
    from engine.chat import ChatEngine
    from config import EngineConfig
    from engine.loading.sources import resolve_source

    eng = ChatEngine.from_source(resolve_source("demo:tiny"), EngineConfig(), batching="queue")
    yield eng
    eng.close()


@pytest.fixture
def conversation(engine, tmp_path):
    from dataclasses import replace

    from sessions import SessionStore

    cfg = AppConfig()
    cfg = replace(cfg, generation=replace(cfg.generation, max_new_tokens=8))
    return Conversation(Services(cfg, engine, SessionStore(tmp_path / "sessions")))


def test_send_reply_retry_edit(conversation):
    owner = "anon:" + "b" * 32
    session = conversation.add_user(owner, None, "  Hello  ")
    assert session["title"] == "Hello"
    job = conversation.start_reply(owner, session["id"], threading.Event())
    texts = list(job)
    saved = job.save()
    assert [m["role"] for m in saved["messages"]] == ["user", "assistant"]
    assert saved["messages"][1]["content"] == texts[-1] and saved["messages"][1]["status"] == "complete"
    assert saved["messages"][1]["provenance"]["model"] == "demo:tiny"
    retry = conversation.start_reply(owner, session["id"], threading.Event(), replace=True,
                                     expected_version=saved["version"])
    list(retry)
    assert len(retry.save()["messages"]) == 2
    edited = conversation.add_user(owner, session["id"], "Edited", edit=True)
    assert [m["content"] for m in edited["messages"]] == ["Edited"]
    with pytest.raises(Refusal):
        conversation.add_user(owner, session["id"], "   ")


def test_a_chats_seed_and_penalties_reach_its_replies_and_can_be_cleared(conversation):
    """The Chat tab's seed and penalty settings are the chat's own: stored, used for its replies (provenance
    says so), and a seed emptied again means no seed. The same seed gives the same sampled reply."""
    owner = "anon:" + "f" * 32
    session = conversation.add_user(owner, None, "Hello")
    settings = {"temperature": 1.0, "seed": 5, "presence_penalty": 0.5, "frequency_penalty": 1.5, "top_k": 40,
                "repetition_penalty": 1.2}
    session = conversation.save_settings(owner, session, settings)
    first = conversation.start_reply(owner, session["id"], threading.Event())
    list(first)
    saved = first.save()
    sampling = saved["messages"][-1]["provenance"]["sampling"]
    assert (sampling["seed"], sampling["presence_penalty"], sampling["frequency_penalty"]) == (5, 0.5, 1.5)
    assert (sampling["top_k"], sampling["repetition_penalty"]) == (40, 1.2)
    again = conversation.start_reply(owner, session["id"], threading.Event(), replace=True,
                                     expected_version=saved["version"])
    list(again)
    assert again.save()["messages"][-1]["content"] == saved["messages"][-1]["content"]
    cleared = conversation.save_settings(owner, conversation.store.get(owner, session["id"]), {"seed": None})
    assert conversation.settings(cleared)["seed"] is None


def test_stop_saves_the_partial_reply_as_stopped(conversation):
    owner = "anon:" + "c" * 32
    session = conversation.add_user(owner, None, "Tell a long story")
    cancel = threading.Event()
    job = conversation.start_reply(owner, session["id"], cancel, asked=Sampling(max_new_tokens=400))
    for i, _ in enumerate(job):
        if i == 2:
            cancel.set()
    saved = job.save()
    reply = saved["messages"][-1]
    assert reply["status"] == "stopped" and 0 < reply["provenance"]["completion_tokens"] < 400


def test_abandoned_reply_is_saved_when_the_page_goes_away(conversation):
    owner = "anon:" + "d" * 32
    session = conversation.add_user(owner, None, "Hello")
    job = conversation.start_reply(owner, session["id"], threading.Event(), asked=Sampling(max_new_tokens=400))
    next(iter(job))
    job.close()
    assert job.save()["messages"][-1]["status"] == "stopped"


def test_continue_extends_the_one_reply_cut_at_the_token_limit(conversation):
    """Continue: the reply cut at the limit grows in place (one message, same id, old text first), its provenance
    sums the tokens and counts the continuations, the version moves on; a stale page is refused, and Stop during
    a continuation keeps the old text and the partial new one, saved as stopped (then nothing to continue)."""
    from sessions import StaleVersion

    owner = "anon:" + "9" * 32
    greedy = Sampling(temperature=0.0, max_new_tokens=8, min_new_tokens=8)
    session = conversation.add_user(owner, None, "Tell me about the sea")
    first = conversation.start_reply(owner, session["id"], threading.Event(), asked=greedy)
    list(first)
    saved = first.save()
    cut = saved["messages"][-1]
    assert cut["provenance"]["finish_reason"] == "length" and chat_format.continuable(saved["messages"])
    with pytest.raises(StaleVersion):
        conversation.start_reply(owner, session["id"], threading.Event(), extend=True,
                                 expected_version=saved["version"] - 1, asked=greedy)
    job = conversation.start_reply(owner, session["id"], threading.Event(), extend=True,
                                   expected_version=saved["version"], asked=greedy)
    texts = list(job)
    assert all(text.startswith(cut["content"]) for text in texts)
    grown = job.save()
    reply = grown["messages"][-1]
    assert [m["role"] for m in grown["messages"]] == ["user", "assistant"] and grown["version"] == saved["version"] + 1
    assert reply["id"] == cut["id"] and reply["content"] == texts[-1] and len(reply["content"]) > len(cut["content"])
    assert reply["content"].startswith(cut["content"]) and reply["status"] == "complete"
    prov = reply["provenance"]
    assert (prov["completion_tokens"], prov["continued"], prov["finish_reason"]) == (16, 1, "length")
    assert prov["prompt_tokens"] > cut["provenance"]["prompt_tokens"]     # the reply so far was in the prompt
    again = conversation.start_reply(owner, session["id"], threading.Event(), extend=True,
                                     expected_version=grown["version"], asked=greedy)
    list(again)
    twice = again.save()["messages"][-1]
    assert twice["content"].startswith(reply["content"]) and twice["provenance"]["continued"] == 2
    assert twice["provenance"]["completion_tokens"] == 24
    cancel = threading.Event()
    stopped = conversation.start_reply(owner, session["id"], cancel, extend=True,
                                       asked=Sampling(temperature=0.0, max_new_tokens=400))
    for i, _ in enumerate(stopped):
        if i == 2:
            cancel.set()
    kept = stopped.save()
    last = kept["messages"][-1]
    assert len(kept["messages"]) == 2 and last["status"] == "stopped" and last["content"].startswith(twice["content"])
    assert 24 < last["provenance"]["completion_tokens"] < 24 + 400
    assert last["provenance"]["finish_reason"] == "cancelled" and not chat_format.continuable(kept["messages"])
    with pytest.raises(Refusal) as caught:
        conversation.start_reply(owner, session["id"], threading.Event(), extend=True)
    assert caught.value.key == "nothing_to_continue"


def test_edit_keeps_the_image_of_the_edited_message(conversation, tmp_path):
    from PIL import Image

    owner = "anon:" + "e" * 32
    picture = tmp_path / "p.png"
    Image.new("RGB", (8, 8), (1, 2, 3)).save(picture)
    session = conversation.add_user(owner, None, "what is this", image_path=str(picture))
    ref = session["messages"][0]["attachments"][0]
    edited = conversation.add_user(owner, session["id"], "and now?", edit=True)
    assert edited["messages"][0]["attachments"] == [ref]
    assert conversation.store.attachment_path(owner, ref).is_file()


def test_missing_optional_models_say_so_in_both_languages(engine, tmp_path):
    from sessions import SessionStore
    from engine.errors import ModelUnavailable
    from ui.errors import message_for

    services = Services(AppConfig(), engine, SessionStore(tmp_path / "s"), manager=None)
    with pytest.raises(ModelUnavailable) as caught:
        services.transcribe(b"RIFF")
    text = message_for(caught.value, "en")
    assert "model is not available" in text and "모델을 사용할 수 없습니다" in text
    assert "모델을 사용할 수 없습니다" in message_for(caught.value, "ko")


def test_models_tab_shows_the_configured_ladder_in_both_languages(engine, tmp_path):
    """engine.precision as a list: the Models tab's overview names the rungs the loader tries, in order."""
    from dataclasses import replace

    from sessions import SessionStore
    from ui.models import ModelsHandlers

    cfg = AppConfig()
    cfg = replace(cfg, engine=replace(cfg.engine, precision=["fp16", "4bit"]))
    handlers = ModelsHandlers(SimpleNamespace(services=Services(cfg, engine, SessionStore(tmp_path / "s"),
                                                                manager=None)))
    assert engine.report.device == "cpu"          # no GPU: fp16 is full precision on the CPU
    full = f"cpu-{cfg.engine.cpu_dtype}"
    english = handlers.overview(SimpleNamespace(headers={"accept-language": "en-US"}))[0]
    assert f"- Ladder (engine.precision): {full} → 4bit; only these rungs are tried, in this order" in english
    korean = handlers.overview(SimpleNamespace(headers={"accept-language": "ko-KR"}))[0]
    assert f"- 정밀도 사다리 (engine.precision): {full} → 4bit; 이 단계들만 이 순서로 시도" in korean
    handlers.shared.services.cfg = AppConfig()    # auto: the whole CPU ladder, from the first rung that fits
    auto = handlers.overview(SimpleNamespace(headers={"accept-language": "en-US"}))[0]
    assert f"- Ladder (engine.precision auto): {full} → 8bit → 4bit, starting at the first rung that fits" in auto


def test_history_turns_with_an_image_turn_are_counted_and_sent(engine, tmp_path):
    """A turn with an image (the Chat tab's upload) goes to the image model under the chat's history-turn
    setting: the turns kept are what the image model gets, and what the reply records (and shows)."""
    from dataclasses import replace

    from PIL import Image

    from engine.manager import ModelManager, register_media_models
    from sessions import SessionStore

    cfg = AppConfig()
    cfg = replace(cfg, generation=replace(cfg.generation, max_new_tokens=4))
    manager = ModelManager.from_config(cfg.engine)
    manager.register_loaded("chat", engine)
    register_media_models(manager, cfg.engine, demo=True)
    convo = Conversation(Services(cfg, engine, SessionStore(tmp_path / "s"), manager))
    owner = "anon:" + "f" * 32
    picture = tmp_path / "shapes.png"
    Image.new("RGB", (32, 24), (200, 30, 30)).save(picture)
    settings = {**convo.services.default_settings(), "history_turns": 2}

    def turn(session_id, text, image=None) -> dict:
        session = convo.add_user(owner, session_id, text, image_path=image, settings=settings)
        job = convo.start_reply(owner, session["id"], threading.Event())
        list(job)
        return job.save()

    session = turn(None, "first question")
    session = turn(session["id"], "second question")
    session = turn(session["id"], "what is in this picture?", str(picture))
    reply = session["messages"][-1]
    assert reply["status"] == "complete" and reply["provenance"]["model"] != "demo:tiny"     # the image model
    assert reply["provenance"]["history_turns"] == 2 and reply["provenance"]["dropped_turns"] == 1
    # what the image model was given: the prompt of the last two turns, not of all three
    *past, last = chat_format.engine_messages(session["messages"][:-1])
    with manager.use("vision") as vision:
        kept = vision.prepare(str(picture), last["content"], past, max_new_tokens=4, max_history_turns=2)
        every = vision.prepare(str(picture), last["content"], past, max_new_tokens=4, max_history_turns=3)
    assert reply["provenance"]["prompt_tokens"] == kept.prompt_tokens < every.prompt_tokens
    # shown under the reply as the page shows it
    shown = chat_format.display_messages(session["messages"], lambda ref: None, lambda key, **v: i18n.say("en", key, **v))
    assert "turns sent: 2" in str(shown[-1]["content"])
    # a text turn after it: the image turn is one of the turns, and the chat model answers
    session = turn(session["id"], "and then?")
    reply = session["messages"][-1]["provenance"]
    assert reply["model"] == "demo:tiny" and reply["history_turns"] == 2 and reply["dropped_turns"] == 2


def test_chat_list_rows_say_when_in_both_languages_and_escape_titles():
    import time

    from ui.chat_list import ChatRow, render, when

    now = time.mktime((2026, 11, 30, 15, 0, 0, 0, 0, -1))
    ago = {5: ("just now", "방금"), 300: ("5 min ago", "5분 전"), 7200: ("2 h ago", "2시간 전"),
           86400: ("yesterday", "어제"), 3 * 86400: ("3 days ago", "3일 전"), 20 * 86400: ("Nov 10", "11월 10일"),
           400 * 86400: ("Oct 26, 2025", "2025. 10. 26.")}
    for seconds, (en, ko) in ago.items():
        assert (when(now - seconds, now, "en"), when(now - seconds, now, "ko")) == (en, ko), seconds
    html = render([ChatRow("a" * 32, "<img src=x onerror=alert(1)>", now - 30)], "a" * 32, "en", now=now)
    assert "<img" not in html and "&lt;img" in html and 'aria-current="true"' in html
    assert render([], "", "ko", "“x” 와 맞는 대화가 없습니다.").count("chat-empty") == 1


def test_the_models_tabs_rung_table_says_which_rungs_answer_several_people_together():
    """From the measured criterion (engine/serving/batch_criterion.json): 4-bit shares the batch, 8-bit takes turns."""
    from ui.models import quality_markdown

    table = quality_markdown("demo:smollm2", "en")
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "answered together" in rows["4bit"] and "take turns" in rows["8bit"], table
    assert "answered together" in rows["cpu-bfloat16"]
    assert "차례대로" in quality_markdown("demo:smollm2", "ko")


def test_every_symbol_the_page_writes_is_in_its_icon_font_or_left_to_the_text_font():
    """ui/assets/icons.ttf must hold each emoji written in ui/ (a new one without `python -m ui.icons` fails here),
    and the page's CSS names it by URL (a file the browser caches, not 35 KiB of base64 in every page) with a
    unicode-range, first in the font stacks."""
    from ui.icons import FAMILY, font_css, font_url, shipped_symbols, symbols_in_ui

    missing = symbols_in_ui() - shipped_symbols() - shipped_symbols("left_to_the_text_font")
    assert not missing, f"run `python -m ui.icons` to add {sorted(f'U+{ord(c):04X}' for c in missing)}"
    css = font_css()
    assert font_url().startswith("/ui-assets/icons-") and font_url().endswith(".ttf")
    assert css.startswith(f'@font-face {{ font-family: "{FAMILY}"; src: url("{font_url()[1:]}") format("truetype")')
    assert "base64" not in css and len(css) < 2000, len(css)
    ranges = css.split("unicode-range: ", 1)[1].split(";", 1)[0].split(",")
    assert "U+1F504" in ranges and "U+41" not in ranges      # 🔄 is drawn by it; plain letters never are
    assert f'--font: "{FAMILY}", ' in css
