"""Real destinations for outbound deliveries: an HTTP receiver and an SMTP mailbox."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from aiosmtpd.controller import Controller
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.launcher import free_port
from tests.conftest import eventually


class WebhookReceiver:
    """A real HTTP server recording what it receives.

    It answers the statuses in ``responses`` in turn, then ``default``. While ``held`` is
    clear, requests are recorded and then wait (a receiver that takes forever to answer).
    """

    def __init__(
        self, failures: int = 0, *, responses: list[int] | None = None, default: int = 204
    ) -> None:
        self.responses = list(responses or []) or [503] * failures
        self.default = default
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.held = asyncio.Event()
        self.held.set()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/hook"

    @property
    def ids(self) -> list[str]:
        return [headers["webhook-id"] for headers, _ in self.received]

    async def hook(self, request: Request) -> Response:
        self.received.append((dict(request.headers), await request.body()))
        await self.held.wait()
        status = self.responses.pop(0) if self.responses else self.default
        return Response(status_code=status)

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator[WebhookReceiver]:
        app = Starlette(routes=[Route("/hook", self.hook, methods=["POST"])])
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        task = asyncio.create_task(server.serve())
        await eventually(lambda: asyncio.sleep(0, server.started))
        try:
            yield self
        finally:
            self.held.set()
            server.should_exit = True
            await task


class Mailbox:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.content)
        return "250 OK"


@contextlib.contextmanager
def smtp_server() -> Any:
    """A real SMTP server on a free port: yields (mailbox, port)."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()
