"""``bench intake``: signed webhooks at a fixed concurrency for a fixed time, ticketflow's router
against the baseline receiver, alternating (ticketflow, baseline, ticketflow, ...)."""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from typing import Any

from services.bench.report import Row, fmt, ms, percentile, ratio
from services.bench.runner import WEBHOOK_SECRET, BenchEnv, progress
from services.launcher import ServiceProcess, free_port

TARGET_RATIO = 0.7


@dataclass
class IntakeOptions:
    concurrency: int = 32
    duration: float = 10.0
    warmup: float = 2.0
    rounds: int = 2


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
    return process, port


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
    }


async def run_intake(env: BenchEnv, options: IntakeOptions) -> dict[str, Any]:
    _, router_port = env.start_service("router")
    _, baseline_port = start_baseline(env)
    targets = {
        "ticketflow": f"http://127.0.0.1:{router_port}/v1/webhooks/generic",
        "baseline": f"http://127.0.0.1:{baseline_port}/v1/webhooks/generic",
    }
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    for number in range(options.rounds):
        for name, url in targets.items():
            progress(
                f"intake round {number + 1}/{options.rounds}: {name}, "
                f"{options.concurrency} connections, {options.warmup:g}+{options.duration:g}s"
            )
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
            runs[name].append(result)
            progress(
                f"  {name}: {result['accepted'] / result['duration_s']:.0f} accepted/s, "
                f"{result['errors']} errors"
            )
    ticketflow, baseline = summarize(runs["ticketflow"]), summarize(runs["baseline"])
    value = ratio(ticketflow["accepted_per_s"], baseline["accepted_per_s"])
    return {
        "options": vars(options),
        "ticketflow": ticketflow,
        "baseline": baseline,
        "ratio": value,
        "target_ratio": TARGET_RATIO,
        "met": value is not None and value >= TARGET_RATIO,
    }


def rows(figures: dict[str, Any]) -> list[Row]:
    tf, base = figures["ticketflow"], figures["baseline"]
    latency_ratio_50 = ratio(tf["latency_p50_ms"], base["latency_p50_ms"])
    latency_ratio_99 = ratio(tf["latency_p99_ms"], base["latency_p99_ms"])
    return [
        (
            "intake",
            "accepted/s",
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
        ("intake", "errors", fmt(tf["errors"]), fmt(base["errors"]), "", "0"),
    ]
