"""survey's background sender: sends due surveys, expires old ones, delivers links.

State lives in the database, so a restart picks up whatever was due meanwhile. On PostgreSQL
several processes can run it: due surveys are claimed with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import httpx
from sqlalchemy.ext.asyncio import AsyncSession

from services.survey import delivery, repository, service
from services.survey.models import Survey
from shared.clock import wait_for_wake
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)


class Sender:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.wake = asyncio.Event()
        self.tokens: dict[str, str] = {}  # fresh tokens, until delivered
        self.in_flight: dict[str, asyncio.Task[None]] = {}
        self.client = httpx.AsyncClient()
        self.secret: str | None = self.settings.survey_token_secret

    def _context(self, session: AsyncSession) -> service.SurveyContext:
        return service.SurveyContext.for_session(session, self.runtime)

    async def run_once(self) -> int:
        """One pass: send what is due, expire what is over, start pending deliveries."""
        sent_total = 0
        while True:
            async with self.runtime.transaction() as session:
                expiry = await repository.policy_expiry_hours(session)
                self.secret = await service.link_secret(
                    session, self.settings.survey_token_secret, self.runtime.clock.now()
                )
                sent = await service.send_due(self._context(session), self.secret, expiry)
            for survey, token in sent:
                self.tokens[survey.id] = token
            sent_total += len(sent)
            if len(sent) < 100:
                break
        async with self.runtime.transaction() as session:
            await service.expire_due(self._context(session))
        async with self.runtime.sessionmaker() as session:
            pending = await repository.pending_deliveries(session, set(self.in_flight), 100)
        for survey in pending:
            self.in_flight[survey.id] = asyncio.create_task(self._deliver(survey))
        return sent_total

    async def _deliver(self, survey: Survey) -> None:
        try:
            token = self.tokens.pop(survey.id, None) or service.recover_token(self.secret, survey)
            if token is None:
                status, error = "failed", "link lost on restart: set TICKETFLOW_SURVEY_TOKEN_SECRET"
            else:
                link = service.token_url(self.settings.public_base_url, token)
                try:
                    await delivery.deliver(self.settings, self.client, survey, link)
                    status, error = "delivered", None
                except delivery.DeliveryError as exc:
                    log.warning("survey %s delivery failed: %s", survey.id, exc)
                    status, error = "failed", str(exc)[:2000]
            async with self.runtime.transaction() as session:
                stored = await repository.get_survey(session, survey.id)
                if stored is not None and stored.delivery_status == "pending":
                    stored.delivery_status = status
                    stored.delivery_error = error
        finally:
            self.in_flight.pop(survey.id, None)

    async def close(self) -> None:
        for task in list(self.in_flight.values()):
            task.cancel()
        for task in list(self.in_flight.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose()


async def run_sender(runtime: ServiceRuntime) -> None:
    """The ``background=`` task of survey's runtime."""
    sender = Sender(runtime)
    runtime.state["survey_sender"] = sender
    runtime.state["survey_sender_wake"] = sender.wake.set
    try:
        while True:
            try:
                await sender.run_once()
            except Exception:
                log.exception("survey sender pass failed; retrying")
            sender.wake.clear()
            await wait_for_wake(sender.wake, runtime.settings.survey_sender_poll_seconds)
    finally:
        await sender.close()
