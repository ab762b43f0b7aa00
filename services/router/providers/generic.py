"""Generic: one canonical inbound event, for integrators with no vendor format."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from services.router.providers.base import Parsed, Payload, PayloadError
from shared import events as ev


class GenericPayload(Payload):
    """One canonical inbound event: CloudEvents-style ``type`` + ``data`` (section 6)."""

    type: Literal["ticket.upsert", "ticket.message"]
    data: dict[str, Any]


def parse_generic(data: dict[str, Any], delivery_id: str | None) -> Parsed:
    payload = GenericPayload.model_validate(data)
    model = ev.EVENT_TYPES[payload.type]
    try:
        event = model.model_validate({**payload.data, "delivery_id": delivery_id})
    except ValidationError as exc:
        raise PayloadError(
            [{**e, "loc": ("data", *e.get("loc", ()))} for e in exc.errors()]
        ) from exc
    assert isinstance(event, ev.InboundEvent)
    return Parsed(events=[event], delivery_id=delivery_id)
