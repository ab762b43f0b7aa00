"""The ops console's routes: the page and its sign-in, its assets, its data and ``/v1/stream``."""

from __future__ import annotations

import asyncio
import gzip
import html
import json
from collections.abc import AsyncIterator
from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Header, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent

from services.sla.api import Context, ticket_sla_read
from services.sla.console import snapshot, upstream
from services.sla.console.session import (
    COOKIE,
    SESSION_SECONDS,
    ConsoleViewer,
    MaybeViewer,
    session_cookie,
    viewer_for_key,
)
from services.sla.console.stream import Delta, hub_of
from services.sla.goals import attainment
from shared.app import Runtime, Session
from shared.errors import DomainError, NotFound
from shared.settings import Settings, app_settings

router = APIRouter()

STATIC = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "uplot.iife.min.js": "text/javascript; charset=utf-8",
    "uplot.min.css": "text/css; charset=utf-8",
    "LICENSE.uplot.txt": "text/plain; charset=utf-8",
}
NO_STORE = {"Cache-Control": "no-store"}
SettingsDep = Annotated[Settings, Depends(app_settings)]


@cache
def _asset(name: str) -> bytes:
    return resources.files("services.sla.console").joinpath("static", name).read_bytes()


def _signin_page(message: str | None, status_code: int = 200) -> HTMLResponse:
    body = _asset("signin.html").decode()
    notice = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    return HTMLResponse(body.replace("<!--notice-->", notice), status_code, headers=NO_STORE)


# --- page, sign-in, sign-out --------------------------------------------------------------------


@router.get("/console", response_class=HTMLResponse, tags=["console"], include_in_schema=True)
async def console_page(viewer: MaybeViewer) -> HTMLResponse:
    """The ops console, or its sign-in page when nobody is signed in."""
    if viewer is None:
        return _signin_page(None)
    page = _asset("console.html").decode().replace("{{role}}", html.escape(viewer.role))
    return HTMLResponse(page, headers=NO_STORE)


