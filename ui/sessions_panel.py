"""The sidebar of the owner's chats: new, switch, search, rename, delete (with confirmation), export / import."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from ui import chat_exchange
from ui.chat_format import SETTING_KEYS
from ui.errors import Refusal, shown_to_user
from ui.gradio_bridge import event_data
from ui.chat_list import render, rows_from_hits
from ui.i18n import lang_of, say, t
from ui.owners import new_token, valid_token
from ui.page import ChatView, Shared, list_html, view_values

PRIVATE = {"api_visibility": "private"}
QUIET = {"show_progress": "hidden", **PRIVATE}   # refusals are toasts, never "Error" pills over the sidebar


CHAT_LIST_JS = (Path(__file__).resolve().parent / "assets" / "chat_list.js").read_text(encoding="utf-8")


@dataclass
class Sidebar:
    new: gr.Button
    search: gr.Textbox
    session_list: gr.HTML       # rows from ui/chat_list.py: title, date, rename and delete on hover
    confirm: gr.Group
    confirm_text: gr.Markdown
    delete_yes: gr.Button
    delete_no: gr.Button
    to_delete: gr.State         # the id of the chat the confirmation is about
    owner_key: gr.Textbox | None
    ready: gr.HTML
    exchange: chat_exchange.ExchangePanel     # export / import under the list


def build(show_owner_key: bool) -> Sidebar:
    gr.Markdown(t("sessions.title"))
    new = gr.Button(t("sessions.new"), variant="primary", elem_id="new-chat")
    search = gr.Textbox(label=t("sessions.search"), placeholder=t("sessions.search_ph"), elem_id="session-search",
                        max_lines=1)
    session_list = gr.HTML(render([], "", "en"), js_on_load=CHAT_LIST_JS, elem_id="session-list",
                           label=t("sessions.list"), padding=False)
    with gr.Group(visible=False, elem_id="delete-confirm") as confirm:
        confirm_text = gr.Markdown()
        with gr.Row():
            delete_yes = gr.Button(t("sessions.delete_yes"), variant="stop", size="sm", elem_id="delete-yes")
            delete_no = gr.Button(t("sessions.delete_no"), size="sm", elem_id="delete-no")
    to_delete = gr.State("")
    exchange = chat_exchange.build()
    owner_key = None
    if show_owner_key:
        with gr.Accordion(t("sessions.owner_key"), open=False):
            owner_key = gr.Textbox(show_label=False, info=t("sessions.owner_info"), interactive=False,
                                   elem_id="owner-key", buttons=["copy"])
    # Filled when the first paint is done (owner known, last chat open): lets browser tests wait for it.
    ready = gr.HTML("", visible="hidden", elem_id="chat-ready")
    return Sidebar(new, search, session_list, confirm, confirm_text, delete_yes, delete_no, to_delete, owner_key,
                   ready, exchange)


def new_chat_js(defaults: dict) -> str:
    """New chat happens in the browser, at once: the empty chat is shown before the click returns, so a
    message typed right after it can only go there (the chat is stored with its first message). A server
    round trip here let a quick message land in the chat shown before. While a reply is written (Stop in
    place of Send) nothing changes: the reply would go on drawing into the new chat; `busy_note` says why."""
    values = [defaults[k] for k in SETTING_KEYS]
    return ("(...shown) => { if (document.querySelector('#chat-input .stop-button')) return shown;"
            " document.querySelectorAll('#session-list .chat-row.current').forEach((r) => {"
            " r.classList.remove('current'); r.querySelector('.chat-open')?.removeAttribute('aria-current'); });"
            f" return [[], '', '', ...{json.dumps(values)}]; }}")


class SessionHandlers:
    def __init__(self, shared: Shared, view: ChatView):
        self.shared = shared
        self.n_outputs = len(view.outputs())
        self.list_at = view.outputs().index(view.session_list)

    def _owner(self, request: gr.Request, token: Any) -> str:
        return self.shared.owner(request, token)

    def _list_only(self, owner: str, current: Any, lang: str) -> tuple:
        """ChatView.outputs() values that redraw only the list (a reply may be streaming into the chat)."""
        values: list[Any] = [gr.skip()] * self.n_outputs
        values[self.list_at] = list_html(self.shared, owner, current or "", lang)
        return tuple(values)

    def on_load(self, token: Any, session_id: Any, request: gr.Request) -> tuple:
        """First paint: give an anonymous browser its key, then open its last chat."""
        if not self.shared.owners.auth and not valid_token(token):
            token = new_token()
        with shown_to_user(lang_of(request)):
            owner = self._owner(request, token)
            session = self.shared.convo.open(owner, session_id or None)
            return (token, token if not self.shared.owners.auth else "", "ready",
                    *view_values(self.shared, owner, session, request))

    def _busy(self, request: gr.Request) -> bool:
        """A reply of this page is being written: it draws into the chat shown, so that chat must stay."""
        return self.shared.convo.cancels.running(request.session_hash or "")

    def busy_note(self, request: gr.Request) -> None:
        """After New chat: say why nothing changed while a reply is written (see new_chat_js)."""
        if self._busy(request):
            gr.Warning(say(lang_of(request), "switch_running"))

    def row_action(self, token: Any, current: Any, evt: gr.EventData, request: gr.Request) -> tuple:
        """A click in the list (ui/assets/chat_list.js): open a chat, or ask before deleting one."""
        data = event_data(evt)
        action, session_id = data.get("action"), data.get("id")
        lang = lang_of(request)
        hidden = (gr.Group(visible=False), gr.skip(), gr.skip())
        if not isinstance(session_id, str) or action not in ("open", "delete"):
            return (*hidden, *[gr.skip()] * self.n_outputs)
        with shown_to_user(lang):
            leaving = session_id != current if action == "open" else session_id == current
            if leaving and self._busy(request):
                raise Refusal("switch_running")
            owner = self._owner(request, token)
            session = self.shared.services.store.get(owner, session_id)   # SessionNotFound: a toast
            if action == "open":
                return (*hidden, *view_values(self.shared, owner, session, request))
            text = say(lang, "delete_ask", title=session["title"])
            return (gr.Group(visible=True), text, session["id"], *[gr.skip()] * self.n_outputs)

    def rename(self, token: Any, current: Any, evt: gr.EventData, request: gr.Request) -> tuple:
        """The title typed in place of a row's title (Enter or leaving the field)."""
        data = event_data(evt)
        lang = lang_of(request)
        with shown_to_user(lang):
            owner = self._owner(request, token)
            session_id, title = data.get("id"), data.get("title")
            if isinstance(session_id, str) and isinstance(title, str):
                self.shared.services.store.rename(owner, session_id, title)
            return self._list_only(owner, current, lang)

    def search(self, token: Any, query: Any, current: Any, request: gr.Request) -> Any:
        """Filter the list to chats whose title or messages contain the query (Korean included)."""
        lang = lang_of(request)
        with shown_to_user(lang):
            owner = self._owner(request, token)
            store = self.shared.services.store
            if not (query or "").strip():
                return list_html(self.shared, owner, current or "", lang)
            hits = store.search(owner, query, limit=100)
            return render(rows_from_hits(hits), current or "", lang, say(lang, "no_results", query=query.strip()))

    def delete(self, token: Any, session_id: Any, current: Any, request: gr.Request) -> tuple:
        """Delete the chat the confirmation named; the chat shown stays unless it was that one."""
        lang = lang_of(request)
        with shown_to_user(lang):
            owner = self._owner(request, token)
            if session_id and session_id == current and self._busy(request):
                raise Refusal("switch_running")
            if session_id:
                self.shared.services.store.delete(owner, session_id)
            gr.Info(say(lang, "deleted"))
            if session_id and session_id != current:
                return (gr.Group(visible=False), "", *self._list_only(owner, current, lang))
            return (gr.Group(visible=False), "", *view_values(self.shared, owner, self.shared.convo.open(owner, None),
                                                              request))


