"""The page: model banner on top, then the tabs (Chat, Image, Voice, Models, [Tuning], System)."""
from __future__ import annotations

import html
import importlib
from pathlib import Path
from typing import Any

import gradio as gr

from ui import chat, endpoints, image, models, sessions_panel, system, voice
from ui.arity import Blocks
from ui.conversation import Conversation
from ui.errors import plain_detail
from ui.i18n import lang_of, make_i18n, say, t
from ui.owners import Owners
from ui.page import Shared
from ui.icons import font_css
from ui.services import Services

PRIVATE = {"api_visibility": "private"}

ASSETS = Path(__file__).resolve().parent / "assets"
CSS = (ASSETS / "page.css").read_text(encoding="utf-8") + font_css()     # icons drawn on any machine
JS = (ASSETS / "page.js").read_text(encoding="utf-8")      # runs once when the page loads


def banner_html(report: Any, lang: str) -> str:
    """One line about the loaded model in the user's language (demo noise, offline model), the engine's
    reason folded under "why", and a close button (ui/assets/page.js): it must not fill a phone screen."""
    head = (f"<b>{html.escape(say(lang, 'banner_model'))}:</b> <code>{html.escape(str(report.model_id))}</code> · "
            f"{html.escape(str(report.rung))} · {html.escape(str(report.device))}")
    if report.demo:
        head += " " + html.escape(say(lang, "banner_random" if getattr(report, "random_weights", True)
                                      else "banner_offline"))
    why = (f"<details><summary>{html.escape(say(lang, 'banner_more'))}</summary>"
           f"<p>{html.escape(plain_detail(report.notice))}</p></details>") if report.notice else ""
    close = f'<button class="banner-close" type="button" aria-label="{html.escape(say(lang, "banner_close"))}">×</button>'
    return f'<div class="banner-line"><span>{head}</span>{close}</div>{why}'


def _tuning_builder() -> Any:
    """ui/tuning.py is optional (added with the tuning work); its `build_tab(shared, page)` fills the Tuning tab."""
    try:
        module = importlib.import_module("ui.tuning")
    except ModuleNotFoundError as exc:
        if exc.name != "ui.tuning":
            raise
        return None
    return module.build_tab


def build_ui(services: Services, owners: Owners, secret: str, notices: tuple[str, ...] = ()) -> gr.Blocks:
    """All tabs over one Services object. The caller queues it and mounts it (with make_i18n() and CSS).
    `notices`: ui/i18n keys shown under the model banner (e.g. a Space without persistent storage)."""
    shared = Shared(services, owners, Conversation(services), secret)
    tuning = _tuning_builder()
    with Blocks(title="Local Mistral Chat") as blocks:
        endpoints.register(shared)  # first, so the public names (chat, transcribe, ...) are theirs
        banner = gr.HTML(banner_html(services.engine.report, "en"), elem_id="model-banner", padding=False)
        def localized_banner(request: gr.Request) -> str:   # the model serving now (a switch replaces it)
            return banner_html(services.engine.report, lang_of(request))

        blocks.load(localized_banner, None, banner, queue=False, show_progress="hidden", **PRIVATE)
        for key in notices:
            gr.Markdown(t(key), elem_classes=["notice-banner"])
        owner_token = gr.BrowserState("", storage_key="localchat.owner", secret=secret)
        tabs = []
        with gr.Tabs():
            with gr.Tab(t("tab.chat"), id="chat", elem_id="tab-chat") as chat_tab:
                # Phones only (ui/assets/page.css): the chat list opens as a drawer from this button.
                gr.Button(t("chat.drawer"), elem_id="drawer-toggle", size="sm", variant="secondary")
                gr.HTML("", elem_id="drawer-backdrop", padding=False)
                with gr.Row():
                    with gr.Column(scale=1, min_width=240, elem_id="chat-drawer"):
                        bar = sessions_panel.build(show_owner_key=not owners.auth)
                    with gr.Column(scale=3):
                        view, controls = chat.build(shared, bar)
            tabs.append(chat_tab)
            with gr.Tab(t("tab.image"), id="image", elem_id="tab-image") as image_tab:
                image_notice = gr.HTML("", elem_id="image-random-notice", elem_classes=["tab-notice"], visible=False,
                                       padding=False)
                image.build_and_wire(shared, view, owner_token)
            tabs.append(image_tab)
            with gr.Tab(t("tab.voice"), id="voice", elem_id="tab-voice") as voice_tab:
                voice_notice = gr.HTML("", elem_id="voice-random-notice", elem_classes=["tab-notice"], visible=False,
                                       padding=False)
                voice.build_and_wire(shared)
            tabs.append(voice_tab)
            with gr.Tab(t("tab.models"), id="models", elem_id="tab-models") as models_tab:
                model_outputs, overview = models.build_and_wire(shared, banner=(banner, localized_banner))
            tabs.append(models_tab)
            if tuning is not None:
                with gr.Tab(t("tab.tuning"), id="tuning", elem_id="tab-tuning") as tuning_tab:
                    tuning(shared, blocks)
                tabs.append(tuning_tab)
            with gr.Tab(t("tab.system"), id="system", elem_id="tab-system") as system_tab:
                timer, panel, refresh = system.build_and_wire(shared)
        # Image and Voice say on the tab when their model is a demo of random weights (known at start with
        # --demo, after its first load when it fell back); read again when the tab is opened.
        def tab_notices(request: gr.Request) -> tuple:
            lang = lang_of(request)
            return tuple(gr.HTML(html.escape(say(lang, f"tab_random_{tab}")), visible=services.random_media(tab))
                         for tab in ("image", "voice"))

        blocks.load(tab_notices, None, [image_notice, voice_notice], queue=False, show_progress="hidden", **PRIVATE)
        for tab in (image_tab, voice_tab):
            tab.select(tab_notices, None, [image_notice, voice_notice], queue=False, show_progress="hidden",
                       **PRIVATE)
        sessions_panel.wire(shared, bar, view, owner_token, blocks)
        chat.wire(shared, view, controls, owner_token)
        models_tab.select(overview, None, model_outputs, **PRIVATE)
        # The System panel polls only while it is shown.
        def show_system(request: gr.Request) -> tuple:
            return gr.Timer(active=True), refresh(request)

        system_tab.select(show_system, None, [timer, panel], queue=False, **PRIVATE)
        for tab in tabs:
            if tab is not system_tab:
                tab.select(lambda: gr.Timer(active=False), None, timer, queue=False, **PRIVATE)
    return blocks


__all__ = ["CSS", "JS", "banner_html", "build_ui", "make_i18n"]
