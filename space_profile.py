"""Hugging Face Space profile: what changes when the Spaces runtime starts `python app.py`.

Chosen from the environment the runtime sets: SPACE_ID marks a Space, SPACES_ZERO_GPU marks ZeroGPU
hardware, else torch says whether a GPU is there. On a Space the app keeps sessions and adapters on
persistent storage when the Space has it (space.storage_dir, /data), says plainly when it has not,
needs a login (secret APP_USERS) and an API key (server.api_key_env, APP_API_KEY by default), and loads
a chat model that fits the hardware (space.cpu_model on CPU, space.gpu_model or engine.model on a GPU).
A missing secret does not stop the Space: app.py serves a locked page that names it (ui/locked.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Mapping

from engine.serving import zerogpu
from config import AppConfig

USERS_SECRET = "APP_USERS"


@dataclass(frozen=True)
class SpaceProfile:
    space_id: str
    hardware: str                 # zerogpu | gpu | cpu
    storage: Path | None          # persistent folder, or None: chats are lost when the Space restarts
    missing: tuple[str, ...]      # secrets to add in the Space settings before the app unlocks

    @property
    def locked(self) -> bool:
        return bool(self.missing)


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def writable_dir(path: str) -> Path | None:
    folder = Path(path)
    return folder if folder.is_dir() and os.access(folder, os.W_OK | os.X_OK) else None


def detect(cfg: AppConfig, env: Mapping[str, str] | None = None,
           cuda: Callable[[], bool] = _cuda) -> SpaceProfile | None:
    """The Space profile, or None when not on a Space (nothing changes then)."""
    env = os.environ if env is None else env
    space_id = (env.get("SPACE_ID") or "").strip()
    if not space_id:
        return None
    hardware = "zerogpu" if zerogpu.enabled(env) else ("gpu" if cuda() else "cpu")
    missing = tuple(name for name in (USERS_SECRET, cfg.server.api_key_env) if not (env.get(name) or "").strip())
    return SpaceProfile(space_id, hardware, writable_dir(cfg.space.storage_dir), missing)


def apply(cfg: AppConfig, profile: SpaceProfile | None) -> AppConfig:
    """The config as this Space runs it: storage, and a model that fits the hardware."""
    if profile is None:
        return cfg
    engine, sessions = cfg.engine, cfg.sessions
    if profile.hardware == "cpu":
        engine = replace(engine, model=cfg.space.cpu_model)
    elif cfg.space.gpu_model:
        engine = replace(engine, model=cfg.space.gpu_model)
    if profile.storage is not None:
        sessions = replace(sessions, path=str(profile.storage / "sessions"))
        engine = replace(engine, adapters_dir=str(profile.storage / "adapters"))
    return replace(cfg, engine=engine, sessions=sessions)


def describe(profile: SpaceProfile) -> str:
    """One log line: what the app made of this Space."""
    storage = f"sessions on {profile.storage}" if profile.storage else "no persistent storage: chats are lost on restart"
    locked = f"; locked until these secrets are set: {', '.join(profile.missing)}" if profile.missing else ""
    return f"Space {profile.space_id}: {profile.hardware} hardware, {storage}{locked}"


__all__ = ["SpaceProfile", "USERS_SECRET", "apply", "describe", "detect", "writable_dir"]
