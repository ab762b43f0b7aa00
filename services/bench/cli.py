"""``ticketflow bench <intake|pipeline|timers|all> [options] [--json FILE]``."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shared.settings import Settings

# The scenario modules (asyncpg, aiokafka, the load generator) load only when ``bench`` runs, so
# that ``ticketflow dev`` and ``serve`` start no slower for having the subcommand.

SCENARIOS = ("intake", "pipeline", "timers", "goals", "all")


def add_parser(commands: Any) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure ticketflow against baselines on this machine",
        description="Starts a broker (or uses --kafka), a fresh PostgreSQL database and the "
        "services as real processes; prints a table, progress goes to stderr.",
    )
    bench.add_argument("scenario", choices=SCENARIOS)
    bench.add_argument("--json", type=Path, default=None, metavar="FILE", help="write figures")
    bench.add_argument("--kafka", default=None, help="bootstrap servers (default: a Tansu broker)")
    bench.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="sample every service process with py-spy; collapsed stacks in DIR",
    )
    group = bench.add_argument_group("intake")
    group.add_argument("--concurrency", type=int, default=32, help="connections (default 32)")
    group.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    group.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds per run (2)")
    group.add_argument("--rounds", type=int, default=2, help="ticketflow/baseline pairs (2)")
    group.add_argument(
        "--intake-role",
        choices=("all", "api"),
        default="api",
        help="router's --role: api (the door alone, as production runs it; the default) or all "
        "(the door and its consumer in one process, as the embedded default runs it)",
    )
    group = bench.add_argument_group("pipeline")
    group.add_argument("--tickets", type=int, default=5000, help="tickets offered (5000)")
    group.add_argument("--rate", type=float, default=500.0, help="tickets/s offered (500)")
    group.add_argument("--agents", type=int, default=10, help="online agents (10)")
    group.add_argument("--pipeline-timeout", type=float, default=180.0, help="drain limit (180 s)")
    group.add_argument(
        "--history",
        type=int,
        default=2500,
        help="tickets sent through, then VACUUM ANALYZE, before the measured ones (2500)",
    )
    group.add_argument(
        "--no-scale-out",
        dest="scale_out",
        action="store_false",
        help="skip the runs with 1 and 2 router worker processes",
    )
    group = bench.add_argument_group("timers")
    group.add_argument("--timers", type=int, default=1_000_000, help="open timers (1,000,000)")
    group.add_argument("--spread", type=int, default=2000, help="timers due at spread instants")
    group.add_argument("--spread-seconds", type=float, default=20.0, help="over this window (20)")
    group.add_argument("--storm", type=int, default=10_000, help="timers due at one instant")
    group.add_argument("--timers-timeout", type=float, default=120.0, help="drain limit (120 s)")
    group = bench.add_argument_group("goals (not part of 'all')")
    group.add_argument(
        "--goal-tickets", type=int, default=1_000_000, help="past samples (1,000,000)"
    )
    group.add_argument("--goal-count", type=int, default=20, help="goals read (20)")
    group.add_argument("--replay-tickets", type=int, default=100_000, help="timelines (100,000)")
    group.add_argument("--handled-tickets", type=int, default=300, help="per handling round (300)")


def _positive(args: argparse.Namespace) -> str | None:
    for name in (
        "concurrency",
        "duration",
        "rounds",
        "tickets",
        "goal_tickets",
        "goal_count",
        "replay_tickets",
        "handled_tickets",
        "rate",
        "agents",
        "spread_seconds",
    ):
        if getattr(args, name) <= 0:
            return f"--{name.replace('_', '-')} must be positive"
    for name in ("warmup", "timers", "spread", "storm"):
        if getattr(args, name) < 0:
            return f"--{name} must not be negative"
    return None


def run_bench(settings: Settings, args: argparse.Namespace) -> int:
    import asyncpg
    from aiokafka.errors import KafkaError

    problem = _positive(args)
    if problem:
        print(f"ticketflow bench: {problem}", file=sys.stderr)
        return 2
    # The bench's own HTTP calls and migrations are not news; its progress lines are.
    for name in ("httpx", "alembic", "aiokafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        return asyncio.run(_run(settings, args))
    except (RuntimeError, OSError, asyncpg.PostgresError, KafkaError) as exc:
        # Nothing to measure without PostgreSQL, a broker and the services: one clear line.
        print(f"ticketflow bench: {exc}", file=sys.stderr)
        return 1


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    from services.bench import goals, intake, pipeline, report, timers
    from services.bench.runner import bench_env, progress

    chosen = ("intake", "pipeline", "timers") if args.scenario == "all" else (args.scenario,)
    plans: dict[
        str, tuple[Callable[..., Any], Any, Callable[[dict[str, Any]], list[report.Row]]]
    ] = {
        "intake": (
            intake.run_intake,
            intake.IntakeOptions(
                args.concurrency, args.duration, args.warmup, args.rounds, args.intake_role
            ),
            intake.rows,
        ),
        "pipeline": (
            pipeline.run_pipeline,
            pipeline.PipelineOptions(
                args.tickets, args.rate, 64, args.agents, args.pipeline_timeout, args.history
            ),
            pipeline.rows,
        ),
        "timers": (
            timers.run_timers,
            timers.TimerOptions(
                args.timers,
                args.spread,
                args.spread_seconds,
                args.storm,
                timeout=args.timers_timeout,
            ),
            timers.rows,
        ),
        "goals": (
            goals.run_goals,
            goals.GoalsOptions(
                tickets=args.goal_tickets,
                goals=args.goal_count,
                replay=args.replay_tickets,
                handled=args.handled_tickets,
            ),
            goals.rows,
        ),
    }
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    document: dict[str, Any] = {
        "command": "ticketflow bench "
        + " ".join(sys.argv[2:] if len(sys.argv) > 2 else [args.scenario]),
        "started_at": datetime.now(UTC).isoformat(),
        "machine": report.machine(),
        "scenarios": {},
    }
    rows: list[report.Row] = []
    for name in chosen:
        run, options, to_rows = plans[name]
        progress(f"=== {name} ===")
        # Each scenario gets its own database and broker: nothing left over skews the next one.
        async with bench_env(settings, args.kafka, name, args.profile) as env:
            figures = await run(env, options)
        if name == "pipeline" and args.scale_out:
            figures["scale_out"] = await pipeline.run_scale_out(
                lambda tag: bench_env(settings, args.kafka, tag, args.profile), options
            )
            figures["scale_out_ratio"] = figures["scale_out"]["ratio"]
        document["scenarios"][name] = figures
        rows.extend(to_rows(figures))
    document["duration_s"] = round(time.monotonic() - began, 1)
    document["summary"] = summary(document["scenarios"])
    print(report.table(rows))
    print()
    for line in document["summary"]:
        print(line)
    print(f"total {document['duration_s']:g} s")
    if args.json is not None:
        report.write_json(args.json, document)
        progress(f"figures written to {args.json}")
    return 0


def summary(scenarios: dict[str, dict[str, Any]]) -> list[str]:
    from services.bench import goals, intake, pipeline

    lines = []
    if "intake" in scenarios:
        figures = scenarios["intake"]
        lines.append(
            f"intake: {figures['ratio']} of baseline (target >= {intake.TARGET_RATIO}): "
            + ("met" if figures["met"] else "MISSED")
        )
    if "pipeline" in scenarios:
        figures = scenarios["pipeline"]
        lines.append(
            f"pipeline: assigned/s {figures['ratio']} of the door at {figures['offered_per_s']:g} "
            f"tickets/s offered (target >= {pipeline.TARGET_RATIO}): "
            + ("met" if figures["met"] else "MISSED")
            + f"; assigned p50 {figures['assigned_p50_ms']} ms, p99 {figures['assigned_p99_ms']} ms"
            f" (target < {pipeline.TARGET_ASSIGNED_P50_MS:g} / {pipeline.TARGET_ASSIGNED_P99_MS:g}"
            " ms): " + ("met" if figures["met_latency"] else "MISSED")
        )
    if "timers" in scenarios:
        figures = scenarios["timers"]
        lines.append(
            f"timers: lateness p99 {figures['lateness_p99_ms']} ms (target < 1000 ms): "
            + ("met" if figures["met_p99"] else "MISSED")
            + f"; storm drained in {figures['storm_drain_s']} s (target <= 5 s): "
            + ("met" if figures["met_storm"] else "MISSED")
        )
    if "goals" in scenarios:
        figures = scenarios["goals"]
        lines.append(
            f"goals: attainment read p99 {figures['read_p99_ms']} ms (target < "
            f"{goals.TARGET_READ_P99_MS:g} ms): "
            + ("met" if figures["met_reads"] else "MISSED")
            + f"; what-if {figures['replay_s']} s (target < {goals.TARGET_REPLAY_S:g} s): "
            + ("met" if figures["met_replay"] else "MISSED")
            + f"; handling overhead {figures['overhead']} (target <= {goals.TARGET_OVERHEAD}): "
            + ("met" if figures["met_overhead"] else "MISSED")
        )
    return lines
