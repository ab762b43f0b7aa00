"""survey's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI

from services.survey.api import router
from services.survey.delivery import run_deliverer
from services.survey.handlers import CONSUMES, EVENT_HANDLERS
from services.survey.models import metadata
from services.survey.pages import router as pages_router
from services.survey.sender import run_sender
from services.survey.service import SurveyContext
from shared.app import create_service_app
from shared.bus import EventBus
from shared.clock import Clock
from shared.settings import Settings


def create_app(
    settings: Settings | None = None, *, bus: EventBus | None = None, clock: Clock | None = None
) -> FastAPI:
    return create_service_app(
        service="survey",
        description="Survey policies, surveys, responses and satisfaction reports.",
        settings=settings,
        metadata=metadata,
        handlers=EVENT_HANDLERS,
        consumes=CONSUMES,
        background=(run_sender, run_deliverer),
        unit_of_work=SurveyContext,
        routers=[router, pages_router],
        bus=bus,
        clock=clock,
    )
