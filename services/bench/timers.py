"""``bench timers``: M open timers in the sla store, K of them due at spread instants, then a storm
of S due at one instant; lateness is measured as each ``sla.breached`` is seen on the broker.

The M background timers are written straight into ``sla.timers`` with server-side multi-row
INSERT ... SELECT from ``generate_series`` (fast; the same rows the sla service writes for a
running ``resolution`` timer around the clock, due 1 to 30 days ahead). The K + S timers under
test are inserted the same way once the sla process runs, due a few seconds ahead.

Baseline, on paper: the periodic sweep helpdesks run today (Chatwoot and Zammad every 5 minutes,
Frappe Helpdesk every 60). With due times uniform over the interval, a sweep fires a timer
between 0 and one interval late: mean and p50 = interval/2, p99 = 0.99 x interval, max = interval;
a storm waits for the next sweep just the same.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from services.bench.pipeline import Observer
from services.bench.report import Row, fmt, ms, percentile, ratio
from services.bench.runner import BenchEnv, progress

TARGET_P99_S = 1.0
TARGET_STORM_S = 5.0
SWEEPS = {"chatwoot_zammad_5min": 300.0, "frappe_60min": 3600.0}
LOAD_BATCH = 100_000
TARGET_MINUTES = 60

_INSERT = f"""
INSERT INTO sla.timers (id, ticket_id, metric, cycle, status, policy_id, calendar_id,
    target_minutes, started_at, due_at, paused_seconds, consumed_seconds, segment_started_at,
    warn_at, escalations, priority, next_fire_at, fired)
SELECT $1::text || g, 'bench:' || $1::text || g, 'resolution', 0, 'running', 'default', NULL,
    {TARGET_MINUTES}, d - interval '{TARGET_MINUTES} minutes', d, 0, 0,
    d - interval '{TARGET_MINUTES} minutes', '[]'::jsonb, '[]'::jsonb, 'normal', d, '[]'::jsonb
