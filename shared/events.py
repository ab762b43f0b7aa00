"""The contract's events: frozen pydantic models, each registered once with its CloudEvents type.

On the wire every event is a CloudEvents 1.0 structured JSON message (``encode`` / ``decode``);
``parse_event`` turns an envelope back into the right model.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, ClassVar, Literal, TypeVar

import orjson
from cloudevents.core.base import BaseCloudEvent, EventFactory
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.spec import SPECVERSION_V1_0
from cloudevents.core.v1.event import CloudEvent
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.clock import utcnow
from shared.telemetry import current_traceparent

Status = Literal["new", "open", "pending", "on_hold", "solved", "closed"]
Priority = Literal["low", "normal", "high", "urgent"]
Channel = Literal["email", "chat", "phone", "web", "social", "api", "other"]
Tier = Literal["standard", "premium", "vip"]
Metric = Literal["first_response", "next_response", "resolution"]
SurveyKind = Literal["csat", "nps", "ces"]
Author = Literal["agent", "customer"]

STATUSES: tuple[Status, ...] = ("new", "open", "pending", "on_hold", "solved", "closed")
PRIORITIES: tuple[Priority, ...] = ("low", "normal", "high", "urgent")
CHANNELS: tuple[Channel, ...] = ("email", "chat", "phone", "web", "social", "api", "other")


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Requester(Model):
    id: str
    email: str | None = None
    name: str | None = None
    tier: Tier = "standard"


class TicketSnapshot(Model):
    """The canonical ticket as router last committed it; ``version`` grows with every change."""

    id: str
    source: str
    external_id: str
    subject: str
    status: Status
    priority: Priority
    channel: Channel
    requester: Requester
    tags: list[str] = Field(default_factory=list)
    group: str | None = None
    assignee_id: str | None = None
    custom_fields: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None = None
    version: int = 1


class MessageInfo(Model):
    id: str
    author: Author
    author_id: str | None = None
    public: bool = True
    created_at: datetime


class Event(Model):
    """Base of every event. Subclasses set ``type`` and ``topic`` and say which ticket they concern."""

    type: ClassVar[str]
    topic: ClassVar[str]

    @property
    def subject(self) -> str:
        raise NotImplementedError


EVENT_TYPES: dict[str, type[Event]] = {}
E = TypeVar("E", bound=type[Event])


def event_type(name: str, topic: str) -> Any:
    """Class decorator registering an event model under its CloudEvents ``type``."""

    def register(cls: E) -> E:
        if name in EVENT_TYPES:
            raise ValueError(f"event type {name} registered twice")
        cls.type = name
        cls.topic = topic
        EVENT_TYPES[name] = cls
        return cls

    return register


# --- inbound: canonical events from any integrator, consumed by router -------------------------


class InboundTicket(Model):
    """Canonical ticket fields as a source reports them; absent fields are left unchanged."""

    subject: str | None = Field(default=None, max_length=1000)
    description: str | None = Field(default=None, max_length=200_000)
    status: Status | None = None
    priority: Priority | None = None
    channel: Channel | None = None
    requester: Requester | None = None
    tags: list[str] | None = None
    group: str | None = None
    assignee_id: str | None = None
    custom_fields: dict[str, Any] | None = None
    # The vendor's raw status / priority, kept on the ticket whatever they were mapped to.
    source_status: str | None = Field(default=None, max_length=255)
    source_priority: str | None = Field(default=None, max_length=255)


class InboundMessage(Model):
    id: str | None = None
    author: Author
    author_id: str | None = None
    public: bool = True
    body: str = Field(default="", max_length=200_000)


class InboundEvent(Event):
    source: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9_-]+$")
    external_id: str = Field(min_length=1, max_length=200)
    occurred_at: datetime
    delivery_id: str | None = None

    @property
    def subject(self) -> str:
        return f"{self.source}:{self.external_id}"


@event_type("ticket.upsert", "inbound")
class TicketUpsert(InboundEvent):
    ticket: InboundTicket
    raw: dict[str, Any] | None = None


@event_type("ticket.message", "inbound")
class TicketMessageReceived(InboundEvent):
    message: InboundMessage
    ticket: InboundTicket | None = None


# --- tickets: router's facts ------------------------------------------------------------------


class TicketEvent(Event):
    ticket: TicketSnapshot

    @property
    def subject(self) -> str:
        return self.ticket.id


@event_type("ticket.created", "tickets")
class TicketCreated(TicketEvent):
    pass


@event_type("ticket.updated", "tickets")
class TicketUpdated(TicketEvent):
    changes: dict[str, list[Any]] = Field(default_factory=dict)


@event_type("ticket.message_added", "tickets")
class TicketMessageAdded(TicketEvent):
    message: MessageInfo


@event_type("ticket.status_changed", "tickets")
class TicketStatusChanged(TicketEvent):
    previous_status: Status


@event_type("ticket.solved", "tickets")
class TicketSolved(TicketEvent):
    pass


@event_type("ticket.reopened", "tickets")
class TicketReopened(TicketEvent):
    previous_status: Status


@event_type("ticket.closed", "tickets")
class TicketClosed(TicketEvent):
    pass


@event_type("ticket.prioritized", "tickets")
class TicketPrioritized(TicketEvent):
    previous_priority: Priority
    reason: str


@event_type("ticket.assigned", "tickets")
class TicketAssigned(TicketEvent):
    previous_assignee_id: str | None = None
    reason: str


@event_type("ticket.unassigned", "tickets")
class TicketUnassigned(TicketEvent):
    previous_assignee_id: str | None = None
    reason: str


# --- sla --------------------------------------------------------------------------------------


class SlaEvent(Event):
    ticket_id: str
    metric: Metric
    timer_id: str
    policy_id: str | None = None

    @property
    def subject(self) -> str:
        return self.ticket_id


@event_type("sla.started", "sla")
class SlaStarted(SlaEvent):
    started_at: datetime
    due_at: datetime | None = None
    target_minutes: int


@event_type("sla.paused", "sla")
class SlaPaused(SlaEvent):
    paused_at: datetime
    remaining_seconds: float


@event_type("sla.resumed", "sla")
class SlaResumed(SlaEvent):
    resumed_at: datetime
    due_at: datetime | None = None


@event_type("sla.met", "sla")
class SlaMet(SlaEvent):
    met_at: datetime
    due_at: datetime | None = None
    breached: bool = False


@event_type("sla.warning", "sla")
class SlaWarning(SlaEvent):
    fraction: float
    warn_at: datetime
    due_at: datetime
    fired_at: datetime
    late: bool = False


@event_type("sla.breached", "sla")
class SlaBreached(SlaEvent):
    due_at: datetime
    fired_at: datetime
    late: bool = False


@event_type("sla.escalated", "sla")
class SlaEscalated(SlaEvent):
    level: int
    when: Literal["warning", "breach"]
    actions: dict[str, Any] = Field(default_factory=dict)


class GoalEvent(Event):
    """A service goal changed status (sla). Key and subject are the goal id."""

    goal_id: str
    name: str
    metric: str
    status: str
    previous_status: str | None = None
    period_start: datetime
    period_end: datetime
    value: float | None = None
    target: float
    sample_size: int = 0
    projection: dict[str, float | None] | None = None
    needed: float | None = None
    evaluated_at: datetime

    @property
    def subject(self) -> str:
        return self.goal_id


@event_type("goal.at_risk", "sla")
class GoalAtRisk(GoalEvent):
    pass


@event_type("goal.missed", "sla")
class GoalMissed(GoalEvent):
    pass


@event_type("goal.met", "sla")
class GoalMet(GoalEvent):
    pass


@event_type("goal.recovered", "sla")
class GoalRecovered(GoalEvent):
    pass


# --- surveys ----------------------------------------------------------------------------------


class SurveyEvent(Event):
    survey_id: str
    ticket_id: str
    policy_id: str | None = None
    kind: SurveyKind

    @property
    def subject(self) -> str:
        return self.ticket_id


@event_type("survey.scheduled", "surveys")
class SurveyScheduled(SurveyEvent):
    send_at: datetime


@event_type("survey.sent", "surveys")
class SurveySent(SurveyEvent):
    sent_at: datetime
    expires_at: datetime | None = None


@event_type("survey.answered", "surveys")
class SurveyAnswered(SurveyEvent):
    score: int
    comment: str | None = None
    answered_at: datetime


@event_type("survey.cancelled", "surveys")
class SurveyCancelled(SurveyEvent):
    reason: str


@event_type("survey.expired", "surveys")
class SurveyExpired(SurveyEvent):
    expired_at: datetime


@event_type("survey.follow_up_required", "surveys")
class SurveyFollowUpRequired(SurveyEvent):
    score: int
    comment: str | None = None
    requester: Requester | None = None
    # Who handled the ticket (its assignee and group when it was solved): the person to answer.
    assignee_id: str | None = None
    group: str | None = None


# --- envelope ---------------------------------------------------------------------------------


class Envelope(Model):
    """A decoded CloudEvent: the attributes the contract fixes, plus ``data``."""

    id: str
    source: str
    type: str
    subject: str | None = None
    time: datetime | None = None
    traceparent: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class EventDecodeError(ValueError):
    """A message is not a CloudEvent we can read, or its data does not fit its type."""


class _JSONFormat(JSONFormat):
    """The CloudEvents JSON format (``application/cloudevents+json``), written and read by
    orjson: the same documents as the SDK's standard-library code (times in UTC with ``Z``), in
    a fraction of the CPU. Every event of every service is written and read here; whatever is
    not the common case (another spec version, ``data_base64``, a time ``fromisoformat`` cannot
    read, invalid JSON) goes to the SDK's own reader, whose answer is the contract."""

    def read(self, event_factory: EventFactory | None, data: str | bytes) -> BaseCloudEvent:
        try:
            attributes = orjson.loads(data)
            time = attributes.get("time") if isinstance(attributes, dict) else None
            if (
                event_factory is not None
                or not isinstance(attributes, dict)
                or attributes.get("specversion") != SPECVERSION_V1_0
                or "data_base64" in attributes
            ):
                raise ValueError("not the common case")
            if isinstance(time, str):
                attributes["time"] = datetime.fromisoformat(time)
        except ValueError:  # orjson.JSONDecodeError is one
            return super().read(event_factory, data)
        return CloudEvent(attributes, attributes.pop("data", None))

    def write(self, event: BaseCloudEvent) -> bytes:
        data = event.get_data()
        if not isinstance(data, dict):
            return super().write(event)
        try:
            return orjson.dumps({**event.get_attributes(), "data": data}, option=orjson.OPT_UTC_Z)
        except orjson.JSONEncodeError:  # what orjson refuses (a lone surrogate), the SDK writes
            return super().write(event)


