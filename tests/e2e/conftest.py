"""e2e: ticketflow's processes as a user runs them, driven over HTTP."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from standardwebhooks import Webhook

from services.launcher import ServiceProcess, TansuBroker, free_port
from tests.conftest import ADMIN_KEY, READER_KEY, RUN_ID, create_database, drop_database

GENERIC_SECRET = "whsec_" + base64.b64encode(b"e2e-generic-secret-0123456789").decode()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


def signed_generic(body: dict, delivery_id: str | None = None) -> tuple[bytes, dict[str, str]]:
    """A generic webhook body and its Standard Webhooks headers."""
    raw = json.dumps(body).encode()
    delivery_id = delivery_id or f"msg_{uuid.uuid4().hex}"
    now = datetime.now(UTC)
    signature = Webhook(GENERIC_SECRET).sign(delivery_id, now, raw.decode())
    return raw, {
        "webhook-id": delivery_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
        "content-type": "application/json",
    }


@dataclass
class ServeStack:
    """router, sla and survey as three ``ticketflow serve`` processes on Kafka + PostgreSQL."""

    env: dict[str, str]
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    processes: dict[str, ServiceProcess] = field(default_factory=dict)

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def client(self, service: str, key: str = ADMIN_KEY) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.url(service), headers={"Authorization": f"Bearer {key}"}, timeout=15
        )

    def start(self, service: str) -> None:
        self.ports.setdefault(service, free_port())
        process = ServiceProcess.serve(
            service, self.ports[service], self.env, log_path=self.logs / f"{service}.log"
        )
        process.start(timeout=90)
        self.processes[service] = process

    def kill(self, service: str) -> None:
        self.processes.pop(service).kill()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()
        self.processes.clear()


@pytest.fixture(scope="module")
async def serve_stack(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ServeStack]:
    broker = TansuBroker()
    await asyncio.to_thread(broker.start)
    name = f"tf_e2e_{RUN_ID}_{uuid.uuid4().hex[:4]}"
    url = await create_database(name)
    logs = tmp_path_factory.mktemp("logs")
    env = {
        "TICKETFLOW_DATABASE_URL": url,
        "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
        "TICKETFLOW_TOPIC_PREFIX": f"e2e{uuid.uuid4().hex[:6]}.",
        "TICKETFLOW_TOPIC_PARTITIONS": "4",
        "TICKETFLOW_API_KEYS": f"{ADMIN_KEY}:admin,{READER_KEY}:reader",
        "TICKETFLOW_WEBHOOK_SECRET_GENERIC": GENERIC_SECRET,
        "TICKETFLOW_LOG_FORMAT": "json",
        "TICKETFLOW_OUTBOX_POLL_SECONDS": "0.2",
    }
    # The production recipe: migrate first, as the compose file's one-shot step does.
    migrate = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "services.cli", "migrate", "all"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        cwd=logs,
    )
    assert migrate.returncode == 0, migrate.stderr
    stack = ServeStack(env=env, logs=logs)
    try:
        for service in ("router", "sla", "survey"):
            await asyncio.to_thread(stack.start, service)
        yield stack
    finally:
        await asyncio.to_thread(stack.stop_all)
        await asyncio.to_thread(broker.stop)
        await drop_database(name)
