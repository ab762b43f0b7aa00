"""docker-compose.yml cannot run here (no Docker engine): check it against the Compose
specification and against ticketflow's own CLI and settings instead. Also .env.example."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml
from compose_pydantic import ComposeSpecification

from services.cli import _parser
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS = {f"TICKETFLOW_{name.upper()}" for name in Settings.model_fields}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    # The spec allows top-level ``x-`` extension fields (our YAML anchors, merged in already);
    # the generated models do not know that pattern, so they are set aside here.
    spec = {key: value for key, value in compose.items() if not key.startswith("x-")}
    ComposeSpecification.model_validate(spec)


def test_every_ticketflow_service_runs_a_real_cli_command(compose: dict[str, Any]) -> None:
    services = compose["services"]
    expected = {
        "migrate": ["migrate", "all"],
        "router": ["serve", "router"],
        "sla": ["serve", "sla"],
        "survey": ["serve", "survey"],
    }
    for name, args in expected.items():
        command = services[name]["command"]
        assert command[0] == "ticketflow"
        parsed = _parser().parse_args(command[1:])  # exits (fails the test) on a bad command
        assert command[1 : 1 + len(args)] == args
        if parsed.command == "serve":
            port = parsed.port
            assert f"{port}:{port}" in services[name]["ports"]
            assert f"127.0.0.1:{port}/readyz" in " ".join(services[name]["healthcheck"]["test"])


def test_services_get_the_right_settings(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("migrate", "router", "sla", "survey"):
        env = services[name]["environment"]
        unknown = set(env) - SETTINGS
        assert not unknown, f"{name} sets unknown variables {unknown}"
        database = env["TICKETFLOW_DATABASE_URL"]
        assert database.startswith("postgresql+asyncpg://") and "@postgres:5432/" in database
        user, password = re.match(r"postgresql\+asyncpg://(\w+):(\w+)@", database).groups()  # type: ignore[union-attr]
        pg_env = services["postgres"]["environment"]
        assert (pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"]) == (user, password)
        assert database.rsplit("/", 1)[1] == pg_env["POSTGRES_DB"]
        assert env["TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS"] == services["kafka"]["environment"][
            "KAFKA_ADVERTISED_LISTENERS"
        ].removeprefix("PLAINTEXT://")
    for name in ("router", "sla", "survey"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["kafka"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"


def test_kafka_runs_in_kraft_mode(compose: dict[str, Any]) -> None:
    kafka = compose["services"]["kafka"]
    env = kafka["environment"]
    assert kafka["image"].startswith("apache/kafka:")
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert "zookeeper" not in yaml.safe_dump(compose).lower()
    node = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node}@kafka:")
    assert "healthcheck" in kafka and "healthcheck" in compose["services"]["postgres"]


def test_dockerfile_installs_the_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install ." in dockerfile
    for folder in ("shared", "services", "migrations"):
        assert f"COPY {folder}" in dockerfile
    assert "alembic.ini" in dockerfile


def test_env_example_lists_every_setting_with_its_default() -> None:
    lines = [
        line
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    listed = dict(line.split("=", 1) for line in lines)
    assert set(listed) == SETTINGS
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else str(field.default)
        assert listed[f"TICKETFLOW_{name.upper()}"] == default, name
    # And it is a valid settings file as it stands.
    assert shlex.split(lines[0])
