"""Files the page loads that never change while the server runs (the icon font, ui/icons.py): one route each,
answered with a year-long immutable cache header, so a browser fetches each once instead of with every page.

Their URLs carry a hash of the content (the composition root builds them), so a rebuilt file gets a new URL
and no browser keeps an old copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from fastapi import APIRouter
from fastapi.responses import Response

CACHE_FOREVER = {"Cache-Control": "public, max-age=31536000, immutable"}


@dataclass(frozen=True)
class StaticAsset:
    url: str            # an absolute path on this server, holding the content's hash
    path: Path
    media_type: str


def router(assets: Sequence[StaticAsset]) -> APIRouter:
    """GET (and HEAD) for each asset; its bytes are read once, here, not per request."""
    r = APIRouter()
    for asset in assets:
        r.add_api_route(asset.url, _answer(asset.path.read_bytes(), asset.media_type), methods=["GET", "HEAD"],
                        include_in_schema=False)
    return r


def _answer(body: bytes, media_type: str) -> Callable[[], Response]:
    def serve() -> Response:
        return Response(body, media_type=media_type, headers=CACHE_FOREVER)
    return serve
