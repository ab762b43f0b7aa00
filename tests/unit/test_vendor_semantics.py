"""SLA and survey semantics of issue 13 in the embedded mode (SQLite + in-memory bus); the same
scenario runs on PostgreSQL + the broker in tests/integration/test_flow_kafka_postgres.py."""

from __future__ import annotations

import httpx

from tests.vendor_support import sla_and_survey_semantics


async def test_sla_and_survey_semantics(embedded: dict[str, httpx.AsyncClient]) -> None:
    await sla_and_survey_semantics(embedded)
