"""One table from error codes to HTTP statuses, and the handlers that render
`{"error": {"code", "message", "details"}}`. A 500 shows nothing internal."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..domain.errors import InstancerError

log = logging.getLogger(__name__)


class Unauthorized(InstancerError):
    code = "UNAUTHORIZED"


class Forbidden(InstancerError):
    code = "FORBIDDEN"


STATUS: dict[str, int] = {
    "MALFORMED_JSON": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CHALLENGE_NOT_FOUND": 404,
    "INSTANCE_NOT_FOUND": 404,
    "METHOD_NOT_ALLOWED": 405,
    "INSTANCE_LIMIT_REACHED": 409,
    "INSTANCE_NOT_RUNNING": 409,
    "EXTENSION_LIMIT_REACHED": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "VALIDATION_FAILED": 422,
    "COOLDOWN": 429,
    "EXTENSION_TOO_SOON": 429,
    "INTERNAL_ERROR": 500,
    "FLAG_KEY_UNAVAILABLE": 500,
    "INSTANCE_START_FAILED": 502,
    "ENGINE_REJECTED": 502,
    "CONTAINER_UNHEALTHY": 502,
    "CAPACITY_REACHED": 503,
    "PORTS_EXHAUSTED": 503,
    "ENGINE_UNAVAILABLE": 503,
    "DATABASE_UNAVAILABLE": 503,
    "IMAGE_MISSING": 503,
    "PORT_UNAVAILABLE": 503,
    "ISOLATION_UNAVAILABLE": 503,
}


def error_response(
    code: str, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return JSONResponse(body, status_code=STATUS.get(code, 500), headers=headers)


def install(app: FastAPI) -> None:
    app.add_exception_handler(InstancerError, _on_instancer_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _on_crash)


async def _on_instancer_error(_: Request, exc: InstancerError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.code == "UNAUTHORIZED" else None
    retry = exc.details.get("retry_after_seconds")
    if retry is not None:
        headers = {"Retry-After": str(retry)}
    return error_response(exc.code, exc.message, exc.details, headers)


async def _on_validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response("MALFORMED_JSON", "the request body is not valid JSON")
    described = [
        {"loc": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors
    ]
    return error_response("VALIDATION_FAILED", "the request is invalid", {"errors": described})


async def _on_http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        return error_response("NOT_FOUND", "no such endpoint")
    if exc.status_code == 405:  # keep Starlette's Allow header: RFC 9110 requires it
        return error_response(
            "METHOD_NOT_ALLOWED", "this endpoint does not accept that method", headers=dict(exc.headers or {})
        )
    if exc.status_code == 400:  # FastAPI could not decode the body (bad UTF-8, absurd nesting or numbers)
        return error_response("MALFORMED_JSON", "the request body is not valid JSON")
    body = {"error": {"code": "HTTP_ERROR", "message": str(exc.detail), "details": {}}}
    return JSONResponse(body, status_code=exc.status_code)


async def _on_crash(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response("INTERNAL_ERROR", "an internal error occurred; it has been logged")
