"""``bench intake``: signed webhooks at a fixed concurrency for a fixed time, ticketflow's router
against the baseline receiver, alternating (ticketflow, baseline, ticketflow, ...)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from services.bench.report import Row, fmt, ms, percentile, ratio
from services.bench.runner import WEBHOOK_SECRET, BenchEnv, progress
from services.launcher import ServiceProcess, free_port

TARGET_RATIO = 0.7
TARGET_CPU_RATIO = 1.5
ROUTE = "/v1/webhooks/generic"
# How long the router's consumer may take to apply a round's webhooks before the next round.
DRAIN_TIMEOUT_S = 60.0


@dataclass
class IntakeOptions:
    concurrency: int = 32
    duration: float = 10.0
    warmup: float = 2.0
    rounds: int = 2
    # router's ``--role``: ``api`` is the door alone, as production deploys it (its events wait
    # on the broker for workers this scenario does not start): the counterpart of the bare
    # receiver. ``all`` also applies the webhooks in the same process, as ``ticketflow dev``.
    role: str = "api"


async def run_loadgen(*args: str) -> dict[str, Any]:
    """The load generator in its own process; returns its JSON summary."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.bench.loadgen",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"load generator failed: {stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(stdout)
    return result


def start_baseline(env: BenchEnv) -> tuple[ServiceProcess, int]:
    port = free_port()
    process = ServiceProcess(
        ["--port", str(port), "--dsn", env.dsn, "--secret", WEBHOOK_SECRET],
        ready_urls=[f"http://127.0.0.1:{port}/readyz"],
        log_path=env.log_dir / "baseline.log",
        module="services.bench.baseline",
    )
    progress(f"starting baseline receiver on :{port}")
    process.start(timeout=60)
    env.processes.append(process)
    env.profile(process, "baseline")
    return process, port


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process so far (Linux ``/proc``), None elsewhere."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def router_counters(port: int) -> dict[str, float]:
    """The router's own counters from ``/metrics``: statements it sent (from the webhook route,
    and in all), webhooks it answered 202, and events its consumer took."""
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    counters = dict.fromkeys(("door_statements", "statements", "answered", "consumed"), 0.0)
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue
            labels = sample.labels
            if sample.name == "ticketflow_db_statements_total":
                counters["statements"] += sample.value
                if labels.get("origin") == ROUTE:
                    counters["door_statements"] += sample.value
            elif sample.name == "ticketflow_http_requests_total":
                if labels.get("route") == ROUTE and labels.get("status") == "202":
                    counters["answered"] += sample.value
            elif sample.name == "ticketflow_events_consumed_total":
                counters["consumed"] += sample.value
    return counters


async def wait_for_consumer(port: int, before: dict[str, float]) -> dict[str, float]:
    """Wait until the router's consumer has taken every event accepted since ``before`` (one
    per generic webhook), so that no backlog runs into the next round; the counters then."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_S
    while True:
        now = await router_counters(port)
        behind = (now["answered"] - before["answered"]) - (now["consumed"] - before["consumed"])
        if behind <= 0 or time.monotonic() > deadline:
            return now
        await asyncio.sleep(0.2)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    latencies = [value for run in runs for value in run["latencies_s"]]
    seconds = sum(run["duration_s"] for run in runs)
    accepted = sum(run["accepted"] for run in runs)
    return {
        "accepted_per_s": round(accepted / seconds, 1) if seconds else None,
        "latency_p50_ms": ms(percentile(latencies, 0.50)),
        "latency_p99_ms": ms(percentile(latencies, 0.99)),
        "accepted": accepted,
        "errors": sum(run["errors"] for run in runs),
        "rounds_per_s": [round(run["accepted"] / run["duration_s"], 1) for run in runs],
        # The receiving process's own CPU per accepted request (warmup included, PostgreSQL not).
        "server_cpu_ms_per_request": _cpu_per_request(runs),
    }


def _cpu_per_request(runs: list[dict[str, Any]]) -> float | None:
    cpu: list[float] = [run["server_cpu_s"] for run in runs if run.get("server_cpu_s") is not None]
    if len(cpu) != len(runs):
        return None
    requests = sum(run["accepted"] * (1 + run["warmup_s"] / run["duration_s"]) for run in runs)
    return round(1000 * sum(cpu) / requests, 2) if requests else None


def router_figures(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """What the router's counters say over its rounds (warmup included)."""
    answered = sum(run["answered"] for run in runs)
    drained: list[float] = [
        run["drained_cpu_s"] for run in runs if run["drained_cpu_s"] is not None
    ]

    def per_request(total: float) -> float | None:
        return round(total / answered, 2) if answered else None

    return {
        # Statements the webhook route sent per 202 (BEGIN/COMMIT counted; autocommit has none).
        "statements_per_request": per_request(sum(run["door_statements"] for run in runs)),
        # Every statement of the process (its consumer applying the tickets, the relay) per 202.
        "all_statements_per_request": per_request(sum(run["statements"] for run in runs)),
        # Seconds the consumer still needed after a round to apply its webhooks (the longest).
        "consumer_drain_s": round(max(run["drain_s"] for run in runs), 2),
        # Router CPU from the round's start until its consumer had applied the round's
        # webhooks, per 202: the whole cost of a webhook in the process.
        "server_cpu_ms_per_request_drained": (
            per_request(1000 * sum(drained)) if len(drained) == len(runs) else None
        ),
    }


