"""``ticketflow_db_statements_total``: SQL statements a process sent to its database.

One counter per service, incremented by a ``before_cursor_execute`` listener on the engine, so
``/metrics`` read before and after a run tells how many round trips a unit of work costs
(``ticketflow bench pipeline`` divides it by the tickets routed). An ``executemany`` counts once:
it is one statement on the wire for asyncpg.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

DB_STATEMENTS = Counter(
    "ticketflow_db_statements_total", "SQL statements sent to the database", ["service"]
)


def count_statements(engine: AsyncEngine, service: str) -> None:
    """Count every statement ``engine`` executes under ``service``'s label."""
    counter = DB_STATEMENTS.labels(service)

    @event.listens_for(engine.sync_engine, "before_cursor_execute")
    def _count(*_: Any) -> None:
        counter.inc()
