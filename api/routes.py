"""The FastAPI app that the Gradio UI is mounted into."""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from engine.monitor import read_system


def build_api(cfg: Any, engine: Any) -> FastAPI:
    app = FastAPI(title="Local chat API", docs_url=None, redoc_url=None)

    @app.get("/health")
    def health() -> dict:
        report = engine.report
        return {"status": "ok", "model": report.model_id, "rung": report.rung, "device": report.device,
                "demo": report.demo, "notice": report.notice, "system": read_system().to_dict()}

    return app
