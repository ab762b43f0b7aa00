"""``ticketflow bench`` keeps working: every scenario at tiny size, as a user runs it.

Runs the real command in its own process (it starts its own broker, database and services) and
checks that every figure is printed and written to ``--json``. Never asserts on timing values:
benchmarks are programs that print figures, not timed assertions.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

TINY = [
    "--duration", "1", "--warmup", "0.2", "--rounds", "1", "--concurrency", "4",
    "--tickets", "20", "--rate", "20", "--history", "10",
    "--timers", "2000", "--spread", "20", "--spread-seconds", "1", "--storm", "50",
]  # fmt: skip

PRINTED = [
    "accepted/s", "latency p50", "latency p99", "server CPU per request", "errors",
    "tickets assigned/s", "assigned and sla started/s", "webhook→ticket.assigned p99", "webhook→sla.started p99",
    "consumer lag at end", "lateness p50", "lateness p99", "lateness max",
    "drained", "sla peak RSS", "database per 1M timers",
]  # fmt: skip


def test_bench_all_prints_and_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "bench", "all", *TINY, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for figure in PRINTED:
        assert figure in result.stdout, figure
    assert "[bench" in result.stderr  # progress goes to stderr, not into the table

    document = json.loads(out.read_text())
    assert set(document["scenarios"]) == {"intake", "pipeline", "timers"}
    assert document["machine"]["cpus"] >= 1
    intake = document["scenarios"]["intake"]
    for side in ("ticketflow", "baseline"):
        figures = intake[side]
        assert figures["accepted"] > 0 and figures["errors"] == 0
        for key in (
            "accepted_per_s",
            "latency_p50_ms",
            "latency_p99_ms",
            "server_cpu_ms_per_request",
        ):
            assert figures[key] is not None, (side, key)
    assert intake["ratio"] is not None

    pipeline = document["scenarios"]["pipeline"]
    assert pipeline["accepted"] == pipeline["routed"] == pipeline["completed"] == 20
    assert pipeline["options"]["history"] == 10
    for key in (
        "assigned_per_s", "end_to_end_per_s", "end_to_end_ratio", "intake_only_per_s", "ratio",
        "assigned_p50_ms",
        "assigned_p99_ms", "sla_started_p50_ms", "sla_started_p99_ms",
        "machine_cpu_ms_per_ticket", "postgres_cpu_ms_per_ticket", "cores_needed_at_offered_rate",
    ):  # fmt: skip
        assert pipeline[key] is not None, key
    assert set(pipeline["consumer_lag_end"]) == {"router", "sla"}

    timers = document["scenarios"]["timers"]
    assert timers["spread_fired"] == 20 and timers["storm_fired"] == 50
    for key in (
        "lateness_p50_ms", "lateness_p99_ms", "lateness_max_ms", "storm_drain_s",
        "sla_peak_rss_mb", "db_bytes_per_1m_timers",
    ):  # fmt: skip
        assert timers[key] is not None, key
    assert timers["baseline_sweeps"]["chatwoot_zammad_5min"]["lateness_p50_s"] == 150.0


def test_bench_refuses_bad_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "services.cli", "bench", "intake", "--duration", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--duration must be positive" in result.stderr
