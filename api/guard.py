"""ASGI middleware in front of every route: the exposure rule (api/auth.py), then for /v1 the body limit (413).

A middleware rather than a route dependency so that an unauthenticated request is refused before its
body is read or parsed, and a body that grows past the limit is refused with 413 however it is sent:
with a Content-Length (checked before reading) or chunked (counted while it arrives, then handed on).
"""
from __future__ import annotations

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import KeyPolicy
from api.errors import ApiError

PREFIX = "/v1"


class BodyTooLarge(ApiError):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit // 2**20} MB", code="request_too_large")


class ClientLeft(Exception):
    """The client disconnected while sending its body: nobody to answer."""


async def read_limited(receive: Receive, limit: int) -> list[Message]:
    """The body's messages, refused with BodyTooLarge as soon as more than `limit` bytes arrived."""
    messages, received = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientLeft
        received += len(message.get("body", b""))
        if received > limit:
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

        async def replay() -> Message:
            if body:
                return body.pop(0)
            return await receive()  # after the body: wait for the disconnect, as the server would

        await self.app(scope, replay, send)
