"""router's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from services.router.api import router
from services.router.handlers import CONSUMES, EVENT_HANDLERS
from services.router.models import metadata
from services.router.routing import fold_loads, sweep_queue
from services.router.service import RouterContext
from services.router.webhooks_api import audit_router, mappings_router
from services.router.webhooks_api import router as webhooks_router
from shared.app import create_service_app
from shared.bus import EventBus
from shared.clock import Clock
from shared.settings import Settings


def create_app(
    settings: Settings | None = None, *, bus: EventBus | None = None, clock: Clock | None = None
) -> FastAPI:
    return create_service_app(
        service="router",
        description="The canonical ticket, webhook intake, agents and routing.",
        settings=settings,
        metadata=metadata,
        handlers=EVENT_HANDLERS,
        consumes=CONSUMES,
        background=(sweep_queue, fold_loads),
        unit_of_work=RouterContext,
        # The webhook door first: a request is matched against the routes in order.
        routers=[webhooks_router, router, audit_router, mappings_router],
        bus=bus,
        clock=clock,
    )
