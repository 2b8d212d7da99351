"""One rule for exposure: beyond loopback, every route that generates, reads or writes needs a login or the key.

Reachable beyond loopback means: listening on a non-loopback address, a Gradio share link, or a
Hugging Face Space (env SPACE_ID). Then a key from the environment variable named by
server.api_key_env is required, and the app refuses to start without one. /v1 always takes the key.
The Gradio routes (API, queue, uploads, files) take a login when one is configured (Gradio checks it),
else the same key (`Authorization: Bearer <key>`, e.g. gradio_client's `headers=`). Only a loopback
client of a server on a LAN address passes without one: behind a share link or a Space every request
comes from a local tunnel or proxy, so the client address proves nothing there. On loopback no key is
needed unless one is set (then /v1 requires it).
"""
from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass
from typing import Mapping

from fastapi import Request

from api.errors import ApiError
from config import AppConfig, ConfigError

LOOPBACK_NAMES = ("localhost", "ip6-localhost")
# Gradio paths that only serve the page shell and static files: no model, no file, no user data.
SHELL_PATHS = frozenset({"/", "/health", "/favicon.ico", "/robots.txt", "/manifest.json", "/theme.css",
                         "/config", "/config/", "/gradio_api/theme.css", "/gradio_api/info", "/gradio_api/info/",
                         "/gradio_api/startup-events", "/gradio_api/login_check", "/gradio_api/app_id",
                         "/gradio_api/user", "/login_check", "/app_id", "/user"})
SHELL_PREFIXES = ("/assets/", "/static/", "/svelte/", "/pwa_icon", "/gradio_api/heartbeat/")


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
    login: bool = False       # Gradio's login guards the Gradio routes
    trust_local: bool = True  # a loopback client is really this machine (not a share tunnel or a Space proxy)
    open_ui: bool = False     # server.allow_public_share: the operator let anyone with the share link use the UI

    @property
    def settings_locked(self) -> bool:
        """Settings and training change this machine: beyond loopback they need a login."""
        return self.public and not self.login

    def guards_gradio(self, path: str) -> bool:
        """Whether this Gradio path needs the key: public, no login, and not the page shell."""
        if not self.public or self.login or self.open_ui:
            return False
        return not (path in SHELL_PATHS or path.startswith(SHELL_PREFIXES))

    def _local(self, request: Request) -> bool:
        return self.trust_local and request.client is not None and is_loopback(request.client.host)

    def check_gradio(self, request: Request) -> None:
        """Raise ApiError(401) for a Gradio data route when the key is needed and not sent."""
        if self.guards_gradio(request.url.path) and not self._local(request):
            self._check_key(request, why=f"this server is reachable beyond this machine ({self.why}) without "
                                         "a login: send 'Authorization: Bearer <key>' (gradio_client: headers=)")

    def check(self, request: Request) -> None:
        """Raise ApiError(401) unless the /v1 request may pass."""
        if self.key is None:
            if request.client is None or is_loopback(request.client.host):
                return
            raise ApiError(401, f"this server has no API key, so its API answers only this machine; set "
                                f"{self.env_name} on the server to use it from elsewhere", code="invalid_api_key")
        self._check_key(request)

    def _check_key(self, request: Request, why: str = "") -> None:
        if self.key is None:  # public without a key cannot start; refuse rather than let through
            raise ApiError(401, f"set {self.env_name} on the server", code="invalid_api_key")
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise ApiError(401, f"missing API key: {why}" if why else
                           "missing API key: send 'Authorization: Bearer <key>'", code="invalid_api_key",
                           headers={"WWW-Authenticate": "Bearer"})
        if not hmac.compare_digest(given.strip().encode(), self.key.encode()):
            raise ApiError(401, "incorrect API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})


def key_policy(cfg: AppConfig, host: str | None = None, environ: Mapping[str, str] | None = None, *,
               login: bool = False) -> KeyPolicy:
    """Decide from config, the listening host, the environment and whether a login is configured;
    raise ApiKeyRequired (one line) if public and keyless."""
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
    share = bool(cfg.server.share)
    return KeyPolicy(key=key, public=bool(reasons), why=", ".join(reasons), env_name=name, login=login,
                     trust_local=not (share or env.get("SPACE_ID")),
                     open_ui=share and bool(getattr(cfg.server, "allow_public_share", False)))
