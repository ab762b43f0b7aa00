"""Faults under a steady webhook stream, against real parts.

router, sla and survey run as ``ticketflow serve`` processes on a private PostgreSQL cluster
(``initdb`` + ``pg_ctl``, so the test may crash it) and a Tansu broker. A stream posts generic
webhooks, each twice: a ticket's creation, and a little later its solve. Meanwhile one fault
happens: PostgreSQL crashes for ~10 s, the broker is frozen (SIGSTOP) for ~18 s, a service is
killed with -9, or a service gets SIGTERM. Afterwards every test checks the same things:

- nothing accepted is lost: every ticket whose webhook got a 202 is assigned, has its SLA
  timers, and (when its solve got a 202) its survey;
- nothing is applied twice: one assignment, one timer per metric, one survey per ticket;
- no 5xx but 503, and every 503 carries ``Retry-After``;
- nothing on any ``.dlq`` topic.

The time to recover is printed, never asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from services.dlq import read_topic
from services.launcher import PostgresCluster, TansuBroker
from shared.runtime import CONTRACT_TOPICS
from tests.conftest import ADMIN_KEY, READER_KEY, create_private_database
from tests.e2e.conftest import GENERIC_SECRET, ServeStack, signed_generic

TICKET_INTERVAL = 0.1  # seconds between two new tickets (each is two webhooks, twice)
SOLVE_LAG = 15  # a ticket is solved when the 15th ticket after it is created
SETTLE_SECONDS = 300.0  # generous: the machine may be loaded


@dataclass
class FaultStack(ServeStack):
    cluster: PostgresCluster | None = None
    broker: TansuBroker | None = None


@pytest.fixture(scope="module")
async def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FaultStack]:
    cluster = PostgresCluster(Path(tempfile.mkdtemp(prefix="ticketflow-pg-")) / "data")
    broker = TansuBroker()
    logs = tmp_path_factory.mktemp("fault-logs")
    stack: FaultStack | None = None
    try:
        await asyncio.to_thread(cluster.init)
        await asyncio.to_thread(cluster.start)
        await asyncio.to_thread(broker.start)
        url = await create_private_database(cluster)
        env = {
            "TICKETFLOW_DATABASE_URL": url,
            "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "TICKETFLOW_TOPIC_PREFIX": f"fault{uuid.uuid4().hex[:6]}.",
            "TICKETFLOW_TOPIC_PARTITIONS": "4",
            "TICKETFLOW_API_KEYS": f"{ADMIN_KEY}:admin,{READER_KEY}:reader",
            "TICKETFLOW_WEBHOOK_SECRET_GENERIC": GENERIC_SECRET,
            "TICKETFLOW_LOG_FORMAT": "json",
            "TICKETFLOW_OUTBOX_POLL_SECONDS": "0.2",
            "TICKETFLOW_INTAKE_RATE_PER_SECOND": "10000",
            "TICKETFLOW_INTAKE_BURST": "10000",
        }
        stack = FaultStack(env=env, logs=logs, cluster=cluster, broker=broker)
        for service in ("router", "sla", "survey"):
            await asyncio.to_thread(stack.start, service)
        async with stack.client("router") as router:
            for n in range(4):
                response = await router.put(
                    f"/v1/agents/fault-agent-{n}",
                    json={
                        "name": f"Agent {n}",
                        "capacity": {"web": 10000},
                        "status": "online",
                    },
                )
                assert response.status_code in (200, 201), response.text
        yield stack
    finally:
        if stack is not None:
            await asyncio.to_thread(stack.stop_all)
        await asyncio.to_thread(broker.stop)
        await asyncio.to_thread(cluster.destroy)
        with contextlib.suppress(OSError):
            cluster.data_dir.parent.rmdir()


@dataclass
class WebhookStream:
    """Posts each ticket's webhooks twice, as helpdesks do when unsure, and keeps score."""

    router_url: str
    source: str = field(default_factory=lambda: f"f{uuid.uuid4().hex[:8]}")
    created: set[str] = field(default_factory=set)  # tickets whose creation got a 202
    solved: set[str] = field(default_factory=set)  # tickets whose solve got a 202
    statuses: Counter[int | str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    last_accepted: float = 0.0
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        self._stop.set()
        assert self._task is not None
        await self._task

    def ticket_id(self, n: int) -> str:
        return f"{self.source}:{n}"

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.router_url, timeout=20) as client:
            n = 0
            while not self._stop.is_set():
                n += 1
                if await self._post_twice(client, self._upsert(n, "new")):
                    self.created.add(self.ticket_id(n))
                old = n - SOLVE_LAG
                if self.ticket_id(old) in self.created and await self._post_twice(
                    client, self._upsert(old, "solved")
                ):
                    self.solved.add(self.ticket_id(old))
                await asyncio.sleep(TICKET_INTERVAL)

    def _upsert(self, n: int, status: str) -> dict:
        return {
            "type": "ticket.upsert",
            "data": {
                "source": self.source,
                "external_id": str(n),
                "occurred_at": datetime.now(UTC).isoformat(),
                "ticket": {
                    "subject": f"fault test {n}",
                    "channel": "web",
                    "status": status,
                    "requester": {"id": f"{self.source}-customer-{n}"},
                },
            },
        }

    async def _post_twice(self, client: httpx.AsyncClient, payload: dict) -> bool:
        body, headers = signed_generic(payload)
        accepted = False
        for _ in range(2):  # the same delivery (same webhook-id) twice
            try:
                response = await client.post("/v1/webhooks/generic", content=body, headers=headers)
            except httpx.HTTPError as exc:
                self.statuses[type(exc).__name__] += 1  # the router is down: not accepted
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 202:
                accepted = True
                self.last_accepted = time.monotonic()
            elif response.status_code >= 500:
                retry_after = response.headers.get("retry-after")
                if response.status_code != 503 or not retry_after:
                    self.violations.append(f"{response.status_code} {response.text[:300]}")
                elif response.json()["error"]["code"] != "unavailable":
                    self.violations.append(f"503 without code unavailable: {response.text}")
            elif response.status_code != 202:
                self.violations.append(f"{response.status_code} {response.text[:300]}")
        return accepted


