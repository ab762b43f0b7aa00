"""The survey page answered in a real browser: headless Chromium (Debian's ``chromium``
package) driven by Playwright, against survey served by uvicorn on PostgreSQL and the broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import httpx
import uvicorn
from playwright.async_api import async_playwright

from services.launcher import free_port
from services.survey.app import create_app
from shared import events as ev
from tests.conftest import ADMIN_KEY, eventually, make_settings
from tests.unit.test_survey_flow import ManualClock, publish, ticket, token_of, wait_status

CHROMIUM = "/usr/bin/chromium"
# As root (--no-sandbox) and offline: no background connections that the closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


async def test_requester_answers_the_survey_page_in_chromium(
    fresh_database: Callable[[], Awaitable[str]], kafka_bootstrap: str
) -> None:
    port = free_port()
    settings = make_settings(
        await fresh_database(),
        kafka_bootstrap_servers=kafka_bootstrap,
        survey_token_secret="browser-secret",
        survey_sender_poll_seconds=0.2,
        public_base_url=f"http://127.0.0.1:{port}",
    )
    clock = ManualClock()
    app = create_app(settings, clock=clock)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    try:
        await eventually(lambda: asyncio.sleep(0, server.started))
        async with httpx.AsyncClient(
            base_url=settings.public_base_url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        ) as client:
            policy = {"name": "chat CES", "kind": "ces", "question": "How easy was it?"}
            assert (await client.post("/v1/survey-policies", json=policy)).status_code == 201
            solved = ticket(f"api:{uuid.uuid4().hex[:12]}", channel="chat", solved_at=clock.now())
            await publish(app, ev.TicketSolved(ticket=solved))
            sent = await wait_status(app, client, solved.id, "sent")
            link = sent["token_url"]
            assert link.startswith(settings.public_base_url) and token_of(sent)

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
                )
                try:
                    page = await browser.new_page()
                    await page.goto(link)
                    assert await page.get_by_role("heading").inner_text() == "How easy was it?"
                    buttons = page.get_by_role("button")
                    assert await buttons.count() == 7
                    await page.get_by_label("Anything you would like to tell us?").fill(
                        "Quick and painless"
                    )
                    await page.get_by_role("button", name="6 of 7").click()
                    await page.get_by_text("Thank you!").wait_for()
                    await page.goto(link)
                    assert "Already answered" in await page.content()
                finally:
                    await browser.close()

            answered = await wait_status(app, client, solved.id, "answered")
            assert answered["score"] == 6 and answered["comment"] == "Quick and painless"
    finally:
        server.should_exit = True
        await serving
