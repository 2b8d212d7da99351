"""OpenAI-style error objects: {"error": {"message", "type", "param", "code"}} with the right HTTP status.

Every failure the API answers, FastAPI's own validation errors and unknown /v1 routes included, goes
through here, so clients (the `openai` package among them) always get the shape they parse.
"""
from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import EngineError

TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
         404: "not_found_error", 405: "invalid_request_error", 413: "invalid_request_error",
         415: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 501: "server_error",
         502: "server_error", 503: "server_error"}


class ApiError(Exception):
    """Raise anywhere in a route; answered as an OpenAI error object."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 type: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.type = type or TYPES.get(status, "invalid_request_error")
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad_request(message: str, param: str | None = None, code: str | None = None) -> ApiError:
    return ApiError(400, message, param=param, code=code)


def busy(message: str, retry_after: int = 2) -> ApiError:
    return ApiError(503, message, code="server_busy", headers={"Retry-After": str(retry_after)})


def unavailable(what: str, why: str = "") -> ApiError:
    return ApiError(503, f"{what} is not available on this server" + (f": {why}" if why else ""),
                    code="model_not_available", headers={"Retry-After": "30"})


def from_engine(exc: EngineError) -> ApiError:
    """The one mapping of an engine error to OpenAI's error object: its status, code, param and Retry-After."""
    message = str(exc)
    what = getattr(exc, "what", "")
    if exc.code == "model_not_available":
        message = f"{what or 'the model'} is not available on this server: {message.strip(chr(39) + chr(34))}"
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else {}
    return ApiError(exc.status, message, param=exc.param, code=exc.code, headers=headers)


BRANCH_TAGS = ("str", "int", "float", "bool", "list", "dict", "none")


def _is_branch(part: Any) -> bool:
    """pydantic names the branch of a union or validator it tried (`str`, `function-after[...]`): not a field."""
    return isinstance(part, str) and ("[" in part or part in BRANCH_TAGS)


def _location(loc: Any) -> str | None:
    parts, tag_next = [], False
    for p in loc:
        if p in ("body", "query", "path", "header"):
            continue
        if isinstance(p, str) and "tagged-union[" in p:
            tag_next = True          # the discriminator's value ("text", "image_url") comes next, after any index
            continue
        if _is_branch(p):
            continue
        if tag_next and isinstance(p, str):
            tag_next = False
            continue
        parts.append(str(p))
    return ".".join(parts) or None


def _best(errors: list[dict]) -> dict:
    """The error that says most: a failed check on a value (a lone surrogate, a bound) before a type
    mismatch of another branch of the same union (`content` is text, not a list)."""
    return min(errors, key=lambda e: e.get("type", "").endswith("_type"))  # min keeps the first of equals


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """One sentence for the first problem, naming the field as OpenAI does (`messages.0.role`)."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid", None
    first = _best(errors)
    param = _location(first.get("loc", ()))
    type_error = first.get("type", "").endswith("_type")
    others = {_location(e.get("loc", ())) for e in errors
              if type_error or not e.get("type", "").endswith("_type")} - {param}
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')})", None
    if first.get("type") == "missing" and param is None:
        return "the request needs a JSON body", None
    msg = first.get("msg", "invalid value").removeprefix("Value error, ")
    more = f" (and {len(others)} more problem(s))" if others else ""
    return (f"{param}: {msg}" if param else msg) + more, param


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(EngineError)
    async def _engine_error(request: Request, exc: EngineError) -> JSONResponse:
        return from_engine(exc).response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc)
        return JSONResponse(error_body(message, "invalid_request_error", param, None), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        return JSONResponse(error_body(str(exc.detail), TYPES.get(exc.status_code, "invalid_request_error"),
                                       None, code), status_code=exc.status_code, headers=exc.headers)
