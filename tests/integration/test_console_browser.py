"""The ops console in a real browser: headless Chromium (Debian's ``chromium``) driven by
Playwright, against router and sla served by uvicorn on PostgreSQL and the Kafka-protocol broker.

sla runs 40 seconds ahead of router (an offset clock), so a chat ticket's one-minute first
response is due 20 seconds after router creates it: the page shows it at risk, then breached,
without a reload. The run also restarts sla under the open page and saves docs/console.png.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, async_playwright

from services.launcher import free_port
from services.router.app import create_app as router_app
from services.sla.app import create_app as sla_app
from tests.conftest import ADMIN_KEY, READER_KEY, eventually, make_settings
from tests.integration.test_survey_browser import CHROMIUM, CHROMIUM_ARGS

# The README's picture of the console, taken by this test when asked
# (``TICKETFLOW_UPDATE_SCREENSHOT=1``); otherwise it goes to the test's temporary directory, so
# that a test run leaves the checkout as it found it.
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "console.png"
AHEAD = timedelta(seconds=40)


class AheadClock:
    """The wall clock plus a fixed offset."""

    def now(self) -> datetime:
        return datetime.now(UTC) + AHEAD

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


@asynccontextmanager
async def serve(app: FastAPI, port: int) -> AsyncIterator[None]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started or task.done()))
        assert not task.done(), "server did not start"
        yield
    finally:
        server.should_exit = True
        await task


async def create_ticket(router: httpx.AsyncClient, subject: str) -> str:
    body = {
        "subject": subject,
        "channel": "chat",
        "priority": "urgent",
        "requester": {"email": f"{uuid.uuid4().hex[:8]}@example.com", "name": "Sam"},
    }
    response = await router.post("/v1/tickets", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def row(page: Page, panel: str, ticket_id: str, metric: str = "first_response") -> Any:
    return page.locator(f'#{panel} tr[data-ticket-id="{ticket_id}"][data-metric="{metric}"]')


async def test_ops_console_live_in_chromium(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str, tmp_path: Path
) -> None:
    update_docs = os.environ.get("TICKETFLOW_UPDATE_SCREENSHOT") == "1"
    screenshot = DOCS_SCREENSHOT if update_docs else tmp_path / "console.png"
    router_port, sla_port = free_port(), free_port()
    settings = make_settings(
        await fresh_database(),
        kafka_bootstrap_servers=kafka_bootstrap,
        router_url=f"http://127.0.0.1:{router_port}",
        survey_url=f"http://127.0.0.1:{free_port()}",  # no survey here: the detail says so
    )
    sla_base = f"http://127.0.0.1:{sla_port}"
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    async with (
        serve(router_app(settings), router_port),
        httpx.AsyncClient(base_url=settings.router_url, headers=admin) as router,
        httpx.AsyncClient(base_url=sla_base, headers=admin) as sla,
        async_playwright() as playwright,
    ):
        agent = {"name": "Ana", "groups": [], "capacity": {"chat": 1}, "status": "online"}
        assert (await router.put("/v1/agents/ana", json=agent)).status_code in (200, 201)
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page(viewport={"width": 1440, "height": 1000})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            async with serve(sla_app(settings, clock=AheadClock()), sla_port):
                # A goal on e-mail, which no ticket of this test touches: its figures stay put.
                goal = {
                    "name": "E-mail first reply within an hour",
                    "metric": "first_response_time",
                    "scope": {"channel": ["email"]},
                    "threshold_seconds": 3600,
                    "target": 80,
                    "period": {"kind": "week"},
                    "timezone": "Europe/London",
                }
                created = await sla.post("/v1/goals", json=goal)
                assert created.status_code == 201, created.text

                # Sign-in: a wrong key is refused with a clear message, a reader key is enough.
                await page.goto(f"{sla_base}/console")
                await page.get_by_label("API key").fill("wrong-key")
                await page.get_by_role("button", name="Sign in").click()
                alert = page.get_by_role("alert")
                assert "not valid" in await alert.inner_text()
                assert "wrong-key" not in page.url
                await page.get_by_label("API key").fill(READER_KEY)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_selector("body[data-ready=true]")
                assert page.url == f"{sla_base}/console"
                assert re.search(r"UTC[+-]\d\d:\d\d", await page.locator("#tz").inner_text())
                await page.locator("#conn[data-state=live]").wait_for()

                # A ticket appears at risk, its countdown ticks, then it is breached: no reload.
                breaching = await create_ticket(router, "Card declined at checkout")
                await row(page, "at-risk", breaching).wait_for(timeout=15_000)
                # The table is re-rendered whenever a delta arrives (the assignment, say), so the
                # cell is looked up afresh on each poll rather than held as a handle.
                countdown = f'#at-risk tr[data-ticket-id="{breaching}"] td[data-due]'
                first = await page.locator(countdown).inner_text()
                await page.wait_for_function(
                    "([sel, t]) => { const el = document.querySelector(sel);"
                    " return el !== null && el.textContent !== t; }",
                    arg=[countdown, first],
                    timeout=5_000,
                )
                # Ana (capacity 1) took the first chat; the next waits in the queue.
                waiting = await create_ticket(router, "Where is my parcel?")
                await row(page, "at-risk", waiting).wait_for(timeout=15_000)
                await page.locator('#queue-body tr[data-group="(no group)"]').wait_for()
                assert "chat 1/1" in await page.locator('#agents tr[data-agent="ana"]').inner_text()

                # Met: the waiting ticket gets its answer in time and leaves "at risk".
                reply = {"author": "agent", "author_id": "ana", "public": True, "body": "On it"}
                response = await router.post(f"/v1/tickets/{waiting}/messages", json=reply)
                assert response.status_code in (200, 201), response.text
                await row(page, "at-risk", waiting).wait_for(state="detached", timeout=15_000)

                await row(page, "breached", breaching).wait_for(timeout=40_000)
                await row(page, "at-risk", breaching).wait_for(state="detached")
                breached_row = await row(page, "breached", breaching).inner_text()
                assert (
                    "urgent" in breached_row and "chat" in breached_row and "over" in breached_row
                )
                await page.locator('#feed li[data-type="sla.breached"]').first.wait_for()
                assert await row(page, "breached", waiting).count() == 0

                # Goals: the panel shows what /v1/goals/summary says.
                summary = await sla.get("/v1/goals/summary")
                assert summary.status_code == 200, summary.text
                assert [g["goal_id"] for g in summary.json()["items"]] == [created.json()["id"]]
                await check_goals(page, summary.json())

                # Ticket detail by keyboard: timers with due times, routing history.
                await page.locator(f'#breached a[data-ticket="{breaching}"]').focus()
                await page.keyboard.press("Enter")
                dialog = page.locator("#detail")
                await dialog.get_by_text("Routing history").wait_for()
                await dialog.locator("table").wait_for()
                text = await dialog.inner_text()
                assert "first_response" in text and "Breached" in text
                assert "Survey results unavailable" in text
                await page.keyboard.press("Escape")
                await dialog.wait_for(state="hidden")

            # sla restarts under the open page: it says so, then comes back by itself.
            await page.locator("#banner").wait_for(state="visible", timeout=15_000)
            assert "reconnecting" in (await page.locator("#banner").inner_text()).lower()
            async with serve(sla_app(settings, clock=AheadClock()), sla_port):
                await page.locator("#conn[data-state=live]").wait_for(timeout=20_000)
                assert await page.locator("#banner").is_hidden()
                await row(page, "breached", breaching).wait_for()
                later = await create_ticket(router, "Refund not received")
                await row(page, "at-risk", later).wait_for(timeout=60_000)
                # The breach was replayed to the new process: still one line in the feed.
                feed_breach = page.locator('#feed li[data-type="sla.breached"]', has_text=breaching)
                assert await feed_breach.count() == 1
                await page.screenshot(path=str(screenshot), full_page=True)
                await page.get_by_role("button", name="Sign out").click()
                await page.get_by_label("API key").wait_for()
                assert (await page.request.get(f"{sla_base}/v1/console/snapshot")).status == 401
            assert errors == [], "the console page raised JavaScript errors"
        finally:
            await browser.close()


async def check_goals(page: Page, summary: Any) -> None:
    items = summary.get("items", summary) if isinstance(summary, dict) else summary
    for goal in items:
        goal_id = goal.get("id", goal.get("goal_id"))
        card = page.locator(f'#goals [data-goal-id="{goal_id}"]')
        await card.wait_for()
        suffix = "" if goal.get("metric") == "nps" else " %"
        if goal.get("value") is not None:
            value = f"{float(goal['value']):.1f}{suffix}"
            assert await card.locator("[data-goal-value]").inner_text() == value
        target = f"{float(goal['target']):.1f}{suffix}"
        assert await card.locator("[data-goal-target]").inner_text() == target
        words = {"on_track": "On track", "at_risk": "At risk", "missed": "Missed", "met": "Met"}
        assert words.get(goal["status"], "No data") in await card.inner_text()


GOALS = {
    "available": True,
    "items": [
        {
            "id": "g-chat",
            "name": "Chat first reply within 60 s",
            "metric": "first_response_time",
            "value": 81.2,
            "target": 80,
            "status": "at_risk",
            "attainment": {
                "goal_id": "g-chat",
                "period": {
                    "start": "2026-11-30T00:00:00+00:00",
                    "end": "2026-12-07T00:00:00+00:00",
                },
                "value": 81.2,
                "target": 80,
                "sample_size": 1000,
                "met_count": 812,
                "status": "at_risk",
                "projection": {"value": 79.1, "low": 76.0, "high": 82.3},
                "needed": 78.5,
                "trend": [
                    {"date": "2026-11-30", "value": 83.0, "sample_size": 400},
                    {"date": "2026-12-01", "value": 80.0, "sample_size": 600},
                ],
                "previous": [],
            },
        },
        {
            "id": "g-nps",
            "name": "NPS",
            "metric": "nps",
            "value": None,
            "target": 30,
            "status": "no_data",
            "attainment": None,
        },
    ],
}


async def test_goal_cards_and_trend_chart_render(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str
) -> None:
    """The goals panel against the shapes of the goals API (served here from a fixture)."""
    port = free_port()
    settings = make_settings(await fresh_database(), kafka_bootstrap_servers=kafka_bootstrap)
    async with serve(sla_app(settings), port), async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            page = await browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            await page.route(
                "**/v1/console/goals", lambda route: route.fulfill(json=GOALS, status=200)
            )
            await page.goto(f"http://127.0.0.1:{port}/console")
            await page.get_by_label("API key").fill(READER_KEY)
            await page.get_by_role("button", name="Sign in").click()
            chat = page.locator('#goals [data-goal-id="g-chat"]')
            await chat.wait_for()
            await check_goals(page, {"items": GOALS["items"]})
            assert "Projected to period end: 79.1 %" in await chat.inner_text()
            await chat.locator("canvas").wait_for()  # uPlot drew the trend
            legend = await chat.locator(".u-legend").inner_text()
            assert "target" in legend and "projection" in legend
            nps = page.locator('#goals [data-goal-id="g-nps"]')
            assert "No data" in await nps.inner_text()
            assert await page.locator("#goals-empty").is_hidden()
            assert errors == []
        finally:
            await browser.close()
