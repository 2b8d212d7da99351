"""‹ n/m › under a message: switch between the versions Retry and Edit keep (sessions/versions.py says how
they are stored). The buttons are drawn inside the Chatbot's messages (ui/chat_format.version_nav);
ui/assets/versions.js turns a click into this module's event."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from ui.errors import Refusal, shown_to_user
from ui.gradio_bridge import event_data
from ui.i18n import lang_of
from ui.page import ChatView, Shared, chat_display

VERSIONS_JS = (Path(__file__).resolve().parent / "assets" / "versions.js").read_text(encoding="utf-8")
QUIET = {"show_progress": "hidden", "api_visibility": "private"}


def build() -> gr.HTML:
    """The hidden element whose js_on_load listens for ‹ and › clicks in the Chatbot."""
    return gr.HTML("", js_on_load=VERSIONS_JS, elem_id="version-nav", visible="hidden", padding=False)


class VersionHandlers:
    def __init__(self, shared: Shared):
        self.shared = shared

    def switch(self, token: Any, session_id: Any, evt: gr.EventData, request: gr.Request) -> tuple:
        """Show the version clicked; the chat now continues from it (the next prompt is that branch)."""
        data = event_data(evt)
        at, to, head = data.get("at"), data.get("to"), data.get("id")
        lang = lang_of(request)
        with shown_to_user(lang):
            if self.shared.convo.cancels.running(request.session_hash or ""):
                raise Refusal("switch_running")     # the reply being written belongs to the branch shown
            if not session_id or not all(isinstance(v, int) and not isinstance(v, bool) for v in (at, to)):
                return gr.skip(), gr.skip()
            owner = self.shared.owner(request, token)
            session = self.shared.convo.show_version(owner, session_id, at, to, head if isinstance(head, str) else None)
            return chat_display(self.shared, owner, session, lang), session["version"]


def wire(shared: Shared, view: ChatView, nav: gr.HTML, owner_token: gr.BrowserState) -> None:
    h = VersionHandlers(shared)
    nav.click(h.switch, [owner_token, view.session_id], [view.chatbot, view.version], **QUIET)
