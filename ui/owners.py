"""Who owns a chat: the login name when auth is on, else an anonymous key kept in the browser.

Owner ids are namespaced ("user:alice", "anon:<key>") so an anonymous key can never collide
with a login name. With auth on, only `request.username` (set by Gradio after login) is
trusted; a token sent by the client is ignored.
"""
from __future__ import annotations

import json
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from config import ConfigError
from ui.errors import Refusal

if TYPE_CHECKING:
    import gradio as gr

TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{16,200}")
SECRET_FILE = "browser-state.key"


def new_token() -> str:
    """A fresh anonymous owner key (128 random bits): unguessable, so it works as a bearer secret."""
    return secrets.token_hex(16)


def valid_token(token: object) -> bool:
    return isinstance(token, str) and bool(TOKEN_RE.fullmatch(token))


def parse_users_env(text: str) -> list[tuple[str, str]]:
    """APP_USERS="user:pw,user2:pw2" -> [(user, pw), ...]; a password may contain ':'."""
    users = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, password = item.partition(":")
        if not sep or not name.strip() or not password:
            raise ConfigError(f"APP_USERS: {name.strip() or item!r} needs the form user:password")
        users.append((name.strip(), password))
    return users


def read_users_file(path: str) -> list[tuple[str, str]]:
    """server.auth_file: a JSON object {"user": "password", ...}."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"server.auth_file: {path} not found") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"server.auth_file: cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and k.strip() and isinstance(v, str) and v for k, v in data.items()):
        raise ConfigError(f"server.auth_file: {path} must hold a JSON object of \"user\": \"password\" pairs")
    return [(k.strip(), v) for k, v in data.items()]


def load_users(auth_file: str, env: Mapping[str, str] = os.environ) -> list[tuple[str, str]] | None:
    """Users from server.auth_file and APP_USERS together; None when auth is off."""
    users = read_users_file(auth_file) if auth_file else []
    users += parse_users_env(env.get("APP_USERS", ""))
    return users or None


def browser_secret(root: str | Path) -> str:
    """The key BrowserState encrypts with, kept next to the sessions so a restart keeps browsers' ids."""
    folder = Path(root)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / SECRET_FILE
    try:
        text = path.read_text().strip()
        if len(text) >= 32:
            return text
    except FileNotFoundError:
        pass
    secret = secrets.token_urlsafe(32)
    tmp = folder / f".{SECRET_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)          # first writer wins; a racing process reads the winner's key
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_text().strip()


@dataclass(frozen=True)
class Owners:
    """Turns (request, client token) into the owner id the session store is called with."""

    auth: bool

    def resolve(self, request: gr.Request | None, token: object) -> str:
        if self.auth:
            username = getattr(request, "username", None)
            if not username:
                raise Refusal("login")
            return f"user:{username}"
        if token is None or token == "":
            raise Refusal("need_owner")
        if not valid_token(token):
            raise Refusal("bad_owner")
        return f"anon:{token}"

    def resolve_optional(self, request: gr.Request | None, token: object) -> str | None:
        """For the stateless `chat` endpoint: None when there is no owner to keep a session for."""
        if not self.auth and not token:
            return None
        return self.resolve(request, token)
