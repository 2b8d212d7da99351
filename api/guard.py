"""ASGI middleware in front of every route: the exposure rule (api/auth.py), then for /v1 the body limit (413),
and for Gradio's API calls the file fields.

A middleware rather than a route dependency so that an unauthenticated request is refused before its
body is read or parsed, and a body that grows past the limit is refused with 413 however it is sent:
with a Content-Length (checked before reading) or chunked (counted while it arrives, then handed on).

File fields (issue 22, defect 2): Gradio moves a file a call names ({"path": ..., "meta": {"_type":
"gradio.FileData"}}) into its cache before our handler runs, and refuses a path that was not uploaded with
a sentence naming that path ("Cannot move /the/app/folder to the gradio cache dir ..."), so a caller learnt
server paths. Here every file field of every call (/gradio_api/call, call/v2, run, api, queue/join, ...)
is checked first: one that does not name a file in Gradio's upload folder becomes null (a positional
argument keeps its place; in a list of files it is left out). Gradio then has no path to touch, and our
handler answers as for a missing file, in the caller's language (ui/endpoints.uploaded: "Add an image
first", "먼저 이미지를 넣으세요"). A request with no such field passes byte for byte.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import KeyPolicy
from api.errors import ApiError

PREFIX = "/v1"
GRADIO_API = "/gradio_api/"
FILE_DATA = "gradio.FileData"
_DROP = object()   # a refused file in a list of files: left out


def upload_folder() -> Path:
    """Where Gradio keeps what clients upload: gradio.utils.get_upload_folder() (api/ imports no gradio; the
    two are pinned equal by tests/test_gradio_file_fields.py)."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio").resolve()


def is_file_field(value: Any) -> bool:
    """A value Gradio takes for a file it must move (gradio_client.utils.is_file_obj_with_meta)."""
    return isinstance(value, dict) and isinstance(value.get("path"), str) and isinstance(value.get("meta"), dict) \
        and value["meta"].get("_type") == FILE_DATA


def is_upload(path: str, folder: Path) -> bool:
    """Whether `path` names a regular file inside `folder` once resolved (symlinks, "..", relative paths)."""
    if not path or "\x00" in path:
        return False
    try:
        resolved = Path(path).resolve()
        return resolved.is_relative_to(folder) and resolved.is_file()
    except (OSError, ValueError, RuntimeError):
        return False


def without_foreign_files(body: Any, folder: Path) -> tuple[Any, bool]:
    """`body` with every file field that names no upload replaced by null (left out of a list of files),
    and whether any was. The positional arguments ("data": [...]) keep their places."""
    changed = False

    def clean(value: Any, in_list: bool) -> Any:
        nonlocal changed
        if is_file_field(value):
            if is_upload(value["path"], folder):
                return value
            changed = True
            return _DROP if in_list else None
        if isinstance(value, dict):
            return {k: clean(v, False) for k, v in value.items()}
        if isinstance(value, list):
            return [v for v in (clean(item, True) for item in value) if v is not _DROP]
        return value

    if isinstance(body, dict):
        out = {k: [clean(v, False) for v in body[k]] if k == "data" and isinstance(body[k], list) else clean(body[k], False)
               for k in body}
    else:
        out = clean(body, False)
    return (out, True) if changed else (body, False)


def carries_gradio_files(scope: Scope) -> bool:
    """A Gradio API call whose JSON body may hold file fields (not the upload itself, which is multipart)."""
    path = scope.get("path", "")
    if scope["type"] != "http" or scope.get("method") != "POST" or GRADIO_API not in path \
            or path.rstrip("/").endswith(GRADIO_API + "upload"):
        return False
    content_type = Request(scope).headers.get("content-type", "")
    return not content_type.lower().startswith("multipart/")


def replaying(messages: list[Message], receive: Receive) -> Receive:
    """A receive that hands on the body already read, then waits for the disconnect as the server would."""
    pending = list(messages)

    async def replay() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replay


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit // 2**20} MB", code="request_too_large")


class ClientLeft(Exception):
    """The client disconnected while sending its body: nobody to answer."""


async def read_limited(receive: Receive, limit: int | None) -> list[Message]:
    """The body's messages, refused with BodyTooLarge as soon as more than `limit` bytes arrived (None: no limit)."""
    messages, received = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientLeft
        received += len(message.get("body", b""))
        if limit is not None and received > limit:
            raise BodyTooLarge(limit)
        messages.append(message)
        if not message.get("more_body", False):
            return messages


class ApiGuard:
    def __init__(self, app: ASGIApp, policy: KeyPolicy, max_body: int):
        self.app, self.policy, self.max_body = app, policy, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        if not (path == PREFIX or path.startswith(PREFIX + "/")):
            try:
                self.policy.check_gradio(Request(scope))
            except ApiError as exc:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                await exc.response()(scope, receive, send)
                return
            if carries_gradio_files(scope):
                await self.gradio_call(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            self.policy.check(Request(scope))
            length = Request(scope).headers.get("content-length")
            if length is not None and int(length) > self.max_body:
                raise BodyTooLarge(self.max_body)
            body = await read_limited(receive, self.max_body)
        except ValueError:
            await ApiError(400, "the Content-Length header is not a number").response()(scope, receive, send)
            return
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        except ClientLeft:
            return

        await self.app(scope, replaying(body, receive), send)

    async def gradio_call(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Hand on a Gradio call with its file fields checked (see the module's docstring)."""
        try:
            messages = await read_limited(receive, None)
        except ClientLeft:
            return
        raw = b"".join(m.get("body", b"") for m in messages)
        # Most calls (every page event) name no file and are not parsed here; a body with a \u escape is, since
        # "gradio\u002eFileData" reads as the marker once decoded.
        if FILE_DATA.encode() not in raw and b"\\u" not in raw:
            await self.app(scope, replaying(messages, receive), send)
            return
        try:
            body, changed = without_foreign_files(json.loads(raw), upload_folder())
        except ValueError:   # not JSON: Gradio refuses it itself, and there is no file field to move
            body, changed = None, False
        except RecursionError:   # nested deeper than anyone could check: refused, not handed on unchecked
            await ApiError(400, "the request body is nested too deeply").response()(scope, receive, send)
            return
        if changed:
            raw = json.dumps(body).encode()
            headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
            scope = dict(scope, headers=headers + [(b"content-length", str(len(raw)).encode())])
        await self.app(scope, replaying([{"type": "http.request", "body": raw, "more_body": False}], receive), send)
