"""Demo goals for ``ticketflow dev --demo``: several weeks of generated past tickets and survey
answers (marked ``demo``), then the two goals of the README, so attainment, trend and what-if
show something at once. Written straight into sla's own tables by the dev process (there is no
API to invent history); running it again changes nothing.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, time, timedelta
from typing import Any

from sqlalchemy import Table, select

from services.sla.goals import repository, service
from services.sla.goals.models import SurveyAnswer, TicketTimeline
from services.sla.goals.schemas import GoalWrite
from services.sla.service import SlaContext
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

WEEKS = 6
TICKETS_PER_DAY = 40
GOALS: list[dict[str, Any]] = [
    {
        "name": "Chat first response within 60 s (demo)",
        "description": "80 % of customers get a response to their first chat message within "
        "60 seconds, every week.",
        "metric": "first_response_time",
        "scope": {"channel": ["chat"]},
        "threshold_seconds": 60,
        "target": 80,
        "period": {"kind": "week"},
        "timezone": "Europe/London",
    },
    {
        "name": "Monthly CSAT (demo)",
        "description": "85 % of answered satisfaction surveys rate us 4 or 5, every month.",
        "metric": "csat",
        "target": 85,
        "period": {"kind": "month"},
        "timezone": "Europe/London",
    },
]


def _ticket(
    rng: random.Random, number: int, created: datetime, now: datetime, week: int
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    channel = "chat" if rng.random() < 0.6 else "email"
    priority = rng.choices(["low", "normal", "high", "urgent"], [2, 6, 2, 1])[0]
    if channel == "chat":
        # Most chats are picked up in well under a minute; the share grows week by week.
        fast = rng.random() < 0.7 + 0.025 * week
        reply = rng.uniform(5, 55) if fast else rng.uniform(60, 600)
    else:
        reply = rng.uniform(600, 8 * 3600)
    solve = reply + rng.uniform(600, 36 * 3600)
    events: list[list[Any]] = [[0.0, "s", "new"], [0.0, "p", priority], [0.0, "c", None]]
    events += [[round(reply, 3), "a", None], [round(reply + 1, 3), "s", "open"]]
    status = "open"
    if created + timedelta(seconds=solve) < now:
        events.append([round(solve, 3), "s", "solved"])
        status = "solved"
        if rng.random() < 0.08 and created + timedelta(seconds=solve + 7200) < now:
            events += [[round(solve + 3600, 3), "c", None], [round(solve + 3600, 3), "s", "open"]]
            events += [[round(solve + 5400, 3), "a", None], [round(solve + 7200, 3), "s", "solved"]]
    ticket_id = f"demo:{number}"
    row = {
        "ticket_id": ticket_id,
        "created_at": created,
        "channel": channel,
        "group": "support",
        "priority": priority,
        "status": status,
        "document": {"id": ticket_id, "channel": channel, "priority": priority, "group": "support", "status": status, "requester": {"id": f"r{number}", "tier": "standard"}, "tags": ["demo"]},
        "events": events,
        "version": len(events),
        "demo": True,
    }  # fmt: skip
    answer = None
    answered = created + timedelta(seconds=solve + rng.uniform(3600, 3 * 86400))
    if status == "solved" and rng.random() < 0.3 and answered < now:
        score = rng.choices([1, 2, 3, 4, 5], [3, 3, 7, 30, 57])[0]
        answer = {
            "survey_id": f"demo-survey-{number}",
            "ticket_id": ticket_id,
            "kind": "csat",
            "score": score,
            "answered_at": answered,
            "demo": True,
        }
    return row, answer


async def seed(runtime: ServiceRuntime) -> int:
    """Generate the demo history (once) and create the demo goals; returns tickets written."""
    now = runtime.clock.now()
    written = 0
    async with runtime.transaction() as session:
        seeded = await session.scalar(
            select(TicketTimeline.ticket_id).where(TicketTimeline.demo.is_(True)).limit(1)
        )
        if seeded is None:
            rng = random.Random(11)
            rows: list[dict[str, Any]] = []
            answers: list[dict[str, Any]] = []
            first_day = now.date() - timedelta(days=WEEKS * 7)
            for offset in range(WEEKS * 7 + 1):
                day = first_day + timedelta(days=offset)
                opens = datetime.combine(day, time(7), tzinfo=now.tzinfo)
                for _ in range(TICKETS_PER_DAY):
                    created = opens + timedelta(seconds=rng.uniform(0, 11 * 3600))
                    if created >= now:
                        continue
                    row, answer = _ticket(rng, len(rows), created, now, offset // 7)
                    rows.append(row)
                    if answer:
                        answers.append(answer)
            timelines: Table = TicketTimeline.__table__  # type: ignore[assignment]
            surveys: Table = SurveyAnswer.__table__  # type: ignore[assignment]
            await session.execute(timelines.insert(), rows)
            if answers:
                await session.execute(surveys.insert(), answers)
            written = len(rows)
        ctx = SlaContext.for_session(session, runtime)
        names = {goal.name for goal in await repository.list_goals(session)}
        for body in GOALS:
            if body["name"] not in names:
                await service.create_goal(ctx, GoalWrite.model_validate(body), demo=True)
    log.info("demo goals seeded (%d past demo tickets written)", written)
    return written
