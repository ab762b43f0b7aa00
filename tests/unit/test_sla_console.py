"""The ops console's server side in the embedded mode: sign-in, session cookie, snapshot,
goals fallback, the stream's deltas over a real HTTP connection, and ``Last-Event-ID`` resume."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import deque
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
import uvicorn

from services.launcher import free_port
from services.sla.app import create_app
from services.sla.console import stream
from services.sla.console.session import COOKIE
from services.sla.console.stream import StreamHub
from shared import events as ev
from shared.bus import MemoryBus
from shared.migrate import upgrade_all
from tests.conftest import ADMIN_KEY, READER_KEY, eventually, make_settings


def snapshot(ticket_id: str, version: int = 1, **changes: Any) -> ev.TicketSnapshot:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "id": ticket_id,
        "source": "api",
        "external_id": ticket_id.split(":", 1)[1],
        "subject": "Card declined",
        "status": "new",
        "priority": "urgent",
        "channel": "chat",
        "group": "billing",
        "requester": {"id": "r1"},
        "created_at": now,
        "updated_at": now,
        "version": version,
    }
    values.update(changes)
    return ev.TicketSnapshot.model_validate(values)


class Served:
    def __init__(self, base: str, bus: MemoryBus, topic_prefix: str) -> None:
        self.base = base
        self.bus = bus
        self.prefix = topic_prefix

    async def publish(self, event: ev.Event) -> None:
        key, value, headers = ev.encode(event, source="/test/router")
        await self.bus.publish(self.prefix + event.topic, key, value, headers)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    """sla on SQLite and the in-memory bus, served by uvicorn (a real HTTP connection)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticketflow.db'}"
    await upgrade_all(url)
    port = free_port()
    settings = make_settings(url, router_url="http://127.0.0.1:9", survey_url="http://127.0.0.1:9")
    bus = MemoryBus(partitions=4, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    app = create_app(settings, bus=bus)
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    await eventually(lambda: asyncio.sleep(0, server.started))
    try:
        yield Served(f"http://127.0.0.1:{port}", bus, settings.topic_prefix)
    finally:
        server.should_exit = True
        await task
        await bus.stop()


async def read_events(
    response: httpx.Response, want: int, into: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Parse SSE frames (event, id, data) until ``want`` data events arrived."""
    frame: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in frame:
                into.append(frame)
                if len(into) >= want:
                    return into
            frame = {}
            continue
        name, _, value = line.partition(":")
        if name in ("event", "id", "data"):
            frame[name] = value.removeprefix(" ")
    return into


async def test_sign_in_sets_an_httponly_cookie_and_refuses_a_wrong_key(served: Served) -> None:
    async with httpx.AsyncClient(base_url=served.base) as client:
        page = await client.get("/console")
        assert page.status_code == 200 and 'action="/console/sign-in"' in page.text
        wrong = await client.post("/console/sign-in", data={"key": "not-a-key"})
        assert wrong.status_code == 401 and "not valid" in wrong.text
        assert COOKIE not in wrong.cookies
        empty = await client.post("/console/sign-in", data={"key": ""})
        assert empty.status_code == 422 and "Enter an API key" in empty.text
        assert (await client.get("/v1/console/snapshot")).status_code == 401

        ok = await client.post("/console/sign-in", data={"key": READER_KEY})
        assert ok.status_code == 303 and ok.headers["location"] == "/console"
        set_cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=strict" in set_cookie
        assert READER_KEY not in set_cookie  # a signed fingerprint, never the key
        console = await client.get("/console")
        assert 'id="breached"' in console.text and "reader key" in console.text
        assert (await client.get("/v1/console/snapshot")).status_code == 200
        asset = await client.get("/console/static/uplot.iife.min.js")
        assert asset.status_code == 200 and "uPlot" in asset.text
        assert (await client.get("/console/static/../api.py")).status_code == 404

        tampered = client.cookies[COOKIE][:-2] + "xx"
        client.cookies.set(COOKIE, tampered)
        assert (await client.get("/v1/console/snapshot")).status_code == 401
        out = await client.post("/console/sign-out")
        assert out.status_code == 303 and COOKIE in out.headers["set-cookie"]


async def test_snapshot_and_goals_without_a_goals_api(served: Served) -> None:
    ticket_id = f"api:{uuid.uuid4().hex[:10]}"
    await served.publish(ev.TicketCreated(ticket=snapshot(ticket_id)))
    auth = {"Authorization": f"Bearer {READER_KEY}"}
    async with httpx.AsyncClient(base_url=served.base, headers=auth) as client:

        async def timers() -> list[dict[str, Any]]:
            body = (await client.get("/v1/console/snapshot")).json()
            return [t for t in body["timers"] if t["ticket_id"] == ticket_id]

        found = await eventually(timers)
        assert {t["metric"] for t in found} == {"first_response", "resolution"}
        body = (await client.get("/v1/console/snapshot")).json()
        ticket = next(t for t in body["tickets"] if t["id"] == ticket_id)
        assert ticket["group"] == "billing" and ticket["priority"] == "urgent"
        goals = (await client.get("/v1/console/goals")).json()
        summary = (await client.get("/v1/goals/summary")).json()
        assert goals["available"]
        assert [g["id"] for g in goals["items"]] == [g["goal_id"] for g in summary["items"]]
        agents = (await client.get("/v1/console/agents")).json()
        assert agents["available"] is False and "127.0.0.1:9" in agents["reason"]
        detail = (await client.get(f"/v1/console/tickets/{ticket_id}")).json()
        assert detail["sla"]["ticket_id"] == ticket_id and detail["router"]["available"] is False
        missing = await client.get("/v1/console/tickets/api:nothing-here")
        assert missing.status_code == 404
        odd = await client.get("/v1/console/tickets/%C2%A2%F1%B3%A1%9B%26%1FU")
        assert odd.status_code == 404


async def test_stream_sends_deltas_with_ids_and_resumes_from_last_event_id(
    served: Served,
) -> None:
    ticket_id = f"api:{uuid.uuid4().hex[:10]}"
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with httpx.AsyncClient(base_url=served.base, timeout=10) as client:
        refused = await client.get("/v1/stream", headers={"Accept": "text/event-stream"})
        assert refused.status_code == 401
        not_a_stream_reader = await client.get("/v1/stream", headers=auth)
        assert not_a_stream_reader.status_code == 406
        assert "text/event-stream" in not_a_stream_reader.json()["error"]["message"]
        auth = {**auth, "Accept": "text/event-stream"}
        got: list[dict[str, Any]] = []
        async with client.stream("GET", "/v1/stream", headers=auth) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            await served.publish(ev.TicketCreated(ticket=snapshot(ticket_id)))
            async with asyncio.timeout(10):
                await read_events(response, 3, got)
        kinds = [(f["event"], json.loads(f["data"]).get("type")) for f in got]
        assert ("ticket", "ticket.created") in kinds
        assert kinds.count(("sla", "sla.started")) == 2
        started = [json.loads(f["data"]) for f in got if f["event"] == "sla"]
        assert all(s["ticket_id"] == ticket_id and s["due_at"] for s in started)
        ids = [f["id"] for f in got]
        assert len(set(ids)) == 3

        # Missed while away: resumed from the first id, the rest come again, nothing twice.
        later: list[dict[str, Any]] = []
        headers = {**auth, "Last-Event-ID": ids[0]}
        async with client.stream("GET", "/v1/stream", headers=headers) as response:
            async with asyncio.timeout(10):
                await read_events(response, 2, later)
        assert [f["id"] for f in later] == ids[1:]

        # From another process (unknown epoch): a reset tells the page to reload a snapshot.
        reset: list[dict[str, Any]] = []
        headers = {**auth, "Last-Event-ID": "deadbeef.12"}
        async with client.stream("GET", "/v1/stream", headers=headers) as response:
            async with asyncio.timeout(10):
                await read_events(response, 1, reset)
        assert reset[0]["event"] == "reset"


def encoded(event: ev.Event, event_id: str | None = None, **kw: Any) -> bytes:
    return ev.encode(event, source="/test", event_id=event_id, **kw)[1]


def test_hub_drops_history_duplicates_and_unchanged_tickets() -> None:
    started = datetime.now(UTC)
    hub = StreamHub(started)
    hub.watched()
    ticket = snapshot("api:h1")
    hub.accept(encoded(ev.TicketCreated(ticket=ticket), time=started - timedelta(hours=1)), None)
    assert hub.seq == 0  # history before the feed started: the snapshot has it
    hub.accept(encoded(ev.TicketCreated(ticket=ticket), "e1"), None)
    hub.accept(encoded(ev.TicketCreated(ticket=ticket), "e1"), None)  # redelivered
    assert hub.seq == 1
    message = ev.MessageInfo(id="m1", author="customer", created_at=started)
    bumped = snapshot("api:h1", version=2)
    hub.accept(encoded(ev.TicketMessageAdded(ticket=bumped, message=message), "e2"), None)
    assert hub.seq == 1  # nothing the queue or the load depends on changed
    assigned = snapshot("api:h1", version=3, assignee_id="ana", status="open")
    hub.accept(encoded(ev.TicketAssigned(ticket=assigned, reason="least loaded"), "e3"), None)
    assert hub.seq == 2 and json.loads(hub.ring[-1].data)["assignee_id"] == "ana"
    assert hub.replay_after(f"{hub.epoch}.1") == [hub.ring[-1]]
    assert hub.replay_after(f"{hub.epoch}.2") == []
    assert hub.replay_after("other.1") is None
    assert hub.replay_after(None) == []


def test_hub_makes_deltas_only_while_watched(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(stream.time, "monotonic", lambda: now[0])
    hub = StreamHub(datetime.now(UTC) - timedelta(seconds=1))

    def assign(n: int, agent: str) -> None:
        ticket = snapshot(f"api:w{n}", version=2, assignee_id=agent, status="open")
        event_id = str(uuid.uuid4())
        hub.accept(encoded(ev.TicketAssigned(ticket=ticket, reason="x"), event_id), None)

    assign(1, "ana")  # nobody has watched: no work, no delta
    assert hub.ring == deque() and hub.seq == 1
    subscriber = hub.subscribe()
    assign(1, "bo")
    assert [json.loads(d.data)["assignee_id"] for d in hub.ring] == ["bo"]
    assert subscriber.queue.qsize() == 1
    resumed_at = hub.position()
    hub.unsubscribe(subscriber)
    now[0] += stream.WATCHED_SECONDS - 1
    assign(2, "ana")  # a page reconnecting after a blip finds it in the ring
    assert len(hub.replay_after(resumed_at) or []) == 1
    now[0] += 2
    assign(3, "ana")  # a minute nobody watched: skipped, and a resume from before resets
    assert hub.replay_after(resumed_at) is None and hub.ring == deque()
    hub.watched()  # a snapshot: deltas again, the skipped ticket's memory gone
    assign(1, "bo")
    assert [json.loads(d.data)["assignee_id"] for d in hub.ring] == ["bo"]


class _GoalAtRisk(ev.Event):
    """A goal event as sla's goals emit it (key and subject = goal id); not registered here."""

    type: ClassVar[str] = "goal.at_risk"
    topic: ClassVar[str] = "sla"
    goal_id: str
    name: str

    @property
    def subject(self) -> str:
        return self.goal_id


def test_hub_passes_goal_events_with_the_goal_id() -> None:
    hub = StreamHub(datetime.now(UTC) - timedelta(seconds=1))
    hub.watched()
    hub.accept(encoded(_GoalAtRisk(goal_id="g1", name="Chat first reply"), "g-e1"), "g1")
    data = json.loads(hub.ring[-1].data)
    assert hub.ring[-1].event == "goal"
    assert data["type"] == "goal.at_risk" and data["goal_id"] == "g1" and data["at"]
