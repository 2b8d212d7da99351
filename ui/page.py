"""What the tabs share: the services, the owner policy, and the chat view every session action redraws."""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import gradio as gr

from ui.conversation import Conversation
from ui.chat_format import SETTING_KEYS, display_messages
from ui.chat_list import render, rows_from_summaries
from ui.i18n import lang_of, say
from ui.owners import Owners
from ui.services import Services


@dataclass
class Shared:
    services: Services
    owners: Owners
    convo: Conversation
    secret: str                 # BrowserState key, stable across restarts (ui.owners.browser_secret)

    def owner(self, request: gr.Request, token: Any) -> str:
        return self.owners.resolve(request, token)


@dataclass
class ChatView:
    """Components redrawn whenever the current chat changes (open, new, switch, delete, send)."""

    chatbot: gr.Chatbot
    session_id: gr.BrowserState
    version: gr.State
    session_list: gr.HTML
    search: gr.Textbox
    settings: dict[str, Any]        # SETTING_KEYS -> the component showing that setting of the chat

    def outputs(self) -> list[Any]:
        return [self.chatbot, self.session_id, self.version, self.session_list, self.search, *self.settings_inputs()]

    def settings_inputs(self) -> list[Any]:
        return [self.settings[k] for k in SETTING_KEYS]


def settings_dict(*values: Any) -> dict:
    """The settings components' values (in SETTING_KEYS order) as a chat's settings."""
    settings = dict(zip(SETTING_KEYS, values))
    settings["system_prompt"] = settings.get("system_prompt") or ""
    return settings


def chat_display(shared: Shared, owner: str, session: dict | None, lang: str) -> list[dict]:
    if session is None:
        return []
    return display_messages(session["messages"], lambda ref: shared.services.view_path(owner, ref),
                            partial(say, lang))


def list_html(shared: Shared, owner: str, current: str, lang: str) -> str:
    """The owner's chats, newest first, as the sidebar's rows (ui/chat_list.py)."""
    return render(rows_from_summaries(shared.services.store.list(owner, limit=200)), current, lang)


def view_values(shared: Shared, owner: str, session: dict | None, request: gr.Request) -> tuple:
    """Values for ChatView.outputs(), in order."""
    lang = lang_of(request)
    settings = shared.convo.settings(session)
    sid = session["id"] if session else ""
    return (chat_display(shared, owner, session, lang), sid, session["version"] if session else None,
            list_html(shared, owner, sid, lang), "", *[settings[k] for k in SETTING_KEYS])
