"""Service-goal scenarios with answers known by construction, run in both modes (the embedded
stack and PostgreSQL + the Kafka-protocol broker); each takes a ``Desk``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import eventually
from tests.goals_support import Desk, chat_goal, feed_chats

# --- scenarios (each returns nothing; asserts inside) -------------------------------------------

MONDAY = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)  # a Monday


async def scenario_known_share(desk: Desk, total: int = 250, fast: int = 203) -> None:
    """``fast`` of ``total`` chats answered within 60 s: the goal reads fast/total exactly,
    counted incrementally, and a goal created afterwards (backfilled) reads the same.

    203 of 250 is 81.2 %, the same share as 812 of 1,000 with a quarter of the events: every
    event goes through sla's real consumer and handlers (about 10-30 ms each here), so the
    count of tickets is what this scenario's time is made of."""
    desk.clock.current = MONDAY
    goal = await desk.goal(**chat_goal())
    assert goal["assessment"] == {"periods": [], "periods_with_data": 0, "periods_met": 0}
    await feed_chats(desk, MONDAY, total, fast, "share")
    # Email tickets are out of the goal's scope.
    await desk.created(f"{desk.prefix}share-email", MONDAY, channel="email")
    await desk.message(f"{desk.prefix}share-email", MONDAY + timedelta(hours=3))
    desk.clock.current = MONDAY + timedelta(days=2)
    result = await desk.settled(goal["id"], total)
    share = round(100.0 * fast / total, 2)
    assert (result["value"], result["met_count"], result["target"]) == (share, fast, 80)
    assert result["period"] == {"start": "2026-11-02T00:00:00Z", "end": "2026-11-09T00:00:00Z"}
    assert sum(p["sample_size"] for p in result["trend"]) == total
    # Next week, the same goal created anew measures last week from history: the assessment.
    desk.clock.current = MONDAY + timedelta(days=8)
    again = await desk.goal(**chat_goal(name="Same goal, set later"))
    assert again["assessment"]["periods"][-1]["value"] == share
    assert again["assessment"]["periods"][-1]["sample_size"] == total
    assert again["assessment"]["periods"][-1]["met"] is (share >= 80)
    last_week = await desk.attainment(again["id"], MONDAY + timedelta(days=3))
    assert (last_week["value"], last_week["sample_size"]) == (share, total)
    # What-if: the same goal replayed gives the same value and the threshold that met it.
    body = {
        "goal": chat_goal(target=share),
        "from": "2026-11-02T00:00:00Z",
        "to": "2026-11-09T00:00:00Z",
    }
    replay = (await desk.client.post("/v1/goals/what-if", json=body)).json()
    assert replay["goal"]["periods"][0]["value"] == share
    assert replay["goal"]["attainable_threshold_seconds"] == 30
    body["goal"] = chat_goal(target=90)
    replay = (await desk.client.post("/v1/goals/what-if", json=body)).json()
    assert replay["goal"]["attainable_threshold_seconds"] == 120
    assert replay["goal"]["periods_met"] == 0
    # ...and an SLA policy of a one-minute first response breaches the slow ones.
    policy = {
        "name": "chat in a minute",
        "conditions": {"all": [{"field": "channel", "op": "eq", "value": "chat"}]},
        "targets": [{"priority": "normal", "metric": "first_response", "minutes": 1}],
    }
    body = {"sla_policy": policy, "from": "2026-11-02T00:00:00Z", "to": "2026-11-09T00:00:00Z"}
    response = await desk.client.post("/v1/goals/what-if", json=body)
    assert response.status_code == 200, response.text
    first = response.json()["sla_policy"]["metrics"][0]
    assert (first["metric"], first["timers"], first["breaches"]) == (
        "first_response",
        total,
        total - fast,
    )
    assert first["compliance"] == share
    assert (first["median_seconds"], first["p90_seconds"]) == (
        30.0,
        120.0 if fast / total < 0.9 else 30.0,
    )


