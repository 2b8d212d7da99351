"""Stop looks busy exactly while something of the page runs, and stops that (issue 24): a Stop pressed while the
message waits for its reply is kept; Compare is refused while a reply runs (it would take the page's Stop) and
its click turns Stop red, then grey again. Handlers with the real tiny engine and a real store; the wiring on the
shared real app over HTTP."""
from __future__ import annotations

import re
from types import SimpleNamespace

import gradio as gr
import httpx
import pytest

from ui.chat import BASE, ChatHandlers
from ui.conversation import CancelBoard

TOKEN = "e" * 32
OWNER = "anon:" + TOKEN


def request(lang: str = "en", page: str = "stop-page") -> SimpleNamespace:
    return SimpleNamespace(headers={"accept-language": "ko-KR" if lang == "ko" else "en-US"}, session_hash=page,
                           username=None)


@pytest.fixture(scope="module")
def chat(tiny_engine, tmp_path_factory) -> ChatHandlers:
    from config import AppConfig
    from sessions import SessionStore
    from ui.conversation import Conversation
    from ui.owners import Owners
    from ui.page import Shared
    from ui.services import Services

    services = Services(AppConfig(), tiny_engine, SessionStore(tmp_path_factory.mktemp("stop") / "sessions"))
    return ChatHandlers(Shared(services, Owners(auth=False), Conversation(services), "s" * 32))


def send(chat: ChatHandlers, text: str, max_new_tokens: int, page: str) -> str:
    """The Send handler (saves the message, marks the page busy); the new chat's id."""
    out = chat.send(request(page=page), {"text": text, "files": []}, TOKEN, "", None, False, BASE,
                    "", 1.0, max_new_tokens, 1.0, 20)
    return out[6]       # box, editing, cancel_edit, typing, stop, chatbot, session_id, ...


def stop_is_grey(chat: ChatHandlers, page: str) -> bool:
    """What the step after an event shows: the Stop button back to grey (nothing of the page runs)."""
    stop = chat.idle(request(page=page))[2]
    return isinstance(stop, gr.Button) and stop.variant == "secondary"


# ---------------------------------------------------------------------------- a Stop while the message waits
def test_a_stop_pressed_while_the_message_waits_is_carried_into_its_reply():
    board = CancelBoard()
    board.hold("p")                         # Send saved the message; the reply waits in the queue
    assert board.stop("p")                  # Stop pressed now
    assert board.start("p").is_set()        # the reply begins already stopped
    board.hold("q")
    assert not board.start("q").is_set()    # no Stop: the reply runs
    done = board.start("r")
    done.set()                              # the engine sets a reply's event when it ends
    assert not board.start("r").is_set()    # the next reply does not inherit it


def test_the_reply_to_a_message_stopped_in_the_queue_ends_at_once_as_stopped(chat):
    session_id = send(chat, "Tell me a long story.", 48, "queued")
    chat.stop(request(page="queued"))
    for _ in chat.reply(TOKEN, session_id, request(page="queued")):
        pass
    messages = chat.shared.services.store.get(OWNER, session_id)["messages"]
    assert [(m["role"], m["content"]) for m in messages[:1]] == [("user", "Tell me a long story.")]
    reply = messages[-1]
    assert (reply["role"], reply["status"], reply["provenance"]["completion_tokens"]) == ("assistant", "stopped", 0)
    assert stop_is_grey(chat, "queued")


