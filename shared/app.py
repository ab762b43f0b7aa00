"""The parts every service's FastAPI app shares: lifespan, health, metrics, limits, errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.bus import EventBus
from shared.clock import Clock
from shared.docs import install_docs
from shared.errors import error_body, install_error_handlers
from shared.events import Event
from shared.http_input import RequestShapeMiddleware
from shared.metrics import HTTP_LATENCY, HTTP_REQUESTS, metrics_endpoint
from shared.runtime import BackgroundTask, EventHandler, ServiceRuntime
from shared.settings import Settings, get_settings
from shared.telemetry import instrument_app

MAX_BODY_BYTES = 1024 * 1024


def create_service_app(
    *,
    service: str,
    description: str,
    settings: Settings | None,
    metadata: MetaData,
    handlers: Mapping[type[Event], EventHandler],
    consumes: tuple[str, ...],
    routers: list[APIRouter],
    background: tuple[BackgroundTask, ...] = (),
    bus: EventBus | None = None,
    clock: Clock | None = None,
    version: str = "0.1.0",
) -> FastAPI:
    """A service's FastAPI app; its lifespan starts the service's ``ServiceRuntime``.

    ``bus`` is given by ``ticketflow dev`` (one in-process bus for all three services) and by
    tests; without it the runtime connects to Kafka from the settings.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = ServiceRuntime(
            name=service,
            settings=settings,
            metadata=metadata,
            handlers=handlers,
            consumes=consumes,
            bus=bus,
            clock=clock,
            background=background,
        )
        await runtime.start()
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title=f"ticketflow {service}",
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,  # install_docs serves Swagger UI from the package, not a CDN
        redoc_url=None,
    )
    install_docs(app)
    app.state.service = service
    app.router.redirect_slashes = False  # RequestShapeMiddleware answers with a JSON 404

    async def _settings() -> Settings:
        return settings

    # Async: FastAPI would run a plain function dependency in its thread pool on every request.
    app.dependency_overrides[get_settings] = _settings
    install_error_handlers(app)
    app.add_middleware(RequestShapeMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(MetricsMiddleware, service=service)

    @app.get("/healthz", tags=["ops"], summary="Process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["ops"], summary="Database and bus reachable")
    async def readyz(request: Request) -> JSONResponse:
        runtime: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
        if runtime is None:
            return JSONResponse(error_body("not_ready", "starting"), status_code=503)
        # Set by whoever still prepares the service (e.g. ``dev --demo`` seeding its data).
        pending: str | None = getattr(request.app.state, "not_ready_reason", None)
        if pending:
            return JSONResponse(error_body("not_ready", pending), status_code=503)
        try:
            await runtime.check_ready()
        except Exception as exc:
            return JSONResponse(error_body("not_ready", str(exc)), status_code=503)
        return JSONResponse({"status": "ready", "service": service})

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    instrument_app(app)
    return app


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    # Ends before the response is sent (scope="function"): a 2xx means the commit happened.
    runtime: ServiceRuntime = request.app.state.runtime
    async with runtime.transaction() as session:
        yield session


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Session = Annotated[AsyncSession, Depends(_session, scope="function")]


class BodyLimitMiddleware:
    """Answers 413 for a request body over ``max_bytes``, declared or streamed."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        received = 0
        too_large = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if too_large:
                # FastAPI turns a failed body read into its own 400; the answer is our 413.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        with contextlib.suppress(_BodyTooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if too_large and not started:
            await self._reject(send)

    async def _reject(self, send: Send) -> None:
        body = JSONResponse(
            error_body("payload_too_large", f"request body is over {self.max_bytes} bytes"),
            status_code=413,
        )
        await body({"type": "http"}, _empty_receive, send)


class _BodyTooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = _route_template(scope)
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            method = scope.get("method", "")
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    app: Any = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"
