"""``bench pipeline``: N tickets offered at a fixed rate through intake → router → sla on Kafka
and PostgreSQL, observed on the broker the way any downstream consumer sees them.

The figure with the target is routing's: tickets assigned per second in the run's steady state
(``steady_rate``: over the middle 80 % of the tickets, in the order they were sent, the time
from one assignment seen on the broker to the next, by least squares) against the door's own
rate measured the same way on its 202s, so ratio 1.0 means routing keeps up with the door. The
bench still waits for every ticket's ``sla.started`` (sla) too and reports that rate and its
latencies beside it. The measured tickets come after ``--history`` tickets and a ``VACUUM
ANALYZE`` (``_history``), so they meet a database with rows and planner statistics.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from services.bench.intake import cpu_seconds, run_loadgen
from services.bench.report import Row, fmt, ms, percentile, ratio
from services.bench.runner import ADMIN_KEY, WEBHOOK_SECRET, BenchEnv, progress
from services.launcher import ServiceProcess

TARGET_RATIO = 1.0
# webhook → ticket.assigned at the offered rate.
TARGET_ASSIGNED_P50_MS = 1000.0
TARGET_ASSIGNED_P99_MS = 5000.0
AGENT_CAPACITY = 10_000  # the API's maximum per channel
# The observer's fetch wait. Each event is timed by its record's timestamp, not by when the
# observer's fetch brought it, so the wait adds nothing to a figure; it only sets how often the
# observer asks. Tansu answers a fetch when the wait ends, and it answers each one by listing
# every batch the partition has stored: a 20 ms wait (50 fetches a second over 16 partitions)
# made the broker's CPU grow through a run, from 0.18 to 0.34 of a core over 15,000 tickets,
# taking it from the services it measured.
FETCH_MAX_WAIT_MS = 500
# The share of a run's tickets at each end that its steady-state rates leave out.
STEADY_TRIM = 0.1


@dataclass
class PipelineOptions:
    tickets: int = 5000
    rate: float = 500.0
    concurrency: int = 64
    agents: int = 10
    timeout: float = 180.0
    # Tickets sent through before the measured ones, for the database's history (``_history``).
    history: int = 2500


class Observer:
    """First time each ticket's ``ticket.assigned`` and ``sla.started`` are seen on the broker.

    An event's time is its record's timestamp: the moment the service's outbox relay put it on
    the broker (Kafka's CreateTime, set by the relay's producer a linger, 2 ms, before the
    broker appends it; or the broker's own LogAppendTime where a topic is set to it). That is
    when any downstream consumer could first have it, whenever this observer's fetch comes
    back."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = AIOKafkaConsumer(
            *topics,
            bootstrap_servers=bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
        )
        self.seen: dict[str, dict[str, float]] = {"ticket.assigned": {}, "sla.started": {}}
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.keep_types: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.consumer.start()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        # A fetch at a time and orjson: the observer shares the CPU with what it measures.
        while True:
            fetched = await self.consumer.getmany(timeout_ms=FETCH_MAX_WAIT_MS)
            now = time.time()
            for messages in fetched.values():
                for message in messages:
                    if message.value is None:
                        continue
                    at = message.timestamp / 1000 if message.timestamp > 0 else now
                    envelope = orjson.loads(message.value)
                    kind = envelope.get("type")
                    seen = self.seen.get(kind)
                    if seen is not None:
                        seen.setdefault(str(envelope.get("subject")), at)
                    if kind in self.keep_types:
                        self.events.append((at, envelope))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
        await self.consumer.stop()


async def consumer_lag(bootstrap: str, groups: dict[str, tuple[str, str]]) -> dict[str, int | None]:
    """Messages each consumer group has not yet committed, per service (None if unavailable);
    ``groups`` maps a service to its consumer group and the topic it reads.

    End and committed offsets are read by a consumer carrying the group's id that never
    subscribes, so it never joins the group nor disturbs its members.
    """
    lags: dict[str, int | None] = {}
    for service, (group, topic) in groups.items():
        reader = AIOKafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
        )
        try:
            await reader.start()
            await reader.topics()  # the cluster's metadata, for the topic's partitions
            numbers = reader.partitions_for_topic(topic) or set()
            partitions = sorted(TopicPartition(topic, number) for number in numbers)
            ends = await reader.end_offsets(partitions)
            lag = 0
            for tp in partitions:
                committed = await reader.committed(tp)
                lag += max(0, ends[tp] - (committed or 0))
            lags[service] = lag
        except Exception as exc:  # a broker without the API: report, don't fail the run
            progress(f"consumer lag of {group}: unavailable ({exc!r})")
            lags[service] = None
        finally:
            with contextlib.suppress(Exception):
                await reader.stop()
    return lags


