"""Every endpoint of every service, fuzzed from its own OpenAPI schema: never a 5xx.

Schemathesis generates valid and invalid requests per operation (with an admin key, so the
requests reach the business code) against a real ``ticketflow dev`` process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from services.launcher import ServiceProcess, free_port_range

HEADERS = {"Authorization": "Bearer dev-admin-key"}


@pytest.fixture(scope="module")
def dev_ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    base = free_port_range(3)
    folder = tmp_path_factory.mktemp("fuzz")
    process = ServiceProcess.dev(
        base,
        folder / "data",
        {"TICKETFLOW_API_KEYS": ""},
        demo=True,
        cwd=folder,
        log_path=folder / "dev.log",
    )
    process.start(90)
    yield base
    process.stop()
    log = (folder / "dev.log").read_text()
    assert "Traceback" not in log, log[-4000:]


FUZZ = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)


@pytest.mark.parametrize("offset", [0, 1, 2], ids=["router", "sla", "survey"])
def test_no_endpoint_answers_5xx(dev_ports: int, offset: int) -> None:
    # Schemathesis's pytest plugin does not support pytest 9 yet: drive its strategies directly.
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{dev_ports + offset}/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI schema has an invalid operation: {result}"
        operations.append(result.ok())
    assert operations
    for operation in operations:

        @FUZZ
        @given(case=operation.as_strategy())
        def fuzz(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=HEADERS, checks=[not_a_server_error])

        fuzz()


def test_schemas_cover_the_contract(dev_ports: int, tmp_path: Path) -> None:
    import httpx

    paths = {
        service: set(httpx.get(f"http://127.0.0.1:{dev_ports + i}/openapi.json").json()["paths"])
        for i, service in enumerate(("router", "sla", "survey"))
    }
    assert {
        "/v1/tickets",
        "/v1/tickets/{ticket_id}",
        "/v1/agents/{agent_id}",
        "/v1/routing-rules",
    } <= paths["router"]
    assert {
        "/v1/webhooks/zendesk",
        "/v1/webhooks/freshdesk",
        "/v1/webhooks/jira",
        "/v1/webhooks/generic",
        "/v1/providers/{provider}/mappings",
    } <= paths["router"]
    assert {
        "/v1/calendars",
        "/v1/sla-policies",
        "/v1/breaches",
        "/v1/at-risk",
        "/v1/reports/sla",
        "/v1/webhook-subscriptions",
    } <= paths["sla"]
    assert {
        "/v1/survey-policies",
        "/v1/surveys",
        "/v1/reports/satisfaction",
        "/s/{token}",
    } <= paths["survey"]
