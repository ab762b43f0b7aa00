"""Which FastAPI app each service name means, for ``ticketflow serve`` and ``ticketflow dev``.

Apart from ``cli.py`` so that ``dev.py`` (which ``cli.py`` starts) need not import the command.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.errors import NotFound, error_body
from shared.settings import Settings


def create_service(service: str, settings: Settings, **kwargs: Any) -> FastAPI:
    """The FastAPI app of one service; ``kwargs`` go to its ``create_app`` (``bus``, ``clock``)."""
    if service == "router":
        from services.router.app import create_app
    elif service == "sla":
        from services.sla.app import create_app
    elif service == "survey":
        from services.survey.app import create_app
    else:
        raise ValueError(f"unknown service {service!r}")
    return create_app(settings, **kwargs)


# What a worker process (``serve --role worker``) answers over HTTP.
OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


def ops_only(app: ASGIApp) -> ASGIApp:
    """``app`` (its lifespan starts the runtime) answering only the ops endpoints: a worker
    serves no business API, so a balancer or a client pointed at it gets 404 for the rest."""

    async def worker_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in OPS_PATHS:
            await app(scope, receive, send)
            return
        refusal = JSONResponse(
            error_body(
                NotFound.code, "a worker process serves only /healthz, /readyz and /metrics"
            ),
            status_code=NotFound.status_code,
        )
        await refusal(scope, receive, send)

    return worker_app
