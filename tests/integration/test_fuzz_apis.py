"""Every endpoint of every service, fuzzed in-process from its own OpenAPI document on
PostgreSQL and the real broker: no answer is ever a 5xx.

Schemathesis generates valid requests (positive mode: long strings, odd unicode with NUL bytes,
extreme numbers, nulls where the schema allows them) and invalid ones (negative mode: wrong
types, out-of-range values, missing fields) for each operation, with an admin key so they reach
the business code. The number of examples per operation is bounded so the three services take
a minute or two.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.result import Ok
from schemathesis.python import asgi

from services.router.app import create_app as create_router
from services.sla.app import create_app as create_sla
from services.survey.app import create_app as create_survey
from tests.conftest import ADMIN_KEY, make_settings

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}"}
APPS: dict[str, Callable[..., FastAPI]] = {
    "router": create_router,
    "sla": create_sla,
    "survey": create_survey,
}
# TICKETFLOW_FUZZ_EXAMPLES=200 for a longer hunt.
SCALE = int(os.environ.get("TICKETFLOW_FUZZ_EXAMPLES", "20"))
EXAMPLES = {GenerationMode.POSITIVE: SCALE, GenerationMode.NEGATIVE: max(1, SCALE * 2 // 3)}


@pytest.fixture(scope="module")
async def database(fresh_database: Callable[[], Awaitable[str]]) -> str:
    return await fresh_database()


@pytest.fixture(scope="module")
def lifespans() -> Iterator[None]:
    # Schemathesis starts each app's lifespan on first use, in its own event-loop thread.
    yield
    asgi.shutdown_lifespans()


# Schemathesis's strategies use ``random`` inside; Hypothesis warns about it.
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning")
@pytest.mark.parametrize("service", sorted(APPS))
def test_no_endpoint_answers_5xx(
    service: str, database: str, kafka_bootstrap: str, lifespans: None
) -> None:
    app = APPS[service](make_settings(database, kafka_bootstrap_servers=kafka_bootstrap))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    failures: list[str] = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the OpenAPI schema has an invalid operation: {result}"
        operation = result.ok()
        for mode, examples in EXAMPLES.items():

            @settings(
                max_examples=examples,
                deadline=None,
                suppress_health_check=list(HealthCheck),
                derandomize=True,
                database=None,
                print_blob=False,
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case: Any) -> None:
                try:
                    response = case.call(headers=HEADERS)
                except Exception as exc:  # the in-process transport re-raises what became a 500
                    raise AssertionError(
                        f"{case.method} {case.formatted_path} -> 500 ({exc!r})"[:600]
                        + f"\n{case.as_curl_command(headers=HEADERS)[:2000]}"
                    ) from None
                assert response.status_code < 500, (
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:300]}\n{case.as_curl_command(headers=HEADERS)[:2000]}"
                )

            try:
                fuzz()
            except AssertionError as exc:
                failures.append(f"[{mode.value}] {exc}")
            except Unsatisfiable:
                assert mode is GenerationMode.NEGATIVE  # nothing in the request can be invalid
    assert not failures, f"{len(failures)} server errors:\n" + "\n\n".join(failures)
