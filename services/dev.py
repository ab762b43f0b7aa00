"""``ticketflow dev``: the three services in one process on an in-process bus and SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from services.apps import create_service
from services.server import config as server_config
from services.server import settle_heap
from shared.bus import MemoryBus
from shared.migrate import upgrade_all
from shared.runtime import ServiceRuntime, stop_together
from shared.settings import SERVICES, Settings

log = logging.getLogger("ticketflow.dev")

DEV_API_KEYS = "dev-admin-key:admin,dev-reader-key:reader"


class _Server(uvicorn.Server):
    # Three servers share one loop: signals are handled once, by run_dev.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            raise SystemExit(f"ticketflow dev: port {port} is in use (try --port-base)") from exc


async def run_dev(settings: Settings, port_base: int, data_dir: Path, demo: bool) -> int:
    """Serve until SIGINT/SIGTERM; ``data_dir`` must exist and be absolute."""
    ports = {service: port_base + i for i, service in enumerate(SERVICES)}
    for port in ports.values():
        _check_port_free(port)
    updates: dict[str, object] = {
        "database_url": f"sqlite+aiosqlite:///{data_dir / 'ticketflow.db'}",
        "public_base_url": f"http://127.0.0.1:{ports['survey']}",
        "router_url": f"http://127.0.0.1:{ports['router']}",
        "survey_url": f"http://127.0.0.1:{ports['survey']}",
        # One process does everything, whatever TICKETFLOW_PROCESS_ROLE says.
        "process_role": "all",
    }
    if not settings.api_keys:
        updates["api_keys"] = DEV_API_KEYS
    settings = settings.model_copy(update=updates)
    await upgrade_all(settings.database_url)

    bus = MemoryBus(partitions=settings.topic_partitions, max_retries=settings.consumer_max_retries)
    await bus.start()
    apps = [create_service(service, settings, bus=bus) for service in SERVICES]
    for app in apps:
        # Stopped together below, so that no event in flight on the in-process bus is lost.
        app.state.runtime_stopped_by_owner = True
    if demo:
        for app in apps:
            app.state.not_ready_reason = "seeding demo data"
    servers = [
        _Server(server_config(app, "127.0.0.1", ports[service], lifespan="on"))
        for service, app in zip(SERVICES, apps, strict=True)
    ]

    loop = asyncio.get_running_loop()

    def stop() -> None:
        for server in servers:
            server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)

    serving = [asyncio.create_task(server.serve()) for server in servers]
    while not all(server.started for server in servers):
        if any(task.done() for task in serving):
            stop()
            await asyncio.gather(*serving, return_exceptions=True)
            await stop_together(_runtimes(apps), bus, drain_seconds=5)
            await bus.stop()
            return 1
        await asyncio.sleep(0.05)

    if demo:
        from services.demo import seed

        await seed(
            f"http://127.0.0.1:{ports['router']}",
            f"http://127.0.0.1:{ports['sla']}",
            f"http://127.0.0.1:{ports['survey']}",
            _admin_key(settings),
            sla_runtime=apps[SERVICES.index("sla")].state.runtime,
        )
        for app in apps:
            app.state.not_ready_reason = None
    settle_heap()
    print(banner(settings, ports, data_dir, dev_keys="api_keys" in updates), flush=True)
    await asyncio.gather(*serving, return_exceptions=True)
    # The HTTP servers have finished their requests; now the events those caused.
    await stop_together(_runtimes(apps), bus)
    await bus.stop()
    return 0


def _runtimes(apps: list[FastAPI]) -> list[ServiceRuntime]:
    return [app.state.runtime for app in apps if getattr(app.state, "runtime", None) is not None]


def _admin_key(settings: Settings) -> str:
    return _key_of(settings, "admin")


def _key_of(settings: Settings, role: str) -> str:
    return next((k for k, r in settings.api_key_roles().items() if r == role), "")


def banner(settings: Settings, ports: dict[str, int], data_dir: Path, *, dev_keys: bool) -> str:
    """What ``ticketflow dev`` prints once it is ready: where everything is, and the keys."""
    lines = [
        "",
        f"ticketflow dev is running (in-process bus, SQLite in {data_dir}):",
        *(f"  {s:<7} http://127.0.0.1:{p}  (API docs: /docs)" for s, p in ports.items()),
        f"  console http://127.0.0.1:{ports['sla']}/console",
    ]
    if dev_keys:  # keys the user set are theirs to know; ours are printed
        lines += [
            f"  API key (admin):  {_key_of(settings, 'admin')}",
            f"  API key (reader): {_key_of(settings, 'reader')}",
        ]
    lines += ["Press Ctrl+C to stop.", ""]
    return "\n".join(lines)
