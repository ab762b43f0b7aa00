"""The console's starting point: every open ticket and open timer sla tracks, in one read.

The page loads this once (and again after a reconnect), then applies the stream's deltas. Only
what the panels need (a ticket's subject is in its detail, from router): 5 000 open timers and
their 2 500 tickets make about 1.4 MB of JSON, 0.19 MB gzipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.sla.models import Timer, TrackedTicket

DONE = ("solved", "closed")
RECENT_BREACHES = 50


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def open_tickets(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(
            TrackedTicket.id,
            TrackedTicket.status,
            TrackedTicket.priority,
            TrackedTicket.channel,
            TrackedTicket.group,
            TrackedTicket.assignee_id,
            TrackedTicket.created_at,
        ).where(TrackedTicket.status.not_in(DONE))
    )
    return [
        {
            "id": r[0],
            "status": r[1],
            "priority": r[2],
            "channel": r[3],
            "group": r[4],
            "assignee_id": r[5],
            "created_at": _iso(r[6]),
        }
        for r in rows
    ]


async def open_timers(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.execute(
        select(
            Timer.id,
            Timer.ticket_id,
            Timer.metric,
            Timer.status,
            Timer.due_at,
            Timer.breached_at,
        ).where(Timer.status.in_(("running", "paused")))
    )
    return [
        {
            "timer_id": r[0],
            "ticket_id": r[1],
            "metric": r[2],
            "status": r[3],
            "due_at": _iso(r[4]),
            "breached_at": _iso(r[5]),
        }
        for r in rows
    ]


async def recent_breaches(session: AsyncSession) -> list[dict[str, Any]]:
    """The latest breaches, newest first, as ``sla.breached`` feed items."""
    rows = await session.execute(
        select(Timer.id, Timer.ticket_id, Timer.metric, Timer.due_at, Timer.breached_at)
        .where(Timer.breached_at.is_not(None))
        .order_by(Timer.breached_at.desc())
        .limit(RECENT_BREACHES)
    )
    return [
        {
            "type": "sla.breached",
            "timer_id": r[0],
            "ticket_id": r[1],
            "metric": r[2],
            "due_at": _iso(r[3]),
            "at": _iso(r[4]),
        }
        for r in rows
    ]
