"""The FastAPI app that the Gradio UI is mounted into: OpenAI-compatible /v1 routes and /health.

build_api(cfg, engine, host=..., manager=..., policy=...) raises api.auth.ApiKeyRequired (a ConfigError,
one line) when the server would be reachable beyond loopback without an API key. Its middleware
(api/guard.py) guards the Gradio app mounted into it too: the exposure rule is one rule for every route.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

from fastapi import APIRouter, FastAPI

from api import audio, chat, completions, health, models
from api.assets import StaticAsset, router as asset_router
from api.auth import KeyPolicy, key_policy
from api.errors import ApiError, install_error_handlers
from api.guard import ApiGuard
from api.state import ApiState
from config import AppConfig
from engine.requests import ChatService

if TYPE_CHECKING:
    from engine.chat import ChatEngine
    from engine.manager import ModelManager


KNOWN = {"/v1/models": "GET", "/v1/chat/completions": "POST", "/v1/completions": "POST",
         "/v1/audio/transcriptions": "POST", "/v1/audio/speech": "POST"}


def _unknown_routes() -> APIRouter:
    """Unknown /v1 paths answer as OpenAI does, instead of falling through to the Gradio app."""
    r = APIRouter()

    @r.api_route("/v1/{rest:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
    def unknown(rest: str) -> None:
        if f"/v1/{rest}" in KNOWN:
            raise ApiError(405, f"/v1/{rest} takes {KNOWN[f'/v1/{rest}']}", code="method_not_allowed")
        raise ApiError(404, f"unknown API route /v1/{rest}; this server has /v1/models, /v1/chat/completions, "
                            "/v1/completions, /v1/audio/transcriptions and /v1/audio/speech", code="unknown_url")

    return r


def build_api(cfg: AppConfig, engine: ChatEngine, *, host: str | None = None, manager: ModelManager | None = None,
              policy: KeyPolicy | None = None, door: ChatService | None = None,
              assets: Sequence[StaticAsset] = ()) -> FastAPI:
    """`host`: the address the server listens on (default GRADIO_SERVER_NAME, else server.host).
    `manager`: the ModelManager holding the vision and speech models (None: those routes answer 503).
    `policy`: the exposure rule (default: key_policy(cfg, host), no login).
    `door`: the door into chat the page uses too (default: one built from cfg over `engine`).
    `assets`: files the page loads (the icon font), served with a long cache header (api/assets.py)."""
    policy = policy or key_policy(cfg, host)
    state = ApiState(cfg=cfg, engine=engine, policy=policy, manager=manager, chat=door)
    app = FastAPI(title="Local chat API", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.api = state
    install_error_handlers(app)
    app.add_middleware(ApiGuard, policy=policy, max_body=state.max_body_bytes)
    for module in (health, models, chat, completions, audio):
        app.include_router(module.router(state))
    app.include_router(asset_router(assets))
    app.include_router(_unknown_routes())
    return app
