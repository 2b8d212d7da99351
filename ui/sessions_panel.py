"""The sidebar of the owner's chats: new, switch, search, rename, delete (with confirmation)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from ui.errors import shown_to_user
from ui.i18n import lang_of, say, t
from ui.owners import new_token, valid_token
from ui.page import ChatView, Shared, view_values

PRIVATE = {"api_visibility": "private"}
QUIET = {"show_progress": "hidden", **PRIVATE}   # refusals are toasts, never "Error" pills over the sidebar


@dataclass
class Sidebar:
    new: gr.Button
    search: gr.Textbox
    session_list: gr.Radio
    title: gr.Textbox
    rename: gr.Button
    delete: gr.Button
    confirm: gr.Group
    confirm_text: gr.Markdown
    delete_yes: gr.Button
    delete_no: gr.Button
    owner_key: gr.Textbox | None
    ready: gr.HTML


def build(show_owner_key: bool) -> Sidebar:
    gr.Markdown(t("sessions.title"))
    new = gr.Button(t("sessions.new"), variant="primary", elem_id="new-chat")
    search = gr.Textbox(label=t("sessions.search"), placeholder=t("sessions.search_ph"), elem_id="session-search",
                        max_lines=1)
    session_list = gr.Radio(choices=[], label=t("sessions.list"), elem_id="session-list")
    title = gr.Textbox(label=t("sessions.rename_label"), elem_id="session-title", max_lines=1)
    with gr.Row():
        rename = gr.Button(t("sessions.rename"), size="sm", elem_id="rename-chat")
        delete = gr.Button(t("sessions.delete"), size="sm", variant="stop", elem_id="delete-chat")
    with gr.Group(visible=False, elem_id="delete-confirm") as confirm:
        confirm_text = gr.Markdown()
        with gr.Row():
            delete_yes = gr.Button(t("sessions.delete_yes"), variant="stop", size="sm", elem_id="delete-yes")
            delete_no = gr.Button(t("sessions.delete_no"), size="sm", elem_id="delete-no")
    owner_key = None
    if show_owner_key:
        with gr.Accordion(t("sessions.owner_key"), open=False):
            owner_key = gr.Textbox(show_label=False, info=t("sessions.owner_info"), interactive=False,
                                   elem_id="owner-key", buttons=["copy"])
    # Filled when the first paint is done (owner known, last chat open): lets browser tests wait for it.
    ready = gr.HTML("", visible="hidden", elem_id="chat-ready")
    return Sidebar(new, search, session_list, title, rename, delete, confirm, confirm_text, delete_yes,
                   delete_no, owner_key, ready)


class SessionHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    def _owner(self, request: gr.Request, token: Any) -> str:
        return self.shared.owner(request, token)

    def on_load(self, token: Any, session_id: Any, request: gr.Request) -> tuple:
        """First paint: give an anonymous browser its key, then open its last chat."""
        if not self.shared.owners.auth and not valid_token(token):
            token = new_token()
        with shown_to_user(lang_of(request)):
            owner = self._owner(request, token)
            session = self.shared.convo.open(owner, session_id or None)
            return (token, token if not self.shared.owners.auth else "", "ready",
                    *view_values(self.shared, owner, session, request))

    def new_chat(self, token: Any, request: gr.Request) -> tuple:
        with shown_to_user(lang_of(request)):
            owner = self._owner(request, token)
            return view_values(self.shared, owner, self.shared.convo.create(owner), request)

    def switch(self, token: Any, session_id: Any, request: gr.Request) -> tuple:
        with shown_to_user(lang_of(request)):
            owner = self._owner(request, token)
            session = self.shared.services.store.get(owner, session_id) if session_id else None
            return view_values(self.shared, owner, session, request)

    def search(self, token: Any, query: Any, current: Any, request: gr.Request) -> Any:
        """Filter the list to chats whose title or messages contain the query (Korean included)."""
        lang = lang_of(request)
        with shown_to_user(lang):
            owner = self._owner(request, token)
            store = self.shared.services.store
            if not (query or "").strip():
                choices = [(s["title"], s["id"]) for s in store.list(owner, limit=200)]
                return gr.Radio(choices=choices, value=current or None, label=t("sessions.list"))
            hits = store.search(owner, query, limit=100)
            choices = [(f"{h['title']} — {h['snippet']}", h["session_id"]) for h in hits]
            label = t("sessions.list") if hits else say(lang, "no_results", query=query.strip())
            value = current if any(h["session_id"] == current for h in hits) else None
            return gr.Radio(choices=choices, value=value, label=label)

    def rename(self, token: Any, session_id: Any, title: Any, request: gr.Request) -> tuple:
        with shown_to_user(lang_of(request)):
            owner = self._owner(request, token)
            if not session_id:
                session = self.shared.convo.create(owner, title or None)
            else:
                session = self.shared.services.store.rename(owner, session_id, title or "")
            return view_values(self.shared, owner, session, request)

    def ask_delete(self, title: Any, session_id: Any, request: gr.Request) -> tuple:
        if not session_id:
            return gr.Group(visible=False), ""
        ko = lang_of(request) == "ko"
        text = (f"**“{title}”** 대화를 삭제할까요? 되돌릴 수 없습니다." if ko
                else f"Delete **“{title}”**? This cannot be undone.")
        return gr.Group(visible=True), text

    def delete(self, token: Any, session_id: Any, request: gr.Request) -> tuple:
        lang = lang_of(request)
        with shown_to_user(lang):
            owner = self._owner(request, token)
            if session_id:
                self.shared.services.store.delete(owner, session_id)
            gr.Info(say(lang, "deleted"))
            return (gr.Group(visible=False), *view_values(self.shared, owner, self.shared.convo.open(owner, None),
                                                          request))


def wire(shared: Shared, bar: Sidebar, view: ChatView, owner_token: gr.BrowserState, page: gr.Blocks) -> None:
    h = SessionHandlers(shared)
    owner_key = bar.owner_key if bar.owner_key is not None else gr.State("")
    page.load(h.on_load, [owner_token, view.session_id], [owner_token, owner_key, bar.ready, *view.outputs()],
              **QUIET)
    bar.new.click(h.new_chat, owner_token, view.outputs(), **QUIET)
    view.chatbot.clear(h.new_chat, owner_token, view.outputs(), **QUIET)  # the chat stays in the list
    bar.session_list.input(h.switch, [owner_token, bar.session_list], view.outputs(), **QUIET)
    # .change, not .input: Gradio fires .input for Latin keystrokes only, not for IME (Korean), Backspace or paste
    bar.search.change(h.search, [owner_token, bar.search, view.session_id], bar.session_list,
                      trigger_mode="always_last", **QUIET)
    for trigger in (bar.rename.click, bar.title.submit):
        trigger(h.rename, [owner_token, view.session_id, bar.title], view.outputs(), **QUIET)
    bar.delete.click(h.ask_delete, [bar.title, view.session_id], [bar.confirm, bar.confirm_text], **QUIET)
    bar.delete_no.click(lambda: gr.Group(visible=False), None, bar.confirm, **QUIET)
    bar.delete_yes.click(h.delete, [owner_token, view.session_id], [bar.confirm, *view.outputs()], **QUIET)
