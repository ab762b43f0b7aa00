"""sla's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from services.sla.api import router
from services.sla.console import router as console_router
from services.sla.console import run_stream_feed
from services.sla.goals.api import router as goals_router
from services.sla.goals.watch import run_goal_watch
from services.sla.handlers import CONSUMES, EVENT_HANDLERS
from services.sla.models import metadata
from services.sla.scheduler import run_scheduler
from services.sla.service import SlaContext
from services.sla.webhooks import run_webhook_deliverer
from shared.app import create_service_app
from shared.bus import EventBus
from shared.clock import Clock
from shared.settings import Settings


def create_app(
    settings: Settings | None = None, *, bus: EventBus | None = None, clock: Clock | None = None
) -> FastAPI:
    return create_service_app(
        service="sla",
        description="SLA policies, business-hours timers, breaches, escalations and reports.",
        settings=settings,
        metadata=metadata,
        handlers=EVENT_HANDLERS,
        consumes=CONSUMES,
        background=(run_scheduler, run_webhook_deliverer, run_goal_watch, run_stream_feed),
        unit_of_work=SlaContext,
        routers=[goals_router, router, console_router],
        bus=bus,
        clock=clock,
    )