_FORMAT = _JSONFormat()


def new_event_id() -> str:
    return str(uuid.uuid4())


def encode(
    event: Event,
    *,
    source: str,
    event_id: str | None = None,
    time: datetime | None = None,
    traceparent: str | None = None,
) -> tuple[str, bytes, dict[str, bytes]]:
    """Serialize to a Kafka structured-mode message: (key, value, headers); key = ticket id.

    ``traceparent`` defaults to the current trace context (``shared.telemetry``)."""
    attributes: dict[str, Any] = {
        "id": event_id or new_event_id(),
        "source": source,
        "type": event.type,
        "subject": event.subject,
        "time": time or utcnow(),
        "datacontenttype": "application/json",
    }
    traceparent = traceparent or current_traceparent()
    if traceparent:
        attributes["traceparent"] = traceparent
    message = ce_kafka.to_structured_event(
        CloudEvent(attributes=attributes, data=event.model_dump(mode="json")),
        event_format=_FORMAT,
        key_mapper=lambda _: event.subject,
    )
    return event.subject, message.value, dict(message.headers)


def decode(value: bytes, key: str | bytes | None = None) -> Envelope:
    """Read a structured-mode CloudEvent; raises ``EventDecodeError`` when it is not one."""
    try:
        cloud_event = ce_kafka.from_structured_event(
            ce_kafka.KafkaMessage(headers={}, key=key, value=value), event_format=_FORMAT
        )
    except (BaseCloudEventException, ValueError, TypeError, AttributeError) as exc:
        raise EventDecodeError(f"not a CloudEvents 1.0 JSON message: {exc}") from exc
    attrs = cloud_event.get_attributes()
    data = cloud_event.get_data()
    if not isinstance(data, dict):
        raise EventDecodeError("CloudEvent data must be a JSON object")
    try:
        return Envelope(
            id=attrs["id"],
            source=attrs["source"],
            type=attrs["type"],
            subject=attrs.get("subject"),
            time=attrs.get("time"),
            traceparent=attrs.get("traceparent"),
            data=data,
        )
    except ValidationError as exc:
        raise EventDecodeError(str(exc)) from exc


def peek_type(value: bytes) -> str | None:
    """A structured-mode message's CloudEvents ``type``, read without building the event (None
    when the message is not a JSON object with a string ``type``): a consumer passes over the
    types it has no handler for at a tenth of ``decode``'s cost. (router reads every event on
    ``sla`` for ``sla.escalated`` alone.)"""
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    kind = document.get("type") if isinstance(document, dict) else None
    return kind if isinstance(kind, str) else None


def parse_event(envelope: Envelope) -> Event:
    """The event model for an envelope; raises ``EventDecodeError`` for an unknown type or bad data."""
    model = EVENT_TYPES.get(envelope.type)
    if model is None:
        raise EventDecodeError(f"unknown event type {envelope.type!r}")
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        raise EventDecodeError(f"{envelope.type}: {exc}") from exc
