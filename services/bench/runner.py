"""What every scenario needs: a fresh PostgreSQL database, a broker, the service processes.

A run creates its own database on the server of ``TICKETFLOW_DATABASE_URL`` (or the local
PostgreSQL when that setting is SQLite) and drops it at the end; it starts a Tansu broker unless
``--kafka`` names one, with a topic prefix of its own so runs never see each other's events.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from services.launcher import ServiceProcess, TansuBroker, free_port
from shared.migrate import upgrade_all
from shared.settings import Settings

LOCAL_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
ADMIN_KEY = "bench-admin-key"
# A Standard Webhooks secret: ``whsec_`` + base64 of 24 random bytes, fresh per run.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


def progress(message: str) -> None:
    """Progress goes to stderr so that stdout holds only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    url = make_url(sqlalchemy_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


@dataclass
class BenchEnv:
    """One run's database, broker and logs; ``service_env`` configures ``ticketflow serve``."""

    database_url: str
    bootstrap: str
    topic_prefix: str
    log_dir: Path
    scenario: str = "bench"
    profile_dir: Path | None = None
    processes: list[ServiceProcess] = field(default_factory=list)
    profilers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def dsn(self) -> str:
        return asyncpg_dsn(self.database_url)

    def service_env(self) -> dict[str, str]:
        return {
            "TICKETFLOW_DATABASE_URL": self.database_url,
            "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "TICKETFLOW_TOPIC_PREFIX": self.topic_prefix,
            "TICKETFLOW_API_KEYS": f"{ADMIN_KEY}:admin",
            "TICKETFLOW_WEBHOOK_SECRET_GENERIC": WEBHOOK_SECRET,
            # The per-source intake rate limit would measure the limiter, not the door.
            "TICKETFLOW_INTAKE_RATE_PER_SECOND": "100000",
            "TICKETFLOW_INTAKE_BURST": "1000000",
            # Production logging minus per-request info lines (the baseline logs nothing).
            "TICKETFLOW_LOG_LEVEL": "warning",
            "TICKETFLOW_LOG_FORMAT": "json",
        }

    def start_service(
        self, service: str, role: str = "all", name: str | None = None
    ) -> tuple[ServiceProcess, int]:
        """``ticketflow serve <service> --role <role>``; ``name`` tells its log and profile
        apart from other processes of the same service."""
        name = name or service
        port = free_port()
        process = ServiceProcess.serve(
            service, port, self.service_env(), role=role, log_path=self.log_dir / f"{name}.log"
        )
        progress(f"starting ticketflow serve {service} --role {role} on :{port}")
        process.start(timeout=90)
        self.processes.append(process)
        self.profile(process, name)
        return process, port

    def profile(self, process: ServiceProcess, name: str) -> None:
        """With ``--profile DIR``: py-spy samples the process until it exits (collapsed stacks)."""
        if self.profile_dir is None or process.pid is None:
            return
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not os.access(py_spy, os.X_OK):
            raise RuntimeError("--profile needs py-spy: pip install -e '.[dev]' or py-spy")
        output = self.profile_dir / f"{self.scenario}-{name}.txt"
        command = [py_spy, "record", "--pid", str(process.pid), "--format", "raw"]
        command += ["--output", str(output), "--rate", "100", "--nonblocking"]
        self.profilers.append(
            subprocess.Popen(
                command,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.processes.clear()
        for profiler in self.profilers:  # each writes its file once its process has exited
            try:
                profiler.wait(30)
            except subprocess.TimeoutExpired:
                profiler.terminate()
        self.profilers.clear()


async def _admin_connection(server_url: str) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(asyncpg_dsn(server_url))
    except (OSError, asyncpg.PostgresError) as exc:
        where = make_url(server_url).set(password=None).render_as_string()
        raise RuntimeError(f"PostgreSQL at {where} is required: {exc}") from exc


@contextlib.asynccontextmanager
async def fresh_database(settings: Settings) -> AsyncIterator[str]:
    """A new, migrated database on the settings' PostgreSQL server, dropped afterwards."""
    server_url = settings.database_url
    if not server_url.startswith("postgresql+asyncpg://"):
        server_url = LOCAL_POSTGRES
    name = f"tf_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await _admin_connection(server_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    try:
        progress(f"database {name}: migrating")
        await upgrade_all(url)
        yield url
    finally:
        admin = await _admin_connection(server_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.contextmanager
def broker(bootstrap: str | None) -> Iterator[str]:
    """The given Kafka bootstrap servers, or a Tansu broker of this run."""
    if bootstrap:
        yield bootstrap
        return
    tansu = TansuBroker()
    tansu.start()
    progress(f"Tansu broker on {tansu.bootstrap}")
    try:
        yield tansu.bootstrap
    finally:
        tansu.stop()


def _keep_logs_if_failed(logs: Path, scenario: str, failed: bool) -> None:
    if failed and any(logs.iterdir()):
        progress(f"{scenario} failed; service logs kept in {logs}")
    else:
        shutil.rmtree(logs, ignore_errors=True)


@contextlib.asynccontextmanager
async def bench_env(
    settings: Settings, kafka: str | None, scenario: str, profile_dir: Path | None = None
) -> AsyncIterator[BenchEnv]:
    """Broker, database and service processes for one scenario; the services' logs are kept
    (and named) only when the scenario fails."""
    logs = Path(tempfile.mkdtemp(prefix=f"tf-bench-{scenario}-"))
    failed = True
    try:
        with broker(kafka) as bootstrap:
            async with fresh_database(settings) as url:
                env = BenchEnv(
                    database_url=url,
                    bootstrap=bootstrap,
                    topic_prefix=f"bench{uuid.uuid4().hex[:8]}.",
                    log_dir=logs,
                    scenario=scenario,
                    profile_dir=profile_dir,
                )
                try:
                    yield env
                finally:
                    env.stop_all()
        failed = False
    finally:
        _keep_logs_if_failed(logs, scenario, failed)
