"""Gradio tabs, one module each (chat, image, voice, models, system), assembled by ui.layout.build_ui."""
from ui.layout import CSS, JS, build_ui, make_i18n

__all__ = ["CSS", "JS", "build_ui", "make_i18n"]