async def create_agents(router_url: str, count: int) -> None:
    async with httpx.AsyncClient(
        base_url=router_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30
    ) as client:
        for number in range(count):
            response = await client.put(
                f"/v1/agents/bench-agent-{number}",
                json={
                    "name": f"Bench Agent {number}",
                    "email": f"agent{number}@bench.invalid",
                    "capacity": {"web": AGENT_CAPACITY},
                    "status": "online",
                },
            )
            response.raise_for_status()


async def db_statements(client: httpx.AsyncClient, port: int) -> float | None:
    """``ticketflow_db_statements_total`` of one process, from its /metrics (None if absent)."""
    try:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
        response.raise_for_status()
    except httpx.HTTPError:
        return None
    total = None
    for family in text_string_to_metric_families(response.text):
        if family.name == "ticketflow_db_statements":
            total = sum(s.value for s in family.samples if s.name.endswith("_total"))
    return total


@dataclass
class ServiceProcesses:
    """The processes of one service in a run (router: one ``--role all``, or one api and
    ``workers`` workers), whose counters are read together."""

    api_port: int
    processes: list[tuple[ServiceProcess, int]]

    async def statements(self) -> float | None:
        async with httpx.AsyncClient(timeout=10) as client:
            counts = [await db_statements(client, port) for _, port in self.processes]
        return None if any(c is None for c in counts) else sum(c or 0 for c in counts)

    def cpu(self) -> float | None:
        seconds = [cpu_seconds(process.pid) for process, _ in self.processes]
        return None if any(s is None for s in seconds) else sum(s or 0 for s in seconds)


def start_routers(env: BenchEnv, workers: int) -> ServiceProcesses:
    if workers == 0:
        process, port = env.start_service("router")
        return ServiceProcesses(port, [(process, port)])
    api, api_port = env.start_service("router", role="api", name="router-api")
    started = [(api, api_port)]
    for number in range(1, workers + 1):
        started.append(env.start_service("router", role="worker", name=f"router-worker{number}"))
    return ServiceProcesses(api_port, started)


def machine_cpu() -> dict[str, float] | None:
    """CPU seconds used so far on the whole machine (every process, the kernel's work for them
    included) and by PostgreSQL's processes, from Linux ``/proc``; None elsewhere."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # user nice system idle iowait irq softirq steal: all but idle and iowait are busy
    busy = sum(int(fields[i]) for i in (0, 1, 2, 5, 6, 7) if i < len(fields))
    postgres = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, _, rest = (entry / "stat").read_text().partition(") ")
        except OSError:
            continue  # gone meanwhile
        if name.endswith("(postgres"):
            values = rest.split()
            postgres += int(values[11]) + int(values[12])
    return {"busy": busy / tick, "postgres": postgres / tick}


def _budget(
    before: dict[str, float] | None, after: dict[str, float] | None, tickets: int, rate: float
) -> dict[str, Any]:
    """The machine's CPU per ticket over a run, and the cores that cost needs at ``rate``."""
    if before is None or after is None or not tickets:
        return dict.fromkeys(
            (
                "machine_cpu_ms_per_ticket",
                "postgres_cpu_ms_per_ticket",
                "cores_needed_at_offered_rate",
                "cores",
            )
        )
    machine = 1000 * (after["busy"] - before["busy"]) / tickets
    return {
        "machine_cpu_ms_per_ticket": round(machine, 2),
        "postgres_cpu_ms_per_ticket": round(
            1000 * (after["postgres"] - before["postgres"]) / tickets, 2
        ),
        "cores_needed_at_offered_rate": round(machine * rate / 1000, 2),
        "cores": os.cpu_count(),
    }