FROM (SELECT g, {{due}} AS d FROM {{source}}) AS rows
"""

BACKGROUND = _INSERT.format(
    due="$4::timestamptz + (g % 2592000) * interval '1 second'",
    source="generate_series($2::bigint, $3::bigint) AS g",
)
UNDER_TEST = _INSERT.format(
    due="due", source="unnest($2::bigint[], $3::timestamptz[]) AS t(g, due)"
)


@dataclass
class TimerOptions:
    timers: int = 1_000_000
    spread: int = 2000
    spread_seconds: float = 20.0
    storm: int = 10_000
    lead_seconds: float = 3.0
    timeout: float = 120.0


async def load_background(dsn: str, count: int) -> float:
    """Insert ``count`` open timers due 1 to 30 days ahead; returns the seconds it took."""
    began = time.monotonic()
    base = datetime.now(UTC) + timedelta(days=1)
    connection = await asyncpg.connect(dsn)
    try:
        for start in range(0, count, LOAD_BATCH):
            end = min(count, start + LOAD_BATCH) - 1
            await connection.execute(BACKGROUND, "bg-", start, end, base)
            progress(f"  timers: {end + 1:,}/{count:,} loaded ({time.monotonic() - began:.0f}s)")
        await connection.execute("ANALYZE sla.timers")
    finally:
        await connection.close()
    return time.monotonic() - began


def peak_rss_mb(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


async def run_timers(env: BenchEnv, options: TimerOptions) -> dict[str, Any]:
    progress(f"timers: loading {options.timers:,} open timers into sla.timers")
    load_seconds = await load_background(env.dsn, options.timers)
    connection = await asyncpg.connect(env.dsn)
    try:
        table_bytes = await connection.fetchval("SELECT pg_total_relation_size('sla.timers')")
    finally:
        await connection.close()
    sla, _ = env.start_service("sla")
    observer = Observer(env.bootstrap, [f"{env.topic_prefix}sla"])
    observer.keep_types = {"sla.breached"}
    await observer.start()
    try:
        now = datetime.now(UTC)
        first_due = now + timedelta(seconds=options.lead_seconds)
        spread_dues = [
            first_due + timedelta(seconds=options.spread_seconds * i / max(1, options.spread))
            for i in range(options.spread)
        ]
        storm_at = first_due + timedelta(seconds=options.spread_seconds + options.lead_seconds)
        connection = await asyncpg.connect(env.dsn)
        try:
            await connection.execute(
                UNDER_TEST, "spread-", list(range(options.spread)), spread_dues
            )
            await connection.execute(
                UNDER_TEST, "storm-", list(range(options.storm)), [storm_at] * options.storm
            )
        finally:
            await connection.close()
        progress(
            f"timers: {options.spread:,} due over {options.spread_seconds:g}s, "
            f"storm of {options.storm:,} at {storm_at:%H:%M:%S}"
        )
        expected = options.spread + options.storm
        deadline = (
            time.monotonic() + options.lead_seconds * 2 + options.spread_seconds + options.timeout
        )
        last_report = 0.0
        while time.monotonic() < deadline and len(observer.events) < expected:
            if time.monotonic() - last_report > 5:
                last_report = time.monotonic()
                progress(f"  timers: {len(observer.events):,}/{expected:,} breaches seen")
            await asyncio.sleep(0.2)
        rss = peak_rss_mb(sla.pid)
    finally:
        await observer.stop()

    spread_late: list[float] = []
    fired_late: list[float] = []
    storm_seen: list[float] = []
    storm_fired: list[float] = []
    for seen_at, envelope in observer.events:
        data = envelope.get("data") or {}
        timer_id = str(data.get("timer_id", ""))
        due = parse_time(data["due_at"])
        if timer_id.startswith("spread-"):
            spread_late.append(seen_at - due)
            fired_late.append(parse_time(data["fired_at"]) - due)
        elif timer_id.startswith("storm-"):
            storm_seen.append(seen_at)
            storm_fired.append(parse_time(data["fired_at"]))
    storm_drain = (
        max(storm_seen) - storm_at.timestamp() if len(storm_seen) == options.storm else None
    )
    p99 = percentile(spread_late, 0.99)
    sweeps = {
        name: {
            "lateness_p50_s": interval / 2,
            "lateness_p99_s": 0.99 * interval,
            "lateness_max_s": interval,
            "storm_drain_max_s": interval,
        }
        for name, interval in SWEEPS.items()
    }
    return {
        "options": vars(options),
        "open_timers": options.timers,
        "load_seconds": round(load_seconds, 1),
        "spread_fired": len(spread_late),
        "lateness_p50_ms": ms(percentile(spread_late, 0.50)),
        "lateness_p99_ms": ms(p99),
        "lateness_max_ms": ms(max(spread_late, default=None)),
        "fired_at_lateness_p99_ms": ms(percentile(fired_late, 0.99)),
        "storm_fired": len(storm_seen),
        "storm_drain_s": None if storm_drain is None else round(storm_drain, 2),
        # The scheduler's share of the drain: the last storm timer's fired_at (commit-side).
        "storm_fired_within_s": (
            round(max(storm_fired) - storm_at.timestamp(), 2) if storm_drain is not None else None
        ),
        "sla_peak_rss_mb": rss,
        "db_bytes_per_1m_timers": (
            int(table_bytes * 1_000_000 / options.timers) if options.timers else None
        ),
        "baseline_sweeps": sweeps,
        "ratio_p99_vs_5min_sweep": ratio(sweeps["chatwoot_zammad_5min"]["lateness_p99_s"], p99),
        "target_p99_s": TARGET_P99_S,
        "target_storm_s": TARGET_STORM_S,
        "met_p99": p99 is not None and len(spread_late) == options.spread and p99 < TARGET_P99_S,
        "met_storm": storm_drain is not None and storm_drain <= TARGET_STORM_S,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    sweep = figures["baseline_sweeps"]["chatwoot_zammad_5min"]
    frappe = figures["baseline_sweeps"]["frappe_60min"]
    paper = f"{sweep['lateness_p99_s']:g} s / {frappe['lateness_p99_s']:g} s"

    def met(flag: bool) -> str:
        return "met" if flag else "MISSED"

    db = figures["db_bytes_per_1m_timers"]
    return [
        (
            "timers",
            "open timers (loaded in)",
            f"{figures['open_timers']:,} ({figures['load_seconds']:g} s)",
            "",
            "",
            "",
        ),
        (
            "timers",
            "lateness p50",
            fmt(figures["lateness_p50_ms"], " ms"),
            f"{sweep['lateness_p50_s']:g} s / {frappe['lateness_p50_s']:g} s",
            "",
            "",
        ),
        (
            "timers",
            "lateness p99",
            fmt(figures["lateness_p99_ms"], " ms"),
            paper,
            fmt(figures["ratio_p99_vs_5min_sweep"], "x"),
            f"< {TARGET_P99_S:g} s ({met(figures['met_p99'])})",
        ),
        (
            "timers",
            "  lateness p99 by fired_at",
            fmt(figures["fired_at_lateness_p99_ms"], " ms"),
            "",
            "",
            "",
        ),
        (
            "timers",
            "lateness max",
            fmt(figures["lateness_max_ms"], " ms"),
            f"{sweep['lateness_max_s']:g} s / {frappe['lateness_max_s']:g} s",
            "",
            "",
        ),
        (
            "timers",
            "spread timers fired",
            f"{figures['spread_fired']:,} / {figures['options']['spread']:,}",
            "",
            "",
            "all",
        ),
        (
            "timers",
            f"storm of {figures['options']['storm']:,} drained",
            fmt(figures["storm_drain_s"], " s"),
            f"<= {sweep['storm_drain_max_s']:g} s / {frappe['storm_drain_max_s']:g} s",
            "",
            f"<= {TARGET_STORM_S:g} s ({met(figures['met_storm'])})",
        ),
        (
            "timers",
            "  of which firing (last fired_at)",
            fmt(figures["storm_fired_within_s"], " s"),
            "",
            "",
            "",
        ),
        ("timers", "sla peak RSS", fmt(figures["sla_peak_rss_mb"], " MiB"), "", "", ""),
        (
            "timers",
            "database per 1M timers",
            "n/a" if db is None else f"{db / 2**20:,.0f} MiB",
            "",
            "",
            "",
        ),
    ]
