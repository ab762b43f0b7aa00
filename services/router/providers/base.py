"""The one interface every vendor module follows, and the helpers they share: pure, no I/O.

Each vendor module has pydantic models of the documented payload (unknown extra fields are
ignored, missing or mistyped required fields raise ``ValidationError`` naming the field) and a
``parse`` function returning a ``Parsed``: the canonical ``TicketUpsert`` /
``TicketMessageReceived`` events, the provider's delivery id (``None`` when it gives none), and
the ticket ids.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared import events as ev


class MappingError(ValueError):
    """A payload value has no canonical meaning; ``field`` is its dotted path."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class PayloadError(ValueError):
    """Pydantic-style errors whose ``loc`` is relative to the whole body."""

    def __init__(self, errors: list[Any]) -> None:
        super().__init__("invalid payload")
        self.errors = errors


@dataclass
class Parsed:
    events: list[ev.InboundEvent] = field(default_factory=list)
    delivery_id: str | None = None

    @property
    def ticket_ids(self) -> list[str]:
        return list(dict.fromkeys(e.subject for e in self.events))


class Payload(BaseModel):
    model_config = ConfigDict(extra="ignore")


def blank_to_none(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return value


def ident(value: str | int | None) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


# A value nobody mapped never refuses a ticket: it gets the safe canonical value, and the raw
# value is kept on the ticket (``source_status`` / ``source_priority``).
DEFAULT_STATUS: ev.Status = "open"
DEFAULT_PRIORITY: ev.Priority = "normal"


@dataclass(frozen=True)
class Mappings:
    """An admin's per-provider maps, raw value (compared without case) → canonical value."""

    status: dict[str, str] = field(default_factory=dict)
    priority: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, status: dict[str, Any] | None, priority: dict[str, Any] | None) -> Mappings:
        return cls(
            status={str(k).strip().lower(): str(v) for k, v in (status or {}).items()},
            priority={str(k).strip().lower(): str(v) for k, v in (priority or {}).items()},
        )


NO_MAPPINGS = Mappings()


def raw_value(value: str | int | None) -> str | None:
    """The vendor's value as text, or None when absent or blank."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def map_value(
    admin: dict[str, str], builtin: dict[str, Any], value: str | int | None, default: Any
) -> Any:
    """Admin map first, then the built-in table, then ``default``; None when absent."""
    raw = raw_value(value)
    if raw is None:
        return None
    key = raw.lower()
    return admin.get(key) or builtin.get(key) or default


def tag_list(value: list[str] | str | None) -> list[str] | None:
    if value is None:
        return None
    items = value if isinstance(value, list) else value.replace(",", " ").split()
    return list(dict.fromkeys(t.strip().lower() for t in items if t and t.strip()))


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def truthy(value: bool | str | None, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    return value.strip().lower() in ("true", "1", "yes")