def steady_rate(times: list[float | None], trim: float = STEADY_TRIM) -> float | None:
    """Tickets per second out of a stage in a run's steady state. ``times`` holds each ticket's
    time out of the stage, in the order the tickets were sent (None for one that never came
    out). Over the middle ``1 - 2 * trim`` of the tickets, the least-squares slope of that time
    against the ticket's place in the order is the time between one ticket and the next; its
    inverse is the rate. A stage that keeps up with the door has the door's slope, whatever its
    latency; one that falls behind has a steeper one (its latency grows through the run).

    Counted between first and last instead, the window would also hold how much longer the
    last ticket took than the first, which crossed an idle pipeline; and any count over a
    window hangs on the two tickets at its ends, which a stage working in batches lets out in
    bursts."""
    cut = int(trim * len(times))
    points = [(i, t) for i, t in enumerate(times) if t is not None and cut <= i < len(times) - cut]
    if len(points) < 3:
        return None
    slope = statistics.linear_regression([i for i, _ in points], [t for _, t in points]).slope
    return 1.0 / slope if slope > 0 else None


def _per_ticket(
    before: float | None, after: float | None, tickets: int, scale: float = 1.0
) -> float | None:
    if before is None or after is None or not tickets:
        return None
    return round(scale * (after - before) / tickets, 2)


