"""The page a Space shows while a secret is missing: it names the secret instead of crashing the Space.

Nothing else is served: no model is loaded, no chat or API endpoint exists, only this page and /health
(which answers 503 with the same names, so the Space's logs and a client both see what to fix).
"""
from __future__ import annotations

from typing import Sequence

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from ui.i18n import make_i18n, t


def build_locked_app(missing: Sequence[str], space_id: str) -> FastAPI:
    """A FastAPI app with the locked Gradio page at / and /health saying which secrets are missing."""
    api = FastAPI(title="Local Mistral Chat (locked)")

    @api.get("/health")
    def health() -> JSONResponse:
        return JSONResponse({"status": "locked", "space": space_id, "missing_secrets": list(missing)},
                            status_code=503)

    with gr.Blocks(title="Local Mistral Chat · locked") as blocks:
        gr.Markdown(t("locked.title"))
        gr.Markdown(t("locked.intro"))
        gr.Markdown("\n".join(f"- `{name}`" for name in missing), elem_id="missing-secrets")
        gr.Markdown(t("locked.help"), elem_classes=["small-note"])
    return gr.mount_gradio_app(api, blocks, path="/", i18n=make_i18n(), footer_links=[])


__all__ = ["build_locked_app"]
