"""The baseline receiver for ``bench intake``: the smallest honest durable webhook receiver.

One FastAPI endpoint, served by uvicorn with the same settings as ``ticketflow serve``: it checks
the same Standard Webhooks signature (the same library, the same 5-minute window) and inserts the
raw body into one PostgreSQL table before answering 202. No parsing, no dedupe, no outbox: what
any helpdesk webhook endpoint must at least do so that nothing accepted is lost.

Run as its own process: ``python -m services.bench.baseline --port P --dsn postgresql://...``.
"""

from __future__ import annotations

import argparse
import binascii
import contextlib
import sys
from collections.abc import AsyncIterator

import asyncpg
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from standardwebhooks.webhooks import WebhookVerificationError

from services.router.signatures import standard_webhook

TABLE = "bench_baseline_deliveries"


def create_app(dsn: str, secret: str) -> FastAPI:
    webhook = standard_webhook(secret)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Same pool size as SQLAlchemy's default (5 + 10 overflow) used by ticketflow.
        pool = await asyncpg.create_pool(dsn, min_size=5, max_size=15)
        await pool.execute(
            f"CREATE TABLE IF NOT EXISTS {TABLE} (id bigserial PRIMARY KEY, webhook_id text"
            " NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), body text NOT NULL)"
        )
        app.state.pool = pool
        yield
        await pool.close()

    app = FastAPI(lifespan=lifespan)

    @app.get("/readyz")
    async def readyz(request: Request) -> dict[str, str]:
        await request.app.state.pool.fetchval("SELECT 1")
        return {"status": "ready"}

    @app.post("/v1/webhooks/generic", status_code=202)
    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            webhook.verify(body, headers, json_parse=False)
        except (WebhookVerificationError, ValueError, binascii.Error):
            return JSONResponse({"error": {"code": "unauthorized"}}, status_code=401)
        await request.app.state.pool.execute(
            f"INSERT INTO {TABLE} (webhook_id, body) VALUES ($1, $2)",
            headers["webhook-id"],
            body.decode("utf-8"),
        )
        return JSONResponse({"accepted": 1}, status_code=202)

    return app


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from services.server import config

    parser = argparse.ArgumentParser(prog="python -m services.bench.baseline")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--secret", required=True)
    args = parser.parse_args(argv)
    # The uvicorn settings of ``ticketflow serve`` (services/server.py ``config``).
    uvicorn.Server(config(create_app(args.dsn, args.secret), "127.0.0.1", args.port)).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