async def run_pipeline(env: BenchEnv, options: PipelineOptions, workers: int = 0) -> dict[str, Any]:
    """One run; ``workers`` > 0 serves router as one ``--role api`` process (the door) and that
    many ``--role worker`` processes in one consumer group instead of one ``--role all``."""
    routers = start_routers(env, workers)
    sla = ServiceProcesses(0, [env.start_service("sla")])  # the same counters, read from sla
    router_url = f"http://127.0.0.1:{routers.api_port}"
    agents = max(
        options.agents, math.ceil((options.tickets + options.history) / AGENT_CAPACITY) + 1
    )
    await create_agents(router_url, agents)
    # What the figures look at (router's lag on inbound is read from offsets at the end).
    topics = [f"{env.topic_prefix}{name}" for name in ("tickets", "sla")]
    observer = Observer(env.bootstrap, topics)
    await observer.start()
    await _warm_up(router_url, observer, options)
    await _history(env, router_url, observer, options)
    statements_before, cpu_before = await routers.statements(), routers.cpu()
    sla_statements_before, sla_cpu_before = await sla.statements(), sla.cpu()
    machine_before = machine_cpu()
    try:
        progress(f"pipeline: offering {options.tickets} tickets at {options.rate:g}/s")
        result = await _offer(router_url, "pipeline", options.tickets, options)
        sends: dict[str, list[float]] = result["sends"]
        assigned, started = observer.seen["ticket.assigned"], observer.seen["sla.started"]
        deadline = time.monotonic() + options.timeout
        last_report = 0.0
        while time.monotonic() < deadline:
            done = sum(1 for t in sends if t in assigned and t in started)
            if done == len(sends):
                break
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                progress(
                    f"  pipeline: {len(sends)} accepted, {sum(t in assigned for t in sends)} "
                    f"assigned, {sum(t in started for t in sends)} with sla started"
                )
            await asyncio.sleep(0.2)
        machine_after = machine_cpu()
        cpu_after, statements_after = routers.cpu(), await routers.statements()
        sla_cpu_after, sla_statements_after = sla.cpu(), await sla.statements()
        lag = await consumer_lag(
            env.bootstrap,
            {
                service: (f"{env.topic_prefix}{service}", f"{env.topic_prefix}{topic}")
                for service, topic in (("router", "inbound"), ("sla", "tickets"))
            },
        )
    finally:
        await observer.stop()

    complete = [t for t in sends if t in assigned and t in started]
    routed = sum(1 for t in sends if t in assigned)
    first_send = min((s[0] for s in sends.values()), default=None)
    door_end = max((s[1] for s in sends.values()), default=None)
    routed_times = [assigned[t] for t in sends if t in assigned]
    by_send = sorted(sends, key=lambda t: sends[t][0])

    def rate(count: int, times: list[float], start: float | None = None) -> float | None:
        """``count`` over the time from ``start`` (the first of ``times``) to the last."""
        start = min(times, default=None) if start is None else start
        end = max(times, default=None)
        return count / (end - start) if start and end and end > start else None

    # Each stage's throughput is its own output rate in the run's steady state (``steady_rate``):
    # a stage that keeps up with the door has the door's rate, however long each ticket takes
    # to cross it (that is the latency rows' business). ``*_first_to_last`` counts from each
    # stage's first output to its last; ``*_from_first_send`` from the first webhook.
    door_rate = steady_rate([sends[t][1] for t in by_send])
    routed_rate = steady_rate([assigned.get(t) for t in by_send])
    e2e_rate = steady_rate(
        [max(assigned[t], started[t]) if t in assigned and t in started else None for t in by_send]
    )
    door_first_to_last = rate(len(sends), [first_send or 0.0, door_end or 0.0])
    routed_first_to_last = rate(routed, routed_times)
    tenth = max(1, len(by_send) // 10)
    to_assigned = [assigned[t] - sends[t][0] for t in sends if t in assigned]
    to_started = [started[t] - sends[t][0] for t in sends if t in started]
    value = ratio(routed_rate, door_rate)
    assigned_p50, assigned_p99 = (
        ms(percentile(to_assigned, 0.50)),
        ms(percentile(to_assigned, 0.99)),
    )
    return {
        "options": vars(options),
        "router_workers": workers,
        "offered_per_s": options.rate,
        "accepted": len(sends),
        "intake_errors": result["errors"],
        "routed": routed,
        "completed": len(complete),
        "intake_only_per_s": _round(door_rate),
        "assigned_per_s": _round(routed_rate),
        "assigned_per_s_first_to_last": _round(routed_first_to_last),
        "intake_only_per_s_first_to_last": _round(door_first_to_last),
        "ratio_first_to_last": ratio(routed_first_to_last, door_first_to_last),
        "assigned_per_s_from_first_send": _round(rate(routed, routed_times, first_send)),
        # Assigned and with sla started: the whole pipeline, sla included.
        "end_to_end_per_s": _round(e2e_rate),
        "end_to_end_ratio": ratio(e2e_rate, door_rate),
        "assigned_p50_ms": assigned_p50,
        "assigned_p99_ms": assigned_p99,
        # Whether routing kept up all along: the latency of the first and last tenth of the
        # tickets sent (it grows through the run when routing falls behind).
        "assigned_p50_first_tenth_ms": _tenth_p50(by_send[:tenth], sends, assigned),
        "assigned_p50_last_tenth_ms": _tenth_p50(by_send[-tenth:], sends, assigned),
        "sla_started_p50_ms": ms(percentile(to_started, 0.50)),
        "sla_started_p99_ms": ms(percentile(to_started, 0.99)),
        # Every router process, the door included (its webhook insert and outbox row).
        "statements_per_ticket": _per_ticket(statements_before, statements_after, routed),
        "router_cpu_ms_per_ticket": _per_ticket(cpu_before, cpu_after, routed, 1000.0),
        # sla's share: every event of the ticket it handled (created, assigned, ...).
        "sla_statements_per_ticket": _per_ticket(
            sla_statements_before, sla_statements_after, len(to_started)
        ),
        "sla_cpu_ms_per_ticket": _per_ticket(
            sla_cpu_before, sla_cpu_after, len(to_started), 1000.0
        ),
        # Everything the machine spent from the first webhook until the last ticket had both
        # (the load generator, the observer, the broker and PostgreSQL included), per ticket.
        **_budget(machine_before, machine_after, len(complete), options.rate),
        "consumer_lag_end": lag,
        "ratio": value,
        "target_ratio": TARGET_RATIO,
        "met": value is not None and value >= TARGET_RATIO and len(complete) == options.tickets,
        "met_latency": (
            assigned_p50 is not None
            and assigned_p99 is not None
            and assigned_p50 < TARGET_ASSIGNED_P50_MS
            and assigned_p99 < TARGET_ASSIGNED_P99_MS
        ),
    }


def _tenth_p50(
    tickets: list[str], sends: dict[str, list[float]], seen: dict[str, float]
) -> float | None:
    return ms(percentile([seen[t] - sends[t][0] for t in tickets if t in seen], 0.50))


async def _offer(
    router_url: str, prefix: str, count: int, options: PipelineOptions
) -> dict[str, Any]:
    """``count`` signed tickets (ids ``bench:<prefix>-<i>``) posted to router's door by the load
    generator at the offered rate; its summary."""
    return await run_loadgen(
        "open",
        "--url",
        f"{router_url}/v1/webhooks/generic",
        "--secret",
        WEBHOOK_SECRET,
        "--prefix",
        prefix,
        "--concurrency",
        str(options.concurrency),
        "--count",
        str(count),
        "--rate",
        str(options.rate),
    )


# How long the warm-up ticket may take to cross the pipeline.
WARM_UP_TIMEOUT_S = 60.0


async def _warm_up(router_url: str, observer: Observer, options: PipelineOptions) -> None:
    """One ticket through the whole pipeline before the measured ones: until then the services'
    consumer groups may still be forming (a broker holds a new group's first rebalance for a few
    seconds), which would put a start-up stall into the first tickets' latency and the rates."""
    await _offer(router_url, "pipeline-warm-up", 1, options)
    await _crossed(observer, ["bench:pipeline-warm-up-0"], WARM_UP_TIMEOUT_S, "the warm-up ticket")
    progress("pipeline: the warm-up ticket crossed it")


async def _crossed(observer: Observer, tickets: list[str], within: float, what: str) -> None:
    """Wait until every one of ``tickets`` has each event the observer looks for; raise after
    ``within`` seconds."""
    deadline = time.monotonic() + within
    while not all(t in seen for seen in observer.seen.values() for t in tickets):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not cross the pipeline in {within:g}s")
        await asyncio.sleep(0.05)


async def _history(
    env: BenchEnv, router_url: str, observer: Observer, options: PipelineOptions
) -> None:
    """``options.history`` tickets through the pipeline at the offered rate, then ``VACUUM
    ANALYZE``, before the measured ones: the database they meet has rows, and the planner
    statistics autovacuum keeps in production. A database created for the run has neither.
    Its statements are planned (and the plans kept, five executions on) for empty tables, and
    some read whole tables as the run fills them: sla's batch write touching ``sla.tickets``,
    the timer scheduler's poll, router's look-up of a requester's earlier agents. Measured in a
    fresh database, each got slower through the run (sla's write from 0.5 to 2.3 ms), and with
    them the latency; production plans them once autovacuum first analyzes (within a minute or
    so of a table's first rows). The requesters repeat (``cust-<i % 1000>``), so the measured
    tickets' requesters have earlier tickets, as a helpdesk's returning customers do."""
    if options.history <= 0:
        return
    progress(f"pipeline: {options.history} tickets of history first")
    await _offer(router_url, "pipeline-history", options.history, options)
    tickets = [f"bench:pipeline-history-{i}" for i in range(options.history)]
    await _crossed(observer, tickets, options.timeout, "the history's tickets")
    connection = await asyncpg.connect(env.dsn)
    try:
        await connection.execute("VACUUM ANALYZE")
    finally:
        await connection.close()


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


SCALE_OUT_KEYS = (
    "assigned_per_s",
    "end_to_end_per_s",
    "intake_only_per_s",
    "ratio",
    "completed",
    "assigned_p50_ms",
    "assigned_p99_ms",
    "statements_per_ticket",
    "router_cpu_ms_per_ticket",
)


async def run_scale_out(
    environment: Callable[[str], AbstractAsyncContextManager[BenchEnv]], options: PipelineOptions
) -> dict[str, Any]:
    """The same pipeline served by one router api process and 1, then 2, worker processes
    (each run with its own database and broker); ``ratio`` is the 2-worker assignment rate
    over the 1-worker one."""
    runs: dict[str, dict[str, Any]] = {}
    for workers in (1, 2):
        progress(f"pipeline scale-out: router api + {workers} worker(s)")
        async with environment(f"pipeline-workers{workers}") as env:
            figures = await run_pipeline(env, options, workers)
        runs[f"workers_{workers}"] = {key: figures[key] for key in SCALE_OUT_KEYS}
    return {
        **runs,
        "ratio": ratio(runs["workers_2"]["assigned_per_s"], runs["workers_1"]["assigned_per_s"]),
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    lag = figures["consumer_lag_end"]

    def rate(label: str, ours: str, door: str, versus: str, target: str = "") -> Row:
        """A rate against the door's: the keys of ours, the door's and their ratio."""
        return (
            "pipeline",
            label,
            fmt(figures[ours]),
            fmt(figures[door]),
            fmt(figures[versus]),
            target,
        )

    return [
        ("pipeline", "offered tickets/s", fmt(figures["offered_per_s"]), "", "", ""),
        rate(
            "tickets assigned/s, steady (vs intake)",
            "assigned_per_s",
            "intake_only_per_s",
            "ratio",
            f">= {TARGET_RATIO} ({_met(figures['met'])})",
        ),
        rate(
            "  first assignment to last",
            "assigned_per_s_first_to_last",
            "intake_only_per_s_first_to_last",
            "ratio_first_to_last",
        ),
        rate(
            "  assigned and sla started/s",
            "end_to_end_per_s",
            "intake_only_per_s",
            "end_to_end_ratio",
        ),
        (
            "pipeline",
            "completed / accepted",
            f"{figures['completed']:,} / {figures['accepted']:,}",
            "",
            "",
            "all",
        ),
        (
            "pipeline",
            "webhook→ticket.assigned p50",
            fmt(figures["assigned_p50_ms"], " ms"),
            "",
            "",
            f"< {TARGET_ASSIGNED_P50_MS:,.0f} ms ({_met(figures['met_latency'])})",
        ),
        (
            "pipeline",
            "webhook→ticket.assigned p99",
            fmt(figures["assigned_p99_ms"], " ms"),
            "",
            "",
            f"< {TARGET_ASSIGNED_P99_MS:,.0f} ms ({_met(figures['met_latency'])})",
        ),
        (
            "pipeline",
            "  p50, first / last tenth sent",
            f"{fmt(figures['assigned_p50_first_tenth_ms'])} / "
            f"{fmt(figures['assigned_p50_last_tenth_ms'], ' ms')}",
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "webhook→sla.started p50",
            fmt(figures["sla_started_p50_ms"], " ms"),
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "webhook→sla.started p99",
            fmt(figures["sla_started_p99_ms"], " ms"),
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "consumer lag at end (router/sla)",
            f"{fmt(lag.get('router'))} / {fmt(lag.get('sla'))}",
            "",
            "",
            "0",
        ),
        ("pipeline", "intake errors", fmt(figures["intake_errors"]), "", "", "0"),
        (
            "pipeline",
            "router SQL statements per ticket",
            fmt(figures["statements_per_ticket"]),
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "router CPU per ticket",
            fmt(figures["router_cpu_ms_per_ticket"], " ms"),
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "sla SQL statements / CPU per ticket",
            f"{fmt(figures.get('sla_statements_per_ticket'))} / "
            f"{fmt(figures.get('sla_cpu_ms_per_ticket'), ' ms')}",
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "machine CPU per ticket (PostgreSQL)",
            f"{fmt(figures.get('machine_cpu_ms_per_ticket'), ' ms')} "
            f"({fmt(figures.get('postgres_cpu_ms_per_ticket'), ' ms')})",
            "",
            "",
            "",
        ),
        (
            "pipeline",
            "  cores that needs at the offered rate",
            f"{fmt(figures.get('cores_needed_at_offered_rate'))} of {fmt(figures.get('cores'))}",
            "",
            "",
            "",
        ),
        *scale_out_rows(figures.get("scale_out")),
    ]


def _met(met: bool) -> str:
    return "met" if met else "MISSED"


def scale_out_rows(scale_out: dict[str, Any] | None) -> list[Row]:
    if not scale_out:
        return []
    one, two = scale_out["workers_1"], scale_out["workers_2"]
    return [
        (
            "pipeline",
            "scale-out: assigned/s, 2 router workers (vs 1)",
            fmt(two["assigned_per_s"]),
            fmt(one["assigned_per_s"]),
            fmt(scale_out["ratio"]),
            "",
        ),
        (
            "pipeline",
            "scale-out: assigned p50, 2 workers (vs 1)",
            fmt(two["assigned_p50_ms"], " ms"),
            fmt(one["assigned_p50_ms"], " ms"),
            "",
            "",
        ),
    ]