@pytest.mark.parametrize("again", ["retry", "continue_reply"])
def test_a_retry_refused_while_the_message_waits_leaves_the_page_busy(chat, again):
    """Send saved a message whose reply waits in the queue; Retry (or Continue) pressed now is refused, and the step
    after it must not show Send: the page stays busy, a second message is refused, until that reply has ended."""
    page = "waiting-" + again
    session_id = send(chat, "Tell me a long story.", 24, page)
    with pytest.raises(gr.Error) as refused:
        list(getattr(chat, again)(request(page=page), TOKEN, session_id, None, BASE, "", 1.0, 24, 1.0, 20))
    assert "still being written" in refused.value.message
    assert chat.settle(request(page=page)) == (gr.skip(),) * 3          # the step after Retry: Stop stays red
    with pytest.raises(gr.Error) as second:
        send(chat, "And another thing", 24, page)
    assert "still being written" in second.value.message
    for _ in chat.reply(TOKEN, session_id, request(page=page)):           # the waiting reply starts and ends
        pass
    assert stop_is_grey(chat, page)
    messages = chat.shared.services.store.get(OWNER, session_id)["messages"]
    assert [(m["role"], m["status"]) for m in messages[1:]] == [("assistant", "complete")]


# ---------------------------------------------------------------------------- Compare and the chat's Stop
@pytest.mark.parametrize("lang, notice", [("en", "A reply is still being written: wait for it or press Stop"),
                                          ("ko", "아직 답변을 쓰는 중입니다")])
def test_compare_is_refused_with_a_notice_while_a_reply_runs_and_stop_stops_the_reply(chat, lang, notice):
    page = "comparing-" + lang
    session_id = send(chat, "Tell me a long story.", 400, page)
    reply = chat.reply(TOKEN, session_id, request(lang, page))
    next(reply)                                         # the reply is being written
    with pytest.raises(gr.Error) as refused:
        list(chat.compare(TOKEN, session_id, "my-lora", request(lang, page)))
    assert notice in refused.value.message and refused.value.visible is False   # an info toast, not a red one
    chat.stop(request(lang, page))                      # Stop still reaches the reply
    for _ in reply:
        pass
    assert chat.shared.services.store.get(OWNER, session_id)["messages"][-1]["status"] == "stopped"
    assert stop_is_grey(chat, page)


def handler(dependency: dict) -> str:
    """The handler's name of an event in the page's /config (Gradio numbers repeats: settle_3)."""
    return re.sub(r"_\d+$", "", dependency["api_name"] or "")


def test_a_compare_click_turns_stop_red_then_grey_again(app_server):
    """On the real page: the click's first step shows Stop red, the step after Compare shows it grey again
    (the same step that ends a reply: grey only when nothing of the page runs)."""
    config = httpx.get(app_server.url + "/config", timeout=30).json()
    ids = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c.get("props", {}).get("elem_id")}
    deps = config["dependencies"]
    by_fn = {d["id"]: d for d in deps}
    first = [d for d in deps if [ids["compare-run"], "click"] in d["targets"]]
    assert len(first) == 1, first
    chain = first
    while True:
        after = [d for d in deps if d.get("trigger_after") == chain[-1]["id"]]
        if not after:
            break
        chain.append(after[0])
    assert len(chain) == 3, [by_fn[d["id"]]["outputs"] for d in chain]
    red, compare, grey = chain
    assert ids["stop"] in red["outputs"] and ids["stop"] in grey["outputs"]
    assert ids["compare-base"] in compare["outputs"]
    assert handler(grey) == "settle"            # never drops the busy mark of a message still waiting


@pytest.mark.parametrize("button, step", [("send", "idle"), ("retry", "settle"), ("continue", "settle")])
def test_the_step_after_each_reply_event_is_the_one_that_may_drop_the_busy_mark_only_for_send(app_server, button,
                                                                                               step):
    """Send's reply chain ends in `idle` (it may drop its own message's mark when the reply never started);
    Retry and Continue end in `settle`, which never drops one (a sent message may still wait)."""
    config = httpx.get(app_server.url + "/config", timeout=30).json()
    deps = config["dependencies"]
    node = next(d for d in deps if handler(d) == {"continue": "continue_reply"}.get(button, button))
    while (after := [d for d in deps if d.get("trigger_after") == node["id"]]):
        node = after[0]
    assert handler(node) == step