@router.post("/console/sign-in", tags=["console"], response_model=None)
async def sign_in(
    request: Request, settings: SettingsDep, key: Annotated[str, Form(max_length=500)] = ""
) -> Response:
    """Sign in with an API key (a reader key is enough); sets an HttpOnly session cookie."""
    if not key.strip():
        return _signin_page("Enter an API key.", 422)
    viewer = viewer_for_key(key.strip(), settings)
    if viewer is None:
        return _signin_page("That API key is not valid. Check it and try again.", 401)
    response = RedirectResponse("/console", status_code=303)
    response.set_cookie(
        COOKIE,
        session_cookie(viewer, settings),
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/console/sign-out", tags=["console"])
async def sign_out() -> RedirectResponse:
    response = RedirectResponse("/console", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/console/static/{name}", tags=["console"], include_in_schema=False)
async def console_asset(name: Annotated[str, Path(max_length=100)]) -> Response:
    if name not in STATIC:
        raise NotFound(f"no console asset {name!r}")
    return Response(_asset(name), media_type=STATIC[name], headers={"Cache-Control": "max-age=300"})


# --- data ---------------------------------------------------------------------------------------


@router.get("/v1/console/snapshot", tags=["console"], response_model=None)
async def console_snapshot(
    request: Request, session: Session, runtime: Runtime, viewer: ConsoleViewer
) -> Response:
    """Open tickets, open timers and recent breaches; ``position`` is the stream id it matches.

    Thousands of rows: serialized in one ``json.dumps`` and gzipped when the client accepts it.
    """
    hub = hub_of(runtime)
    hub.watched()  # deltas from here on: none is lost between this snapshot and the stream
    position = hub.position()  # read first: later deltas re-apply harmlessly
    body = {
        "position": position,
        "now": runtime.clock.now().isoformat(),
        "role": viewer.role,
        "tickets": await snapshot.open_tickets(session),
        "timers": await snapshot.open_timers(session),
        "feed": await snapshot.recent_breaches(session),
    }
    content = json.dumps(body, separators=(",", ":")).encode()
    headers = {**NO_STORE, "Vary": "Accept-Encoding"}
    if "gzip" in request.headers.get("accept-encoding", "") and len(content) > 1024:
        content = gzip.compress(content, compresslevel=5)
        headers["Content-Encoding"] = "gzip"
    return Response(content, media_type="application/json", headers=headers)


@router.get("/v1/console/agents", tags=["console"])
async def console_agents(settings: SettingsDep, viewer: ConsoleViewer) -> dict[str, Any]:
    """Agents with capacity and status, from router's public API."""
    try:
        items = await upstream.agents(settings.router_url, viewer.key)
    except upstream.Unavailable as exc:
        return {"available": False, "reason": str(exc), "items": []}
    return {"available": True, "items": items}


@router.get("/v1/console/goals", tags=["console"])
async def console_goals(session: Session, runtime: Runtime, _: ConsoleViewer) -> dict[str, Any]:
    """Every service goal as ``/v1/goals/summary`` lists it, with its whole attainment (the
    trend and projection the chart draws)."""
    items = await attainment.board(session, runtime.clock.now())
    return {"available": True, "items": [{**item, "id": item["goal_id"]} for item in items]}


@router.get("/v1/console/tickets/{ticket_id}", tags=["console"])
async def console_ticket(
    ticket_id: Annotated[str, Path(min_length=3, max_length=255)],
    ctx: Context,
    settings: SettingsDep,
    viewer: ConsoleViewer,
) -> dict[str, Any]:
    """A ticket's detail: its SLA timers (sla), routing history (router), surveys (survey)."""
    found = await ticket_sla_read(ctx, ticket_id)
    timers = found.model_dump(mode="json") if found is not None else None
    routed, surveys = await upstream.ticket_and_surveys(
        settings.router_url, settings.survey_url, viewer.key, ticket_id
    )
    if timers is None and not (routed.get("ticket")):
        raise NotFound(f"ticket {ticket_id} is unknown")
    return {"ticket_id": ticket_id, "sla": timers, "router": routed, "surveys": surveys}


# --- the stream ---------------------------------------------------------------------------------


def _sse(delta: Delta, position: str) -> ServerSentEvent:
    return ServerSentEvent(event=delta.event, id=position, raw_data=delta.data)


class NotAcceptable(DomainError):
    status_code = 406
    code = "not_acceptable"


async def _accepts_event_stream(request: Request) -> None:
    # Checked before the response starts: a client that cannot read an endless stream (curl
    # without the header, a fuzzer) gets a clear 406 instead of a connection that never ends.
    if "text/event-stream" not in request.headers.get("accept", ""):
        raise NotAcceptable("this is an endless event stream: send Accept: text/event-stream")


@router.get(
    "/v1/stream",
    response_class=EventSourceResponse,
    tags=["console"],
    dependencies=[Depends(_accepts_event_stream)],
)
async def stream(
    request: Request,
    runtime: Runtime,
    _: ConsoleViewer,
    last_event_id: Annotated[str | None, Header(max_length=100)] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Server-Sent Events: ``sla`` (sla.* events), ``goal`` (goal.* events) and ``ticket``
    (a ticket's status, priority, channel, group or assignee changed: queue and load) as
    deltas, each with an ``id``; ``Last-Event-ID`` resumes, ``reset`` means "reload a snapshot".
    Keep-alive comments every 15 seconds. Auth: bearer key or the console's session cookie.
    The request must accept ``text/event-stream`` (EventSource does); otherwise 406."""
    hub = hub_of(runtime)
    subscriber = hub.subscribe()
    try:
        yield ServerSentEvent(retry=2000, comment="ticketflow sla stream")
        missed = hub.replay_after(last_event_id)
        last = hub.seq if missed is None else (missed[-1].seq if missed else 0)
        if missed is None:
            yield ServerSentEvent(event="reset", id=hub.position(), data={"reason": "resume"})
        else:
            for delta in missed:
                yield _sse(delta, f"{hub.epoch}.{delta.seq}")
        while True:
            try:
                async with asyncio.timeout(5):
                    delta = await subscriber.queue.get()
            except TimeoutError:
                if subscriber.overflowed and subscriber.queue.empty():
                    yield ServerSentEvent(event="reset", id=hub.position(), data={"reason": "lag"})
                    return
                if await request.is_disconnected():
                    return
                continue
            if delta.seq > last:
                last = delta.seq
                yield _sse(delta, f"{hub.epoch}.{delta.seq}")
    finally:
        hub.unsubscribe(subscriber)
