"""GET /health: is it up, which model at which rung, demo or not, how busy, and the machine's GPU/RAM."""
from __future__ import annotations

from fastapi import APIRouter

from api.state import ApiState
from engine.media.speech import speech_plan, speech_status
from engine.monitor import read_system


def health_body(state: ApiState) -> dict:
    report, engine = state.engine.report, state.engine
    load = engine.load_stats()
    body = {
        "status": "ok",
        "model": report.model_id,
        "alias": state.names.alias,
        "rung": report.rung,
        "device": report.device,
        "backend": state.cfg.engine.backend,
        "demo": report.demo,
        "random_weights": getattr(report, "random_weights", False),
        "prompt_path": getattr(report, "prompt_path", ""),   # mistral | chat_template (engine/prompting/codec.py)
        "notice": report.notice,
        "switching": state.chat.models.switching,   # the model a switch is loading now (engine/switching.py), or null
        "serving": load.path,
        "plain_path": dict(load.plain_path),     # what a request may ask that is served one at a time, and why
        "concurrency": engine.concurrency.to_dict(),   # engine.max_concurrent as resolved ("auto": from memory)
        "active_requests": load.active,
        "queue_depth": load.waiting,
        "queue": load.to_dict(),
        "api": {"key_required": state.policy.key is not None, "public": state.policy.public,
                "requests": state.counters.snapshot()},
        "system": read_system().to_dict(),
    }
    if state.manager is not None:
        body["models"] = state.manager.state()
        # which speech models answer and whether their weights are real (the loaded report, else the plan)
        body["speech"] = speech_status(speech_plan(state.cfg.engine, demo=bool(report.demo)), body["models"])
    return body


def router(state: ApiState) -> APIRouter:
    r = APIRouter()

    @r.get("/health")
    def health() -> dict:
        return health_body(state)

    return r
