"""Domain errors and the one JSON error shape of the contract.

``{"error": {"code": "...", "message": "...", "details": [...]}}``
"""

from __future__ import annotations

import logging
from typing import Any, TypeVar

import asyncpg
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.faults import Dependency, DependencyUnavailable, unavailable_dependency

log = logging.getLogger(__name__)

# Seconds a client is asked to wait when a dependency is down (``Retry-After``).
RETRY_AFTER_SECONDS = 5


class DomainError(Exception):
    """An error a client caused; carries its HTTP status and a stable code."""

    status_code = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        self.headers = headers


class NotFound(DomainError):
    status_code = 404
    code = "not_found"


class Conflict(DomainError):
    status_code = 409
    code = "conflict"


class Gone(DomainError):
    status_code = 410
    code = "gone"


T = TypeVar("T")


def found(value: T | None, what: str) -> T:
    """``value``, or the 404 saying ``what`` (e.g. ``"calendar c-1"``) was not found."""
    if value is None:
        raise NotFound(f"{what} not found")
    return value


class Unprocessable(DomainError):
    status_code = 422
    code = "validation_error"


class Unauthorized(DomainError):
    status_code = 401
    code = "unauthorized"


class Forbidden(DomainError):
    status_code = 403
    code = "forbidden"


class PayloadTooLarge(DomainError):
    status_code = 413
    code = "payload_too_large"


class TooManyRequests(DomainError):
    status_code = 429
    code = "rate_limited"


class ServiceUnavailable(DomainError):
    """A dependency the request needs is down: retry later (503 with ``Retry-After``)."""

    status_code = 503
    code = "unavailable"

    def __init__(self, dependency: Dependency, reason: str = "") -> None:
        detail = (
            {"dependency": dependency, "reason": reason} if reason else {"dependency": dependency}
        )
        super().__init__(
            f"the {dependency} is unavailable, retry later",
            details=[detail],
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
        self.dependency = dependency


def unavailable_response(dependency: Dependency, reason: str = "") -> JSONResponse:
    """The contract's 503: ``{"error": {"code": "unavailable", ...}}`` with ``Retry-After``."""
    exc = ServiceUnavailable(dependency, reason)
    return JSONResponse(
        error_body(exc.code, exc.message, exc.details), status_code=503, headers=exc.headers
    )


# Exception types that may mean an outage; each is checked with the classifier before a 503.
_INFRASTRUCTURE_TYPES: tuple[type[Exception], ...] = (
    SQLAlchemyError,
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    KafkaError,
    OSError,  # ConnectionError, TimeoutError
    DependencyUnavailable,
)


_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or []}}


def _field_path(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or str(loc[0] if loc else "body")


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Turn pydantic errors into ``[{"field": "requester.email", "message": ...}]``."""
    details = []
    for err in errors:
        loc = err.get("loc", ())
        details.append(
            {
                "field": _field_path(loc),
                "location": str(loc[0]) if loc else "body",
                "message": err.get("msg", "invalid"),
                "type": err.get("type", "invalid"),
            }
        )
    return details


def _outage_or_bug(request: Request, exc: Exception) -> JSONResponse:
    dependency = unavailable_dependency(exc)
    if dependency is not None:
        log.warning("%s %s: %s unavailable: %r", request.method, request.url.path, dependency, exc)
        return unavailable_response(dependency, f"{type(exc).__name__}: {exc}"[:300])
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body("internal_error", "internal error"), status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Render every error in the contract's shape.

    An outage (see ``shared.faults``) is a 503 with ``Retry-After``; any other unexpected
    exception is a logged 500, which is always a bug.
    """

    async def _infrastructure(request: Request, exc: Exception) -> JSONResponse:
        return _outage_or_bug(request, exc)

    # Handled inside the routing layer (not by the last-resort handler), so an outage is
    # answered and logged once, as a warning, and the server does not log a traceback.
    for exc_type in _INFRASTRUCTURE_TYPES:
        app.add_exception_handler(exc_type, _infrastructure)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details),
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        broken = next((e for e in errors if e.get("type") == "json_invalid"), None)
        if broken is not None:  # FastAPI's loc is ("body", <offset>): say where, in words
            from shared.http_input import describe_json_error

            message = describe_json_error(broken, exc.body)
            detail = {"field": "body", "location": "body", "message": message}
            return JSONResponse(
                error_body("validation_error", message, [{**detail, "type": "json_invalid"}]),
                status_code=422,
            )
        details = validation_details(errors)
        first = details[0] if details else {"field": "body", "message": "invalid"}
        message = f"{first['field']}: {first['message']}"
        return JSONResponse(error_body("validation_error", message, details), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _STATUS_CODES.get(exc.status_code, "error")
        return JSONResponse(
            error_body(code, str(exc.detail)),
            status_code=exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _outage_or_bug(request, exc)