async def run_intake(env: BenchEnv, options: IntakeOptions) -> dict[str, Any]:
    router, router_port = env.start_service("router", role=options.role)
    receiver, baseline_port = start_baseline(env)
    targets = {
        "ticketflow": f"http://127.0.0.1:{router_port}/v1/webhooks/generic",
        "baseline": f"http://127.0.0.1:{baseline_port}/v1/webhooks/generic",
    }
    pids = {"ticketflow": router.pid, "baseline": receiver.pid}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for number in range(options.rounds):
        for name, url in targets.items():
            progress(
                f"intake round {number + 1}/{options.rounds}: {name}, "
                f"{options.concurrency} connections, {options.warmup:g}+{options.duration:g}s"
            )
            counters = await router_counters(router_port) if name == "ticketflow" else None
            before = cpu_seconds(pids[name])
            result = await run_loadgen(
                "closed",
                "--url",
                url,
                "--secret",
                WEBHOOK_SECRET,
                "--prefix",
                f"intake-{name}-{number}",
                "--concurrency",
                str(options.concurrency),
                "--warmup",
                str(options.warmup),
                "--duration",
                str(options.duration),
            )
            after = cpu_seconds(pids[name])
            result["warmup_s"] = options.warmup
            result["server_cpu_s"] = None if after is None or before is None else after - before
            if counters is not None:
                applies = options.role == "all"  # an api process has no consumer to wait for
                result.update(await _drain(router_port, router.pid, counters, before, applies))
            runs[name].append(result)
            progress(
                f"  {name}: {result['accepted'] / result['duration_s']:.0f} accepted/s, "
                f"{result['errors']} errors"
            )
    ticketflow, baseline = summarize(runs["ticketflow"]), summarize(runs["baseline"])
    ticketflow.update(router_figures(runs["ticketflow"]))
    value = ratio(ticketflow["accepted_per_s"], baseline["accepted_per_s"])
    cpu = ratio(ticketflow["server_cpu_ms_per_request"], baseline["server_cpu_ms_per_request"])
    return {
        "options": vars(options),
        "ticketflow": ticketflow,
        "baseline": baseline,
        "ratio": value,
        "target_ratio": TARGET_RATIO,
        "met": value is not None and value >= TARGET_RATIO,
        "cpu_ratio": cpu,
        "target_cpu_ratio": TARGET_CPU_RATIO,
        "cpu_met": cpu is not None and cpu <= TARGET_CPU_RATIO,
    }


async def _drain(
    port: int, pid: int | None, counters: dict[str, float], cpu_before: float | None, applies: bool
) -> dict[str, Any]:
    """After a ticketflow round: wait for its consumer (when the process ``applies`` the
    webhooks), then the round's router counters."""
    began = time.monotonic()
    if applies:
        after = await wait_for_consumer(port, counters)
        progress(f"  router consumer caught up {time.monotonic() - began:.1f}s after the round")
    else:
        after = await router_counters(port)
    drain_s = time.monotonic() - began
    cpu_after = cpu_seconds(pid)
    return {
        **{key: after[key] - counters[key] for key in ("door_statements", "statements")},
        "answered": after["answered"] - counters["answered"],
        "drain_s": drain_s,
        "drained_cpu_s": None
        if cpu_after is None or cpu_before is None
        else cpu_after - cpu_before,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    tf, base = figures["ticketflow"], figures["baseline"]
    latency_ratio_50 = ratio(tf["latency_p50_ms"], base["latency_p50_ms"])
    latency_ratio_99 = ratio(tf["latency_p99_ms"], base["latency_p99_ms"])
    return [
        (
            "intake",
            f"accepted/s (router --role {figures['options'].get('role', 'all')})",
            fmt(tf["accepted_per_s"]),
            fmt(base["accepted_per_s"]),
            fmt(figures["ratio"]),
            f">= {TARGET_RATIO} ({'met' if figures['met'] else 'MISSED'})",
        ),
        (
            "intake",
            "latency p50",
            fmt(tf["latency_p50_ms"], " ms"),
            fmt(base["latency_p50_ms"], " ms"),
            fmt(latency_ratio_50),
            "",
        ),
        (
            "intake",
            "latency p99",
            fmt(tf["latency_p99_ms"], " ms"),
            fmt(base["latency_p99_ms"], " ms"),
            fmt(latency_ratio_99),
            "",
        ),
        (
            "intake",
            "server CPU per request",
            fmt(tf["server_cpu_ms_per_request"], " ms"),
            fmt(base["server_cpu_ms_per_request"], " ms"),
            fmt(figures.get("cpu_ratio")),
            f"<= {TARGET_CPU_RATIO} ({'met' if figures.get('cpu_met') else 'MISSED'})",
        ),
        (
            "intake",
            "CPU per request, consumer drained",
            fmt(tf.get("server_cpu_ms_per_request_drained"), " ms"),
            "",
            "",
            "",
        ),
        (
            "intake",
            "SQL statements per request",
            fmt(tf.get("statements_per_request")),
            "1",
            "",
            "",
        ),
        (
            "intake",
            "  same, whole process",
            fmt(tf.get("all_statements_per_request")),
            "",
            "",
            "",
        ),
        ("intake", "errors", fmt(tf["errors"]), fmt(base["errors"]), "", "0"),
    ]
