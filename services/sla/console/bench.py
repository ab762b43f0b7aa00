"""Measure the ops console at scale: ``python -m services.sla.console.bench [--tickets N]``.

Starts sla alone (SQLite, in-memory bus) on a free port, feeds it ``ticket.created`` events as
router would (by default 2 500 tickets: 500 urgent, whose 15-minute first response is at risk
within the page's 1-hour window, and 2 000 normal ones: 5 000 open timers, 500 at risk), then
opens the console in headless Chromium (Debian's ``chromium``, driven by Playwright, a dev
dependency) and reports: snapshot size and time, time from navigation to the first complete
render, the cost of a full re-render and of the per-second tick, the stream's bytes per delta,
and how long a new ticket takes from its event to its row on the page.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from services.launcher import free_port
from services.sla.app import create_app
from services.sla.console.stream import hub_of
from shared import events as ev
from shared.bus import MemoryBus, OutgoingMessage
from shared.migrate import upgrade_all
from shared.settings import Settings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync"]
KEY = "bench-reader-key"


def _ticket(number: int, priority: str, channel: str = "email") -> ev.TicketCreated:
    now = datetime.now(UTC)
    return ev.TicketCreated(
        ticket=ev.TicketSnapshot(
            id=f"api:bench-{number}",
            source="api",
            external_id=f"bench-{number}",
            subject=f"Bench ticket {number}",
            status="open",
            priority=priority,
            channel=channel,
            group=("billing", "support", "tier2")[number % 3],
            assignee_id=("ana", "ben", None)[number % 3],
            requester=ev.Requester(id=f"r{number}"),
            created_at=now,
            updated_at=now,
        )
    )


async def _feed(bus: MemoryBus, topic: str, events: list[ev.TicketCreated]) -> None:
    for start in range(0, len(events), 500):
        batch = []
        for event in events[start : start + 500]:
            key, value, headers = ev.encode(event, source="/bench/router")
            batch.append(OutgoingMessage(topic, key, value, headers))
        await bus.publish_batch(batch)


async def run(tickets: int, at_risk: int) -> dict[str, Any]:
    from playwright.async_api import async_playwright

    with tempfile.TemporaryDirectory() as data:
        url = f"sqlite+aiosqlite:///{Path(data) / 'bench.db'}"
        await upgrade_all(url)
        settings = Settings(database_url=url, api_keys=f"{KEY}:reader", log_format="text")
        bus = MemoryBus(partitions=8)
        await bus.start()
        port = free_port()
        app = create_app(settings, bus=bus)
        server = uvicorn.Server(
            uvicorn.Config(app, port=port, log_level="warning", timeout_graceful_shutdown=1)
        )
        serving = asyncio.create_task(server.serve())
        base = f"http://127.0.0.1:{port}"
        result: dict[str, Any] = {"tickets": tickets}
        try:
            while not server.started:  # noqa: ASYNC110 - uvicorn exposes a flag, not an event
                await asyncio.sleep(0.05)
            events = [_ticket(n, "urgent" if n < at_risk else "normal") for n in range(tickets)]
            began = time.perf_counter()
            await _feed(bus, settings.topic("tickets"), events)
            headers = {"Authorization": f"Bearer {KEY}"}
            async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
                while True:
                    response = await client.get(
                        "/v1/console/snapshot", headers={"Accept-Encoding": "identity"}
                    )
                    if (
                        response.status_code == 200
                        and len(response.json()["timers"]) >= 2 * tickets
                    ):
                        break
                    if response.status_code != 200:
                        print(
                            "snapshot while ingesting:", response.status_code, response.text[:200]
                        )
                    await asyncio.sleep(1)
                result["ingest_seconds"] = round(time.perf_counter() - began, 1)
                result["open_timers"] = len(response.json()["timers"])
                result["snapshot_bytes"] = len(response.content)
                timings = []
                for _ in range(5):
                    t0 = time.perf_counter()
                    gzipped = await client.get(
                        "/v1/console/snapshot", headers={"Accept-Encoding": "gzip"}
                    )
                    timings.append(time.perf_counter() - t0)
                result["snapshot_gzip_bytes"] = int(gzipped.headers["content-length"])
                result["snapshot_ms_median"] = round(sorted(timings)[2] * 1000, 1)
            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                page = await browser.new_page(viewport={"width": 1440, "height": 1000})
                await page.goto(f"{base}/console")
                await page.get_by_label("API key").fill(KEY)
                await page.get_by_role("button", name="Sign in").click()
                await page.wait_for_function(
                    "performance.getEntriesByName('tf-first-render').length > 0", timeout=60_000
                )
                result["first_render_ms"] = await page.evaluate(
                    "Math.round(performance.getEntriesByName('tf-first-render')[0].startTime)"
                )
                result["at_risk_rows"] = await page.locator("#at-risk tbody tr").count()
                renders = []
                result["render_after_snapshot_ms"] = await page.evaluate(
                    """Math.round(performance.getEntriesByName('tf-first-render')[0].startTime
                    - performance.getEntriesByType('resource')
                        .find((r) => r.name.includes('/v1/console/snapshot')).responseEnd)"""
                )
                for option in ("15", "60") * 3:  # change the window: a full re-render each time
                    await page.select_option("#window", option)
                    await page.wait_for_timeout(200)
                    renders.append(
                        await page.evaluate("performance.getEntriesByName('tf-render')[0].duration")
                    )
                result["rerender_ms_median"] = round(sorted(renders)[len(renders) // 2], 1)
                result["rerender_ms_max"] = round(max(renders), 1)
                await page.wait_for_timeout(1500)
                result["tick_ms"] = round(
                    await page.evaluate("performance.getEntriesByName('tf-tick')[0].duration"), 1
                )
                # One new chat ticket (due in a minute: the top row): from its event to its row
                # on the page, sla's work included.
                fresh = _ticket(tickets + 1, "urgent", "chat")
                sent = time.perf_counter()
                await _feed(bus, settings.topic("tickets"), [fresh])
                await page.locator(
                    f'#at-risk tr[data-ticket-id="{fresh.ticket.id}"]'
                ).first.wait_for()
                result["event_to_row_ms"] = round((time.perf_counter() - sent) * 1000, 1)
                await browser.close()
            hub = hub_of(app.state.runtime)
            sizes = [len(d.data) for d in hub.ring]
            result["stream_deltas"] = len(sizes)
            result["stream_bytes_per_delta"] = round(sum(sizes) / max(1, len(sizes)), 1)
        finally:
            server.should_exit = True
            await serving
            await bus.stop()
        return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=2500, help="open tickets (2 timers each)")
    parser.add_argument("--at-risk", type=int, default=500, help="of which urgent (at risk)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.tickets, args.at_risk)), indent=2))


if __name__ == "__main__":
    main()
