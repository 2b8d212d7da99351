"""ASGI middleware in front of /v1/*: the API key first, then the body size limit (413).

A middleware rather than a route dependency so that an unauthenticated request is refused before its
body is read or parsed, and a body that grows past the limit is cut off while it streams in.
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


class ApiGuard:
    def __init__(self, app: ASGIApp, policy: KeyPolicy, max_body: int):
        self.app, self.policy, self.max_body = app, policy, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == PREFIX or path.startswith(PREFIX + "/")):
            await self.app(scope, receive, send)
            return
        try:
            self.policy.check(Request(scope))
            length = Request(scope).headers.get("content-length")
            if length is not None and int(length) > self.max_body:
                raise BodyTooLarge(self.max_body)
        except ValueError:
            await ApiError(400, "the Content-Length header is not a number").response()(scope, receive, send)
            return
        except ApiError as exc:
            await exc.response()(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)  # answered by the ApiError handler
            return message

        await self.app(scope, limited_receive, send)