async def wait_until(probe: Callable[[], Awaitable[bool]], within: float, what: str) -> float:
    """Poll until ``probe`` is true; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        if await probe():
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what}: not within {within}s")


async def check_nothing_lost_or_doubled(stack: ServeStack, stream: WebhookStream) -> float:
    """Wait until every accepted ticket has taken full effect, then check each exactly.

    Returns the seconds the pipeline took to catch up."""
    assert stream.created, "the stream got no ticket accepted at all"
    started = time.monotonic()
    pending = set(stream.created)
    last: dict[str, str] = {}
    async with (
        stack.client("router") as router,
        stack.client("sla") as sla,
        stack.client("survey") as survey,
    ):

        async def settled(ticket_id: str) -> bool:
            ticket = await router.get(f"/v1/tickets/{ticket_id}")
            if ticket.status_code != 200:
                last[ticket_id] = f"ticket {ticket.status_code}"
                return False
            history = ticket.json()["routing_history"]
            assignments = [d for d in history if d["kind"] == "assignment"]
            assert len(assignments) <= 1, f"{ticket_id} assigned {len(assignments)} times"
            timers = await sla.get(f"/v1/tickets/{ticket_id}/sla")
            metrics = sorted(t["metric"] for t in timers.json().get("timers", []))
            assert len(metrics) == len(set(metrics)), f"{ticket_id}: timers {metrics}"
            surveys = (await survey.get("/v1/surveys", params={"ticket_id": ticket_id})).json()
            assert len(surveys["items"]) <= 1, f"{ticket_id}: {len(surveys['items'])} surveys"
            expected_surveys = 1 if ticket_id in stream.solved else 0
            last[ticket_id] = f"assignments {len(assignments)} timers {metrics} surveys {surveys}"
            return (
                len(assignments) == 1
                and metrics == ["first_response", "resolution"]
                and len(surveys["items"]) == expected_surveys
            )

        while pending:
            if time.monotonic() - started > SETTLE_SECONDS:
                sample = sorted(pending)[:5]
                raise AssertionError(
                    f"{len(pending)} of {len(stream.created)} accepted tickets lost or "
                    f"incomplete after {SETTLE_SECONDS}s, e.g. "
                    + "; ".join(f"{t}: {last.get(t)}" for t in sample)
                )
            batch = sorted(pending)[:200]
            for start in range(0, len(batch), 10):
                chunk = batch[start : start + 10]
                results = await asyncio.gather(*(settled(t) for t in chunk))
                pending -= {t for t, ok in zip(chunk, results, strict=True) if ok}
            if pending:
                await asyncio.sleep(1.0)
        # Solved after the check of its survey may have raced: one more look at the surveys.
        for ticket_id in stream.solved:
            items = (await survey.get("/v1/surveys", params={"ticket_id": ticket_id})).json()
            assert len(items["items"]) == 1, f"{ticket_id}: {items}"
    return time.monotonic() - started


async def check_no_dead_letters(stack: ServeStack) -> None:
    prefix = stack.env["TICKETFLOW_TOPIC_PREFIX"]
    bootstrap = stack.env["TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS"]
    for topic in CONTRACT_TOPICS:
        records = await read_topic(bootstrap, f"{prefix}{topic}.dlq")
        assert not records, f"{len(records)} dead letters on {prefix}{topic}.dlq: " + repr(
            [(r.headers, r.value[:200]) for _, _, r in records[:3]]
        )


def check_http(stream: WebhookStream) -> None:
    assert not stream.violations, stream.violations[:5]
    print(f"\n  {len(stream.created)} tickets accepted, {len(stream.solved)} solves; "
          f"answers: {dict(stream.statuses)}")  # fmt: skip


async def run_stream_around(
    stack: FaultStack, fault: Callable[[WebhookStream], Awaitable[None]], name: str
) -> None:
    stream = WebhookStream(stack.url("router"))
    stream.start()
    try:
        await asyncio.sleep(5)  # a steady state first
        await fault(stream)
        await asyncio.sleep(5)  # and some traffic after the fault
    finally:
        await stream.stop()
    check_http(stream)
    catch_up = await check_nothing_lost_or_doubled(stack, stream)
    await check_no_dead_letters(stack)
    print(f"  {name}: every accepted ticket complete {catch_up:.1f}s after the stream stopped")


async def test_postgres_crash_under_load(fault_stack: FaultStack) -> None:
    cluster = fault_stack.cluster
    assert cluster is not None

    async def crash_postgres(stream: WebhookStream) -> None:
        await asyncio.to_thread(cluster.stop, "immediate")
        await asyncio.sleep(10)
        await asyncio.to_thread(cluster.start)
        restarted = time.monotonic()

        async def accepting() -> bool:
            return stream.last_accepted > restarted

        took = await wait_until(accepting, 120, "router accepting webhooks again")
        print(f"\n  PostgreSQL back: router accepted webhooks again after {took:.1f}s")

    await run_stream_around(fault_stack, crash_postgres, "postgres crash")
    for service in ("router", "sla", "survey"):
        async with fault_stack.client(service) as client:
            assert (await client.get("/readyz")).status_code == 200


async def test_broker_frozen_under_load(fault_stack: FaultStack) -> None:
    broker = fault_stack.broker
    assert broker is not None

    async def freeze_broker(stream: WebhookStream) -> None:
        broker.pause()
        try:
            await asyncio.sleep(6)
            async with fault_stack.client("router") as router:
                ready = await router.get("/readyz")
            print(f"\n  broker frozen: router /readyz {ready.status_code} {ready.text[:200]}")
            assert ready.status_code == 503
            assert ready.json()["error"]["details"][0]["dependency"] == "bus"
            await asyncio.sleep(12)
        finally:
            broker.resume()

    await run_stream_around(fault_stack, freeze_broker, "broker pause")


async def test_kill_9_under_load(fault_stack: FaultStack) -> None:
    async def kill(stream: WebhookStream) -> None:
        for service in ("sla", "router"):
            fault_stack.kill(service)
            await asyncio.sleep(2)
            started = time.monotonic()
            await asyncio.to_thread(fault_stack.start, service)
            print(
                f"\n  kill -9 {service}: ready again {time.monotonic() - started:.1f}s after restart"
            )
            await asyncio.sleep(3)

    await run_stream_around(fault_stack, kill, "kill -9")


async def test_sigterm_under_load_stops_gracefully(fault_stack: FaultStack) -> None:
    async def terminate(stream: WebhookStream) -> None:
        for service in ("router", "sla", "survey"):
            process = fault_stack.processes.pop(service)
            started = time.monotonic()
            status = await asyncio.to_thread(process.terminate, 90.0)
            took = time.monotonic() - started
            print(f"\n  SIGTERM {service}: exit status {status} after {took:.1f}s")
            assert status == 0, f"{service} exited with {status}"
            await asyncio.to_thread(fault_stack.start, service)
            await asyncio.sleep(2)

    await run_stream_around(fault_stack, terminate, "SIGTERM")
