"""The ``ticketflow`` command: dev, serve, migrate, bench, dlq."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shared import telemetry
from shared.logging import configure_logging
from shared.settings import SERVICES, Settings, SettingsError, load_settings

ROLES = ("all", "api", "worker")
# The services whose background loops all belong to the worker side.
SPLIT_SERVICES = ("router",)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticketflow", description="Ticket routing, SLA and survey backend."
    )
    parser.add_argument("--version", action="version", version=f"ticketflow {version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    dev = commands.add_parser(
        "dev", help="all three services in one process: in-process bus, SQLite, no servers needed"
    )
    dev.add_argument("--port-base", type=int, default=8001, help="router port; sla +1, survey +2")
    dev.add_argument("--data-dir", type=Path, default=Path(".ticketflow"), help="SQLite files")
    dev.add_argument("--demo", action="store_true", help="seed example agents and policies")

    serve = commands.add_parser("serve", help="one service in production mode (Kafka + database)")
    serve.add_argument("service", choices=SERVICES)
    serve.add_argument("--host", default="0.0.0.0")
    serve.add_argument("--port", type=int, default=None, help="default: 8001/8002/8003")
    serve.add_argument(
        "--role",
        choices=ROLES,
        default=None,
        help="router only. all (default): everything; api: HTTP only; worker: consumers, outbox "
        "relay and the queue sweep, with only /healthz /readyz /metrics "
        "(TICKETFLOW_PROCESS_ROLE)",
    )

    migrate = commands.add_parser("migrate", help="upgrade database schemas to the newest revision")
    migrate.add_argument("service", nargs="?", default="all", choices=(*SERVICES, "all"))

    from services.bench.cli import add_parser as add_bench_parser
    from services.dlq import add_parser as add_dlq_parser

    add_bench_parser(commands)
    add_dlq_parser(commands)
    return parser


def version() -> str:
    """The installed ticketflow version."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("ticketflow")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
        if args.command == "dev":
            from services.dev import run_dev

            configure_logging(settings.log_level, "text", embedded=True)
            telemetry.configure("ticketflow")
            data_dir = args.data_dir.resolve()
            data_dir.mkdir(parents=True, exist_ok=True)
            return asyncio.run(run_dev(settings, args.port_base, data_dir, args.demo))
        configure_logging(settings.log_level, settings.log_format)
        if args.command == "serve":
            if args.role is not None:
                settings = settings.model_copy(update={"process_role": args.role})
            return _serve(settings, args.service, args.host, args.port)
        if args.command == "migrate":
            from shared.migrate import upgrade_all

            services = SERVICES if args.service == "all" else (args.service,)
            asyncio.run(upgrade_all(settings.database_url, services))
            print(f"migrated {', '.join(services)} to head", file=sys.stderr)
            return 0
        if args.command == "bench":
            from services.bench.cli import run_bench

            return run_bench(settings, args)
        if args.command == "dlq":
            from services.dlq import run_dlq

            return run_dlq(settings, args)
    except (SettingsError, telemetry.TelemetryConfigError) as exc:
        print(f"ticketflow: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return 2


def _serve(settings: Settings, service: str, host: str, port: int | None) -> int:
    from services.server import serve

    if not settings.kafka_bootstrap_servers:
        raise SettingsError("TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS: required by serve")
    if settings.process_role != "all" and service not in SPLIT_SERVICES:
        # sla's console feeds its HTTP clients from a background loop: it runs whole.
        raise SettingsError(
            f"--role {settings.process_role} (TICKETFLOW_PROCESS_ROLE): only "
            f"{', '.join(SPLIT_SERVICES)} splits into api and worker processes; "
            f"run {service} with --role all"
        )
    from services.apps import create_service, ops_only

    telemetry.configure(f"ticketflow-{service}")
    app: Any = create_service(service, settings)
    if settings.process_role == "worker":
        app = ops_only(app)
    try:
        serve(app, host, port or 8001 + SERVICES.index(service))
    finally:
        telemetry.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