def wire(shared: Shared, bar: Sidebar, view: ChatView, owner_token: gr.BrowserState, page: gr.Blocks) -> None:
    h = SessionHandlers(shared, view)
    owner_key = bar.owner_key if bar.owner_key is not None else gr.State("")
    page.load(h.on_load, [owner_token, view.session_id], [owner_token, owner_key, bar.ready, *view.outputs()],
              **QUIET)
    defaults = shared.services.default_settings()
    fresh = [view.chatbot, view.session_id, view.search, *view.settings_inputs()]
    for trigger in (bar.new.click, view.chatbot.clear):   # the old chat stays in the list
        trigger(None, fresh, fresh, js=new_chat_js(defaults), queue=False, **QUIET)
        trigger(h.busy_note, None, None, **QUIET)       # queued: a toast needs the queue
    bar.session_list.click(h.row_action, [owner_token, view.session_id],
                           [bar.confirm, bar.confirm_text, bar.to_delete, *view.outputs()], **QUIET)
    bar.session_list.submit(h.rename, [owner_token, view.session_id], view.outputs(), **QUIET)
    # .change, not .input: Gradio fires .input for Latin keystrokes only, not for IME (Korean), Backspace or paste
    bar.search.change(h.search, [owner_token, bar.search, view.session_id], bar.session_list,
                      trigger_mode="always_last", **QUIET)
    bar.delete_no.click(lambda: gr.Group(visible=False), None, bar.confirm, **QUIET)
    bar.delete_yes.click(h.delete, [owner_token, bar.to_delete, view.session_id],
                         [bar.confirm, bar.to_delete, *view.outputs()], **QUIET)
    chat_exchange.wire(shared, bar.exchange, bar.session_list, view.session_id, owner_token)
