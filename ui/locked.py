"""The page a Space shows while a secret is missing: it names the secret instead of crashing the Space.

Nothing else is served: app.py mounts this page next to a /health that answers 503 with the same names
(so the Space's logs and a client both see what to fix); no model is loaded, no chat or API endpoint exists.
"""
from __future__ import annotations

from typing import Sequence

import gradio as gr

from ui.i18n import make_i18n, t


def build_locked_page(missing: Sequence[str]) -> gr.Blocks:
    """The locked Gradio page naming the missing secrets."""
    with gr.Blocks(title="Local Mistral Chat · locked") as blocks:
        gr.Markdown(t("locked.title"))
        gr.Markdown(t("locked.intro"))
        gr.Markdown("\n".join(f"- `{name}`" for name in missing), elem_id="missing-secrets")
        gr.Markdown(t("locked.help"), elem_classes=["small-note"])
    return blocks


def locked_mount_options() -> dict:
    """Options for gr.mount_gradio_app: the page's translations and no footer links."""
    return {"i18n": make_i18n(), "footer_links": []}


__all__ = ["build_locked_page", "locked_mount_options"]
