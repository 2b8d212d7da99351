"""GET /v1/models, and which names a request may give as `model`."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from api.errors import ApiError

ALIAS = "local-chat"


@dataclass(frozen=True)
class ModelNames:
    """The loaded model's id, and an alias that stays the same whichever model is loaded."""
    model_id: str
    alias: str = ALIAS
    created: int = 0

    @property
    def accepted(self) -> list[str]:
        return list(dict.fromkeys([self.model_id, self.alias]))

    def resolve(self, name: str) -> str:
        if name in self.accepted:
            return self.model_id
        raise ApiError(404, f"the model {name!r} does not exist here; use " + " or ".join(map(repr, self.accepted)),
                       param="model", code="model_not_found")

    def listing(self) -> dict:
        return {"object": "list", "data": [
            {"id": name, "object": "model", "created": self.created, "owned_by": "local"} for name in self.accepted]}


def names_for(model_id: str) -> ModelNames:
    return ModelNames(model_id=model_id, created=int(time.time()))


def router(state: Any) -> APIRouter:
    r = APIRouter()
    names: ModelNames = state.names

    @r.get("/v1/models")
    async def list_models() -> dict:
        return names.listing()

    @r.get("/v1/models/{model:path}")
    async def get_model(model: str) -> dict:
        names.resolve(model)
        return {"id": model, "object": "model", "created": names.created, "owned_by": "local"}

    return r
