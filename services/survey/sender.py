"""survey's background sender: sends due surveys and expires old ones.

State lives in the database, so a restart picks up whatever was due meanwhile. On PostgreSQL
several processes can run it: due surveys are claimed with ``FOR UPDATE SKIP LOCKED``. Sending
records the link's deliveries in the same transaction; ``services.survey.delivery`` (through
``shared.delivery``) gets them out.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from services.survey import repository, service
from shared.clock import wait_for_wake
from shared.faults import unavailable_dependency
from shared.runtime import ServiceRuntime

log = logging.getLogger(__name__)

BATCH = 100


@dataclass
class SenderState:
    """The process's sender wake-up: a solved ticket's handler sets it after its commit."""

    wake: asyncio.Event = field(default_factory=asyncio.Event)


class Sender:
    def __init__(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self.wake = runtime.state_of(SenderState).wake

    def _context(self, session: AsyncSession) -> service.SurveyContext:
        return service.SurveyContext.for_session(session, self.runtime)

    async def run_once(self) -> int:
        """One pass: send what is due (recording its deliveries), expire what is over."""
        sent_total = 0
        while True:
            async with self.runtime.transaction() as session:
                expiry = await repository.policy_expiry_hours(session)
                secret = await service.link_secret(
                    session, self.settings.survey_token_secret, self.runtime.clock.now()
                )
                sent = await service.send_due(
                    self._context(session),
                    secret,
                    expiry,
                    BATCH,
                    base_url=self.settings.public_base_url,
                )
            sent_total += len(sent)
            if len(sent) < BATCH:
                break
        async with self.runtime.transaction() as session:
            await service.expire_due(self._context(session))
        return sent_total


async def run_sender(runtime: ServiceRuntime) -> None:
    """The ``background=`` task of survey's runtime."""
    sender = Sender(runtime)
    while True:
        try:
            await sender.run_once()
        except Exception as exc:
            dependency = unavailable_dependency(exc)
            if dependency is None:
                log.exception("survey sender pass failed; retrying")
            else:
                log.warning("survey sender waits for the %s: %r", dependency, exc)
        sender.wake.clear()
        await wait_for_wake(sender.wake, runtime.settings.survey_sender_poll_seconds)
