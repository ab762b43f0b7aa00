"""The parts every service's FastAPI app shares: lifespan, health, metrics, limits, errors."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Annotated
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import MetaData
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.bus import EventBus
from shared.clock import Clock
from shared.docs import install_docs
from shared.errors import (
    RETRY_AFTER_SECONDS,
    error_body,
    install_error_handlers,
    unavailable_response,
)
from shared.events import Event
from shared.faults import DependencyUnavailable
from shared.http_input import RequestShapeMiddleware
from shared.metrics import (
    HTTP_LATENCY,
    HTTP_REQUESTS,
    current_request,
    metrics_endpoint,
    route_of,
)
from shared.runtime import BackgroundTask, EventHandler, ServiceRuntime, U, UnitOfWork
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
    unit_of_work: type[UnitOfWork] = UnitOfWork,
) -> FastAPI:
    """A service's FastAPI app; its lifespan starts the service's ``ServiceRuntime``.

    ``unit_of_work`` is the service's ``UnitOfWork`` subclass: each request that asks for the
    ``Session`` or ``context(...)`` dependency runs in one of them, committed at the edge.

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
            unit_of_work=unit_of_work,
        )
        await runtime.start()  # counts its statements too (shared.metrics.count_statements)
        app.state.runtime = runtime
        try:
            yield
        finally:
            # ``ticketflow dev`` stops its three runtimes together (``stop_together``).
            if not getattr(app.state, "runtime_stopped_by_owner", False):
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

    app.state.settings = settings  # read by the ``app_settings`` dependency
    install_error_handlers(app)
    app.add_middleware(RequestShapeMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(NulInUrlMiddleware)
    app.add_middleware(MetricsMiddleware, service=service)

    @app.get("/healthz", tags=["ops"], summary="Process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @app.get("/readyz", tags=["ops"], summary="Database and bus reachable")
    async def readyz(request: Request) -> JSONResponse:
        retry = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        runtime: ServiceRuntime | None = getattr(request.app.state, "runtime", None)
        if runtime is None or runtime.stopping:
            reason = "stopping" if runtime is not None else "starting"
            return JSONResponse(error_body("not_ready", reason), status_code=503, headers=retry)
        # Set by whoever still prepares the service (e.g. ``dev --demo`` seeding its data).
        pending: str | None = getattr(request.app.state, "not_ready_reason", None)
        if pending:
            return JSONResponse(error_body("not_ready", pending), status_code=503, headers=retry)
        try:
            await runtime.check_ready()
        except DependencyUnavailable as exc:
            # The body names the cause: details[0].dependency is "database" or "bus".
            return unavailable_response(exc.dependency, str(exc))
        return JSONResponse({"status": "ready", "service": service})

    app.add_route("/metrics", metrics_endpoint, include_in_schema=False)
    for router in routers:
        app.include_router(router)
    instrument_app(app)
    return app


async def get_runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def _unit_of_work(request: Request) -> AsyncIterator[UnitOfWork]:
    # Ends before the response is sent (scope="function"): a 2xx means the commit happened.
    runtime: ServiceRuntime = request.app.state.runtime
    read_only = request.method in ("GET", "HEAD")
    async with runtime.unit_of_work(runtime.unit_of_work_class, read_only=read_only) as work:
        yield work


# One per request: ``Session`` and every ``context(...)`` share it (FastAPI caches it).
RequestUnitOfWork = Annotated[UnitOfWork, Depends(_unit_of_work, scope="function")]


async def _session(work: RequestUnitOfWork) -> AsyncSession:
    return work.session


def context(kind: type[U]) -> Callable[[UnitOfWork], Awaitable[U]]:
    """A dependency giving the request's unit of work as the service's own ``kind``:
    ``Context = Annotated[SlaContext, Depends(context(SlaContext))]``."""

    async def dependency(work: RequestUnitOfWork) -> U:
        if not isinstance(work, kind):
            raise TypeError(f"the app's unit of work is {type(work).__name__}, not {kind.__name__}")
        return work

    return dependency


Runtime = Annotated[ServiceRuntime, Depends(get_runtime)]
Session = Annotated[AsyncSession, Depends(_session)]


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


class NulInUrlMiddleware:
    """Answers 422 for a NUL character in the path or a query parameter: PostgreSQL can neither
    store nor compare one, so it must never reach a query (bodies: ``shared.types``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            field = _nul_in_url(scope)
            if field is not None:
                message = f"{field}: must not contain NUL characters"
                details = [{"field": field, "message": "must not contain NUL characters"}]
                response = JSONResponse(
                    error_body("validation_error", message, details), status_code=422
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_in_url(scope: Scope) -> str | None:
    if "\x00" in scope.get("path", ""):
        return "path"
    query = scope.get("query_string", b"").decode("latin-1")
    if "%00" not in query and "\x00" not in query:
        return None
    for key, value in parse_qsl(query, keep_blank_values=True):
        if "\x00" in key or "\x00" in value:
            return key.replace("\x00", "") or "query"
    return None


class _BodyTooLarge(Exception):
    pass


async def _empty_receive() -> Message:
    return {"type": "http.disconnect"}


class MetricsMiddleware:
    """Counts and times requests per route; the route is read once the router matched it."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = time.perf_counter()

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        token = current_request.set(scope)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            current_request.reset(token)
            method = scope.get("method", "")
            route = route_of(scope)
            HTTP_REQUESTS.labels(self.service, method, route, str(status)).inc()
            HTTP_LATENCY.labels(self.service, method, route).observe(time.perf_counter() - started)
