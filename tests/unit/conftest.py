from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx
import pytest

from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from services.survey.app import create_app as survey_app
from shared.bus import MemoryBus
from shared.migrate import upgrade_all
from tests.conftest import make_settings, running


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """The embedded default: three services on SQLite files and one in-memory bus."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'ticketflow.db'}"
    await upgrade_all(url)
    settings = make_settings(url)
    bus = MemoryBus(partitions=4, max_retries=1, retry_base_seconds=0.01)
    await bus.start()
    async with AsyncExitStack() as stack:
        clients = {
            "router": await stack.enter_async_context(running(router_app(settings, bus=bus))),
            "sla": await stack.enter_async_context(running(sla_app(settings, bus=bus))),
            "survey": await stack.enter_async_context(running(survey_app(settings, bus=bus))),
        }
        yield clients
    await bus.stop()
