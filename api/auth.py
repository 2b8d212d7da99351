"""Bearer keys for /v1/*: required when the server is reachable beyond loopback, optional otherwise.

Reachable beyond loopback means: listening on a non-loopback address, a Gradio share link, or a
Hugging Face Space (env SPACE_ID). Then a key from the environment variable named by
server.api_key_env is required, and the app refuses to start without one. On loopback no key is
needed unless one is set (then it is required). A request that arrives from another machine anyway
(e.g. `--host 0.0.0.0` given on the command line) is refused when no key is set.
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from typing import Any, Mapping

from fastapi import Request

from api.errors import ApiError
from engine.config import ConfigError

LOOPBACK_NAMES = ("localhost", "ip6-localhost")


class ApiKeyRequired(ConfigError):
    """The server would be reachable beyond loopback without an API key."""


def is_loopback(host: str | None) -> bool:
    host = (host or "").strip().strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class KeyPolicy:
    key: str | None           # the key clients must send, or None
    public: bool              # reachable beyond loopback
    why: str                  # why it is public ("" when not)
    env_name: str

    def check(self, request: Request) -> None:
        """Raise ApiError(401) unless the request may pass."""
        if self.key is None:
            if request.client is None or is_loopback(request.client.host):
                return
            raise ApiError(401, f"this server has no API key, so its API answers only this machine; set "
                                f"{self.env_name} on the server to use it from elsewhere", code="invalid_api_key")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), self.key.encode()):
            raise ApiError(401, "incorrect API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def key_policy(cfg: Any, host: str | None = None, environ: Mapping[str, str] | None = None) -> KeyPolicy:
    """Decide from config, the listening host and the environment; raise ApiKeyRequired if public and keyless."""
    env = os.environ if environ is None else environ
    host = host or env.get("GRADIO_SERVER_NAME") or cfg.server.host
    reasons = []
    if not is_loopback(host):
        reasons.append(f"listening on {host}")
    if cfg.server.share:
        reasons.append("a share link is on")
    if env.get("SPACE_ID"):
        reasons.append(f"running on the Space {env['SPACE_ID']}")
    name = cfg.server.api_key_env
    key = (env.get(name) or "").strip() or None
    if reasons and key is None:
        raise ApiKeyRequired(f"server.api_key_env: the API would be reachable beyond this machine "
                             f"({', '.join(reasons)}) but {name} is not set: set {name} to a long random key "
                             f"(clients send 'Authorization: Bearer <key>'), or listen on 127.0.0.1")
    return KeyPolicy(key=key, public=bool(reasons), why=", ".join(reasons), env_name=name)
