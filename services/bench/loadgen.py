"""The load generator, run as its own process so it never shares an event loop with what it
measures: ``python -m services.bench.loadgen``.

It posts signed generic webhooks (Standard Webhooks) over keep-alive HTTP/1.1 connections with a
deliberately small client (plain asyncio streams on uvloop: httpx would spend more CPU than the
server on this 2-core machine, and both receivers face the same client anyway).

Two modes:

- ``closed`` (intake): ``--concurrency`` connections post back to back for ``--duration``
  seconds after ``--warmup``; prints a JSON summary (accepted, errors, latencies).
- ``open`` (pipeline): ``--count`` tickets offered at ``--rate`` per second over up to
  ``--concurrency`` connections; prints per-ticket send and answer wall-clock times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import uvloop
from standardwebhooks.webhooks import Webhook

from services.router.signatures import standard_webhook


def ticket_body(external_id: str, index: int) -> bytes:
    """One canonical ``ticket.upsert``, as an integrator would post it."""
    return json.dumps(
        {
            "type": "ticket.upsert",
            "data": {
                "source": "bench",
                "external_id": external_id,
                "occurred_at": datetime.now(UTC).isoformat(),
                "ticket": {
                    "subject": f"Order {index} never arrived",
                    "description": "Tracking says delivered, the box is not here.",
                    "status": "open",
                    "priority": "normal",
                    "channel": "web",
                    "requester": {"id": f"cust-{index % 1000}", "tier": "standard"},
                },
            },
        }
    ).encode()


class Connection:
    """One keep-alive HTTP/1.1 connection; reconnects after an error."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, headers: dict[str, str], body: bytes) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        head = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}", "", ""]
        try:
            self.writer.write("\r\n".join(head).encode() + body)
            status_line = await self.reader.readline()
            if not status_line:
                raise ConnectionError("connection closed")
            status = int(status_line.split()[1])
            length = 0
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if length:
                await self.reader.readexactly(length)
            return status
        except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


@dataclass
class Poster:
    url: str
    secret: str
    prefix: str
    webhook: Webhook = field(init=False)

    def __post_init__(self) -> None:
        self.webhook = standard_webhook(self.secret)
        parts = urlsplit(self.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.path = parts.path or "/"

    def signed(self, index: int) -> tuple[str, dict[str, str], bytes]:
        external_id = f"{self.prefix}-{index}"
        body = ticket_body(external_id, index)
        message_id = f"msg_{uuid.uuid4().hex}"
        now = datetime.now(UTC)
        signature = self.webhook.sign(message_id, now, body.decode())
        headers = {
            "webhook-id": message_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        return external_id, headers, body


async def closed_loop(poster: Poster, concurrency: int, warmup: float, duration: float) -> dict:
    start = time.perf_counter()
    measure_from = start + warmup
    stop_at = measure_from + duration
    counter = iter(range(10**12))
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors = 0

    async def worker() -> None:
        nonlocal errors
        connection = Connection(poster.host, poster.port)
        while time.perf_counter() < stop_at:
            _, headers, body = poster.signed(next(counter))
            began = time.perf_counter()
            try:
                status = await connection.post(poster.path, headers, body)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                status = 0
            ended = time.perf_counter()
            if began < measure_from or ended > stop_at:
                continue
            if status == 202:
                latencies.append(ended - began)
            else:
                errors += 1
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "mode": "closed",
        "concurrency": concurrency,
        "duration_s": duration,
        "accepted": len(latencies),
        "errors": errors,
        "error_statuses": statuses,
        "latencies_s": latencies,
    }


async def open_loop(poster: Poster, concurrency: int, count: int, rate: float) -> dict:
    # Signed before the clock starts (their timestamps stay well within the receiver's
    # tolerance): the generator's own CPU during the run is only sending and reading.
    requests = [poster.signed(index) for index in range(count)]
    start = time.perf_counter() + 0.2
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)
    sends: dict[str, list[float]] = {}
    errors = 0
    statuses: dict[str, int] = {}

    async def worker() -> None:
        nonlocal errors
        connection = Connection(poster.host, poster.port)
        while not queue.empty():
            index = queue.get_nowait()
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            external_id, headers, body = requests[index]
            sent = time.time()
            try:
                status = await connection.post(poster.path, headers, body)
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                status = 0
            if status == 202:
                sends[f"bench:{external_id}"] = [sent, time.time()]
            else:
                errors += 1
                statuses[str(status)] = statuses.get(str(status), 0) + 1
        connection.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {
        "mode": "open",
        "offered_rate": rate,
        "count": count,
        "errors": errors,
        "error_statuses": statuses,
        "sends": sends,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.bench.loadgen")
    parser.add_argument("mode", choices=("closed", "open"))
    parser.add_argument("--url", required=True)
    parser.add_argument("--secret", required=True)
    parser.add_argument("--prefix", default=uuid.uuid4().hex[:8])
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=500.0)
    args = parser.parse_args(argv)
    poster = Poster(args.url, args.secret, args.prefix)
    result: dict[str, Any]
    # uvloop, as the servers run: the generator takes less of the CPU they share.
    if args.mode == "closed":
        result = uvloop.run(closed_loop(poster, args.concurrency, args.warmup, args.duration))
    else:
        result = uvloop.run(open_loop(poster, args.concurrency, args.count, args.rate))
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
