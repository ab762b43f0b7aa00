"""On SQLite (the embedded default) a read never queues behind a writer.

Writers take the lock at BEGIN IMMEDIATE so they wait on each other instead of failing; an HTTP
read begins deferred and, with WAL, reads its snapshot while the write lock is held elsewhere.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import httpx

from shared.db import service_database_url


async def test_a_read_is_answered_while_another_connection_holds_the_write_lock(
    embedded: dict[str, httpx.AsyncClient], tmp_path: Path
) -> None:
    router = embedded["router"]
    created = await router.put(
        "/v1/agents/ana",
        json={"name": "Ana", "email": "ana@example.com", "capacity": {"email": 5}},
    )
    assert created.status_code in (200, 201), created.text

    url = service_database_url(f"sqlite+aiosqlite:///{tmp_path / 'ticketflow.db'}", "router")
    writer = sqlite3.connect(url.split("///", 1)[1], isolation_level=None, timeout=30)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a long write would
        # A read must not wait for it (it would wait up to the 30 s busy timeout, then 503).
        response = await asyncio.wait_for(router.get("/v1/agents/ana"), timeout=20)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "Ana"
        listed = await asyncio.wait_for(router.get("/v1/agents"), timeout=20)
        assert [agent["id"] for agent in listed.json()["items"]] == ["ana"]
    finally:
        if writer.in_transaction:
            writer.execute("ROLLBACK")
        writer.close()
