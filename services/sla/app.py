"""sla's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from services.sla.api import router
from services.sla.handlers import CONSUMES, EVENT_HANDLERS
from services.sla.models import metadata
from services.sla.scheduler import run_scheduler
from services.sla.webhooks import run_webhook_deliverer
from shared.app import create_service_app
from shared.bus import EventBus
from shared.clock import Clock
from shared.runtime import ServiceRuntime
from shared.settings import Settings, get_settings


def create_app(
    settings: Settings | None = None, *, bus: EventBus | None = None, clock: Clock | None = None
) -> FastAPI:
    settings = settings or get_settings()

    def build_runtime() -> ServiceRuntime:
        return ServiceRuntime(
            name="sla",
            settings=settings,
            metadata=metadata,
            handlers=EVENT_HANDLERS,
            consumes=CONSUMES,
            bus=bus,
            clock=clock,
            background=(run_scheduler, run_webhook_deliverer),
        )

    return create_service_app(
        service="sla",
        description="SLA policies, business-hours timers, breaches, escalations and reports.",
        settings=settings,
        build_runtime=build_runtime,
        routers=[router],
    )