async def scenario_redelivery_and_late_answers(desk: Desk) -> None:
    """A redelivered event counts once; an answer after its ticket's week counts in the week
    it was answered; a reopen turns a first-contact resolution into a miss."""
    desk.clock.current = MONDAY
    csat = await desk.goal(
        name="CSAT weekly", metric="csat", target=80, period={"kind": "week"}, timezone="UTC"
    )
    frt = await desk.goal(**chat_goal(name="FRT for redelivery"))
    fcr = await desk.goal(
        name="FCR",
        metric="first_contact_resolution",
        target=70,
        period={"kind": "week"},
        timezone="UTC",
    )
    ticket = f"{desk.prefix}late-1"
    await desk.created(ticket, MONDAY)
    reply_id = await desk.message(ticket, MONDAY + timedelta(seconds=20))
    await desk.message(ticket, MONDAY + timedelta(seconds=20), event_id=reply_id)  # redelivered
    await desk.status(ticket, MONDAY + timedelta(hours=1), "solved")
    answer_id = await desk.answered(ticket, "s-late-1", "csat", 5, MONDAY + timedelta(days=9))
    await desk.answered(
        ticket, "s-late-1", "csat", 5, MONDAY + timedelta(days=9), event_id=answer_id
    )
    # The same answer again under another event id (a producer retry): still one sample.
    await desk.answered(ticket, "s-late-1", "csat", 5, MONDAY + timedelta(days=9))
    await desk.answered(
        f"{desk.prefix}late-unknown", "s-late-2", "csat", 2, MONDAY + timedelta(days=9, hours=1)
    )
    desk.clock.current = MONDAY + timedelta(days=10)
    await desk.settled(csat["id"], 2, MONDAY + timedelta(days=9))
    first_week = await desk.attainment(csat["id"], MONDAY + timedelta(days=1))
    assert first_week["sample_size"] == 0 and first_week["status"] == "no_data"
    second_week = await desk.attainment(csat["id"], MONDAY + timedelta(days=9))
    assert (second_week["value"], second_week["met_count"]) == (50.0, 1)
    assert (await desk.settled(frt["id"], 1, MONDAY))["met_count"] == 1
    solved = await desk.settled(fcr["id"], 1, MONDAY)
    assert solved["value"] == 100.0
    await desk.status(ticket, MONDAY + timedelta(days=10), "open")
    await desk.flush()

    async def reopened() -> bool:
        return (await desk.attainment(fcr["id"], MONDAY))["value"] == 0.0

    await eventually(reopened, within=60)
    assert (await desk.attainment(fcr["id"], MONDAY))["sample_size"] == 1


