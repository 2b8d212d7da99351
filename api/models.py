"""GET /v1/models, and which names a request may give as `model`: the base model, its alias, or an adapter.

Adapters are models the vLLM way: every LoRA adapter trained on the loaded base is listed with
`id` = its name and `parent` = the base model's id, and a request picks it with `model`. An adapter
made for another base is refused (400) naming both bases. No reply carries a server path.
"""
from __future__ import annotations

import time
from datetime import datetime
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter

from api.errors import ApiError, bad_request
from api.responses import LocalModel, adapter_model, base_model, model_list, wire

ALIAS = "local-chat"


@dataclass(frozen=True)
class Resolved:
    """What a request's `model` names: the base model id, and the adapter to apply (None: the base)."""
    model_id: str
    adapter: str | None = None

    @property
    def shown(self) -> str:
        """The `model` field of the answer: the adapter's name when one is used, as vLLM does."""
        return self.adapter or self.model_id


@dataclass(frozen=True)
class ModelNames:
    """The loaded model's id, an alias that stays the same whichever model is loaded, and its adapters."""
    model_id: str
    alias: str = ALIAS
    created: int = 0
    adapters: Any = None       # engine.adapters.AdapterRegistry, or None (remote backend)
    prompt_path: str = ""      # how prompts are built: mistral | chat_template ("" for a remote backend)

    @property
    def accepted(self) -> list[str]:
        return list(dict.fromkeys([self.model_id, self.alias]))

    def adapter_entries(self) -> list[LocalModel]:
        """Every adapter that fits the loaded base, read now (a run that just finished is listed at once)."""
        if self.adapters is None:
            return []
        return [adapter_model(a.name, _created(a.meta, self.created), parent=self.model_id)
                for a in self.adapters.available() if a.compatible and a.name not in self.accepted]

    def resolve(self, name: str) -> Resolved:
        if name in self.accepted:
            return Resolved(self.model_id)
        if self.adapters is not None:
            adapter = self._adapter(name)
            if adapter is not None:
                return adapter
        names = self.accepted + [a.id for a in self.adapter_entries()]
        raise ApiError(404, f"the model {name!r} does not exist here; use " + " or ".join(map(repr, names)),
                       param="model", code="model_not_found")

    def _adapter(self, name: str) -> Resolved | None:
        from engine.adapters import read_adapter
        from engine.errors import AdapterError, AdapterMismatch

        try:
            info = read_adapter(self.adapters.adapters_dir, name)
        except AdapterError:
            return None
        try:
            self.adapters.check(name)
        except AdapterMismatch:
            raise bad_request(f"the adapter {name!r} was made for the base model {info.base_model_id}, but this "
                              f"server's base model is {self.model_id}: load that base, or train the adapter "
                              "again on this one", "model", "adapter_base_mismatch") from None
        except AdapterError as exc:
            raise bad_request(f"the adapter {name!r} cannot be used: {type(exc).__name__}", "model",
                              "adapter_unusable") from None
        return Resolved(self.model_id, info.name)

    def base_entries(self) -> list[LocalModel]:
        return [self._base_entry(name) for name in self.accepted]

    def _base_entry(self, name: str) -> LocalModel:
        return base_model(name, self.created, self.prompt_path)

    def listing(self) -> dict:
        """GET /v1/models's body."""
        return wire(model_list(self.base_entries() + self.adapter_entries()))

    def entry(self, name: str) -> dict:
        """GET /v1/models/{name}'s body."""
        resolved = self.resolve(name)
        if resolved.adapter is None:
            return wire(self._base_entry(name))
        return wire(next(e for e in self.adapter_entries() if e.id == resolved.adapter))


def _created(meta: dict, default: int) -> int:
    """meta.json's `created` (ISO 8601, written by tuning/train.py) as Unix seconds."""
    try:
        return int(datetime.fromisoformat(str(meta.get("created"))).timestamp())
    except ValueError:
        return default


def names_for(model_id: str, adapters: Any = None, prompt_path: str = "", created: int | None = None) -> ModelNames:
    """`created`: when that model was loaded (Unix seconds; default now)."""
    return ModelNames(model_id=model_id, created=int(time.time()) if created is None else created,
                      adapters=adapters, prompt_path=prompt_path)


def router(state: Any) -> APIRouter:
    """`state.names` is read per request: after a model switch the list names the model serving now."""
    r = APIRouter()

    @r.get("/v1/models")
    async def list_models() -> dict:
        return state.names.listing()

    @r.get("/v1/models/{model:path}")
    async def get_model(model: str) -> dict:
        return state.names.entry(model)

    return r
