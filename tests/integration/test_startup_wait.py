"""A service started while the broker is still down waits for it instead of exiting."""

from __future__ import annotations

import asyncio

from services.launcher import TansuBroker, free_port
from services.router.app import create_app as router_app
from tests.conftest import make_settings, running


async def test_service_starts_once_the_broker_comes_up(postgres_url: str) -> None:
    port = free_port()
    broker = TansuBroker(port)
    settings = make_settings(postgres_url, kafka_bootstrap_servers=broker.bootstrap)

    async def broker_later() -> None:
        await asyncio.sleep(3)
        await asyncio.to_thread(broker.start)

    starting = asyncio.create_task(broker_later())
    try:
        async with asyncio.timeout(120), running(router_app(settings)) as router:
            assert starting.done(), "the service cannot have started before the broker"
            assert (await router.get("/readyz")).status_code == 200
    finally:
        await starting
        await asyncio.to_thread(broker.stop)
