"""Which FastAPI app each service name means, for ``ticketflow serve`` and ``ticketflow dev``.

Apart from ``cli.py`` so that ``dev.py`` (which ``cli.py`` starts) need not import the command.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from shared.settings import Settings


def create_service(service: str, settings: Settings, **kwargs: Any) -> FastAPI:
    """The FastAPI app of one service; ``kwargs`` go to its ``create_app`` (``bus``, ``clock``)."""
    if service == "router":
        from services.router.app import create_app
    elif service == "sla":
        from services.sla.app import create_app
    elif service == "survey":
        from services.survey.app import create_app
    else:
        raise ValueError(f"unknown service {service!r}")
    return create_app(settings, **kwargs)
