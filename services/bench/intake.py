"""``bench intake``: signed webhooks at a fixed concurrency for a fixed time, ticketflow's router
against the baseline receiver, alternating (ticketflow, baseline, ticketflow, ...)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
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


async def run_intake(env: BenchEnv, options: IntakeOptions) -> dict[str, Any]:
    router, router_port = env.start_service("router")
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
        (
            "intake",
            "server CPU per request",
            fmt(tf["server_cpu_ms_per_request"], " ms"),
            fmt(base["server_cpu_ms_per_request"], " ms"),
            fmt(ratio(tf["server_cpu_ms_per_request"], base["server_cpu_ms_per_request"])),
            "",
        ),
        ("intake", "errors", fmt(tf["errors"]), fmt(base["errors"]), "", "0"),
    ]