async def scenario_status_events(desk: Desk) -> None:
    """on_track -> at_risk -> recovered -> met, each announced once, also to webhooks."""
    desk.clock.current = MONDAY
    await desk.observe()
    subscription = await desk.client.post(
        "/v1/webhook-subscriptions",
        json={
            "url": "http://127.0.0.1:9/hook",
            "event_types": ["goal.*"],
            "secret": "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        },
    )
    assert subscription.status_code == 201, subscription.text
    goal = await desk.goal(
        **chat_goal(name="Status goal", scope={"channel": ["chat"], "group": ["status"]})
    )
    for i in range(10):
        ticket = f"{desk.prefix}status-good-{i}"
        await desk.created(ticket, MONDAY + timedelta(minutes=i), group="status")
        await desk.message(ticket, MONDAY + timedelta(minutes=i, seconds=10))
    desk.clock.current = MONDAY + timedelta(hours=3)
    await desk.settled(goal["id"], 10)
    # The watcher runs in the background too: evaluate now, then look at what was announced.
    await desk.evaluate()
    await desk.goal_events(goal["id"], [])  # on track from the start
    for i in range(10):
        ticket = f"{desk.prefix}status-bad-{i}"
        await desk.created(ticket, MONDAY + timedelta(hours=1, minutes=i), group="status")
        await desk.message(ticket, MONDAY + timedelta(hours=1, minutes=i, seconds=300))
    at_risk = await desk.settled(goal["id"], 20)
    assert at_risk["status"] == "at_risk"
    assert 80 < at_risk["needed"] <= 100
    assert (
        at_risk["projection"]["low"]
        <= at_risk["projection"]["value"]
        <= at_risk["projection"]["high"]
    )
    await desk.evaluate()
    await desk.evaluate()
    await desk.goal_events(goal["id"], ["goal.at_risk"])
    for i in range(100):
        ticket = f"{desk.prefix}status-more-{i}"
        await desk.created(ticket, MONDAY + timedelta(hours=2, seconds=i), group="status")
        await desk.message(ticket, MONDAY + timedelta(hours=2, seconds=i + 5))
    await desk.settled(goal["id"], 120)
    await desk.evaluate()
    await desk.goal_events(goal["id"], ["goal.at_risk", "goal.recovered"])
    desk.clock.current = MONDAY + timedelta(days=7, hours=1)
    await desk.evaluate()
    await desk.evaluate()
    await desk.goal_events(goal["id"], ["goal.at_risk", "goal.recovered", "goal.met"])
    met = next(e for e in desk.seen if e.type == "goal.met")
    assert (met.subject, met.data["value"], met.data["previous_status"]) == (
        goal["id"],
        round(100 * 110 / 120, 2),
        "on_track",
    )
    deliveries = await desk.client.get(
        f"/v1/webhook-subscriptions/{subscription.json()['id']}/deliveries"
    )
    assert sorted(d["event_type"] for d in deliveries.json()["items"]) == [
        "goal.at_risk",
        "goal.met",
        "goal.recovered",
    ]


async def scenario_business_time_dst_week(desk: Desk) -> None:
    """A first-response goal in business time (London office hours) across the week UK clocks
    go back; weeks are London weeks."""
    calendar = await desk.client.post(
        "/v1/calendars",
        json={
            "name": "London office",
            "timezone": "Europe/London",
            "hours": {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")},
        },
    )
    assert calendar.status_code == 201, calendar.text
    desk.clock.current = datetime(2026, 10, 21, tzinfo=UTC)
    goal = await desk.goal(
        **chat_goal(
            name="One business hour",
            threshold_seconds=3600,
            calendar_id=calendar.json()["id"],
            scope={"channel": ["email"]},
            timezone="Europe/London",
        )
    )
    cases = [  # created, replied (UTC): business minutes
        (datetime(2026, 10, 22, 8, 0), datetime(2026, 10, 22, 8, 50)),  # Thu: 50 -> good
        (datetime(2026, 10, 23, 15, 30), datetime(2026, 10, 25, 23, 30)),  # Fri-Sun: 30 -> good
        (datetime(2026, 10, 23, 15, 0), datetime(2026, 10, 26, 9, 45)),  # Fri-Mon: 105 -> bad
    ]
    for i, (created, replied) in enumerate(cases):
        ticket = f"{desk.prefix}dst-{i}"
        await desk.created(ticket, created.replace(tzinfo=UTC), channel="email")
        await desk.message(ticket, replied.replace(tzinfo=UTC))
    desk.clock.current = datetime(2026, 10, 27, 12, tzinfo=UTC)
    # As of the last minutes of that (169-hour) week: Sunday 23:50 GMT.
    dst_week = await desk.settled(goal["id"], 2, datetime(2026, 10, 25, 23, 50, tzinfo=UTC))
    assert dst_week["period"] == {
        "start": "2026-10-19T00:00:00+01:00",
        "end": "2026-10-26T00:00:00Z",
    }
    assert (dst_week["value"], dst_week["status"]) == (100.0, "on_track")
    assert len(dst_week["trend"]) == 7
    next_week = await desk.settled(goal["id"], 1)
    assert (next_week["value"], next_week["met_count"]) == (0.0, 0)
    assert [(p["value"], p["met"]) for p in next_week["previous"]] == [(100.0, True)]


async def scenario_sla_compliance_of_router_solves(desk: Desk) -> None:
    """An ``sla_compliance`` goal on resolution counts each ticket solved as router announces a
    solve (``ticket.updated`` and ``ticket.status_changed`` come before ``ticket.solved``, which
    stops sla's resolution timer): 6 tickets, 4 solved within the default policy's 24 hours
    (normal priority, around the clock), 2 after 30 hours, each in a later batch than its
    creation (so sla's handler of ``ticket.updated`` holds none of its timers). The clock
    stands still, so the scheduler never fires those 2 breaches: the solve finds them late."""
    desk.clock.current = MONDAY
    compliance = chat_goal(metric="sla_compliance", threshold_seconds=None)
    replies = await desk.goal(**{**compliance, "name": "Replies", "sla_metric": "first_response"})
    goal = await desk.goal(**{**compliance, "name": "Resolutions", "sla_metric": "resolution"})
    tickets = [f"{desk.prefix}resolve-{i}" for i in range(6)]
    for i, ticket in enumerate(tickets):
        await desk.created(ticket, MONDAY + timedelta(minutes=i))
        await desk.message(ticket, MONDAY + timedelta(minutes=i, seconds=30))
    # Handled and committed first, as they would be hours before the solves.
    assert (await desk.settled(replies["id"], 6))["met_count"] == 6
    for i, ticket in enumerate(tickets):
        await desk.solved_as_router(ticket, MONDAY + timedelta(minutes=i, hours=1 if i < 4 else 30))
    desk.clock.current = MONDAY + timedelta(days=3)
    result = await desk.settled(goal["id"], 6)
    assert (result["sample_size"], result["met_count"]) == (6, 4), result


async def scenario_bad_input(desk: Desk) -> None:
    """422 naming the field, and nothing saved."""
    cases = [
        (chat_goal(threshold_seconds=None), "threshold_seconds"),
        (chat_goal(target=120), "target"),
        (chat_goal(metric="nps", threshold_seconds=None, target=-101), "target"),
        (chat_goal(metric="speed"), "metric"),
        (chat_goal(calendar_id="no-such-calendar"), "calendar_id"),
        (chat_goal(timezone="Mars/Olympus"), "timezone"),
        (chat_goal(period={"kind": "rolling_days"}), "period.days"),
        (chat_goal(metric="sla_compliance", threshold_seconds=None), "sla_metric"),
    ]
    for body, field_name in cases:
        response = await desk.client.post("/v1/goals", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["error"]["details"][0]["field"] == field_name, response.text
    assert (await desk.client.get("/v1/goals")).json()["items"] == []
    goal = await desk.goal(**chat_goal())
    response = await desk.client.put(f"/v1/goals/{goal['id']}", json=chat_goal(target=-5))
    assert response.status_code == 422
    assert (await desk.client.get(f"/v1/goals/{goal['id']}")).json()["target"] == 80
    what_ifs: list[tuple[dict[str, Any], str]] = [
        (
            {"goal": chat_goal(), "from": "2026-11-09T00:00:00Z", "to": "2026-11-02T00:00:00Z"},
            "from",
        ),
        ({"goal": chat_goal(), "from": "2025-01-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, "to"),
        (
            {
                "goal": chat_goal(threshold_seconds=None),
                "from": "2026-11-01T00:00:00Z",
                "to": "2026-11-02T00:00:00Z",
            },
            "goal.threshold_seconds",
        ),
        ({"from": "2026-11-01T00:00:00Z", "to": "2026-11-02T00:00:00Z"}, "goal"),
    ]
    for what_if, field_name in what_ifs:
        response = await desk.client.post("/v1/goals/what-if", json=what_if)
        assert response.status_code == 422, (what_if, response.text)
        assert response.json()["error"]["details"][0]["field"] == field_name, response.text
    assert (await desk.client.get("/v1/goals/nope/attainment")).status_code == 404
    summary = (await desk.client.get("/v1/goals/summary")).json()
    assert [(i["goal_id"], i["status"]) for i in summary["items"]] == [(goal["id"], "no_data")]
    assert (await desk.client.delete(f"/v1/goals/{goal['id']}")).status_code == 204
    assert (await desk.client.get(f"/v1/goals/{goal['id']}")).status_code == 404
