"""Clear answers to requests that cannot be read: wrong content type, a stray trailing slash,
malformed JSON.

``RequestShapeMiddleware`` answers 415 when a request's body is not in the media type its route
reads (JSON for the API's models, a form for form endpoints such as survey's ``POST /s/{token}``;
routes that read the raw body, like the webhook intake, judge their bodies themselves), and 404
with a hint for a path that exists only without its trailing slash (the app does not redirect:
an empty 307 tells an API client nothing).
"""

from __future__ import annotations

import contextlib
from typing import Any

from fastapi import params
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.errors import error_body

JSON = "application/json"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def media_type(content_type: str | None) -> str:
    """``application/json; charset=utf-8`` → ``application/json`` (lower case)."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def is_json(media: str) -> bool:
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


def expected_media_types(route: APIRoute) -> tuple[str, ...] | None:
    """The media types ``route``'s body is read in; None when it reads no declared body."""
    field = route.body_field
    if field is None:
        return None
    if isinstance(field.field_info, params.Form | params.File):
        return FORM_TYPES
    return (JSON,)


def describe_json_error(error: dict[str, Any], document: Any) -> str:
    """FastAPI's ``json_invalid`` error (``loc = ("body", <offset>)``) in words: what the parser
    expected, and the line and column where the body stops being JSON."""
    reason = str((error.get("ctx") or {}).get("error") or "not valid JSON")
    loc: tuple[Any, ...] = tuple(error.get("loc") or ())
    offset = loc[1] if len(loc) > 1 and isinstance(loc[1], int) else None
    if offset is None:
        return f"body is not valid JSON: {reason}"
    text = document.decode("utf-8", "replace") if isinstance(document, bytes) else str(document)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    reason = reason[:1].lower() + reason[1:]
    return f"body is not valid JSON: {reason} at line {line}, column {column}"


class RequestShapeMiddleware:
    """415 for a body in the wrong media type; 404 naming the path for a trailing slash.

    The media type is judged when the endpoint first reads the body: by then the router has
    put the matched route in the scope, and the route knows what its body is.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path != "/" and path.endswith("/"):
            answer = self._trailing_slash(scope, path)
            if answer is not None:
                await answer(scope, receive, send)
                return
        checked = False
        refusal: JSONResponse | None = None
        started = False

        async def checked_receive() -> Message:
            nonlocal checked, refusal
            if not checked:
                checked = True
                refusal = _unsupported_media_type(scope)
                if refusal is not None:
                    raise _UnsupportedMediaType
            return await receive()

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refusal is not None:
                return  # FastAPI turns the failed body read into a 400; ours is the 415
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_UnsupportedMediaType):
            await self.app(scope, checked_receive, guarded_send)
        if refusal is not None and not started:
            await refusal(scope, _no_body, send)

    def _trailing_slash(self, scope: Scope, path: str) -> JSONResponse | None:
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", [])
        bare = {**scope, "path": path.rstrip("/") or "/"}
        if not any(route.matches(bare)[0] != Match.NONE for route in routes):
            return None  # an unknown path either way: the router's own 404
        return JSONResponse(
            error_body(
                "not_found",
                f"no endpoint at {path}: paths have no trailing slash (try {bare['path']})",
            ),
            status_code=404,
        )


class _UnsupportedMediaType(Exception):
    pass


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


def _unsupported_media_type(scope: Scope) -> JSONResponse | None:
    """The 415 for a request whose body its route cannot read; None when it can."""
    route = scope.get("route")
    expected = expected_media_types(route) if isinstance(route, APIRoute) else None
    if expected is None:
        return None  # the endpoint reads the raw body (webhooks, forms) and judges it itself
    headers = dict(scope.get("headers") or [])
    length = headers.get(b"content-length")
    if b"transfer-encoding" not in headers and (length is None or length == b"0"):
        return None  # no body: the model reports the missing fields
    got = media_type(headers.get(b"content-type", b"").decode("latin-1"))
    if got in expected or (expected == (JSON,) and is_json(got)):
        return None
    wanted = " or ".join(expected)
    message = f"Content-Type must be {wanted}; the request has {got or 'none'}"
    header = "Accept-Patch" if scope["method"] == "PATCH" else "Accept-Post"
    return JSONResponse(
        error_body("unsupported_media_type", message, [{"field": "content-type"}]),
        status_code=415,
        headers={header: ", ".join(expected)},
    )
