"""sla's outbound messages: its events to webhook subscriptions, escalation e-mails.

Each sla event is written, in the transaction that emits it, as one delivery row per matching
subscription (``event_types`` entries are exact types like ``sla.breached`` or a prefix wildcard
like ``sla.*``); an escalation whose actions ``notify`` e-mail addresses also gets one e-mail row
per address when SMTP is configured (``TICKETFLOW_SMTP_HOST``). ``shared.delivery`` sends them
apart from the event pipeline, retries with backoff and keeps the log of every attempt.

Webhook body: ``{"type", "timestamp", "data"}`` (``data`` is the event; an ``sla.escalated``
event's also has ``recipients``), signed per Standard Webhooks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.sla import repository
from services.sla.models import Delivery, WebhookSubscription
from shared import events as ev
from shared.delivery import DeliverySpec, background, email_body, new_delivery, webhook_body
from shared.delivery import check_secret as check_secret
from shared.delivery import delivery_read as delivery_log

__all__ = [
    "check_secret",
    "delivery_log",
    "enqueue",
    "recipients",
    "run_webhook_deliverer",
    "wants",
]


def wants(subscription: WebhookSubscription, event_type: str) -> bool:
    for pattern in subscription.event_types:
        if pattern in (event_type, "*") or (
            pattern.endswith(".*") and event_type.startswith(pattern[:-1])
        ):
            return True
    return False


def recipients(notify: str | Sequence[str] | None) -> list[str]:
    """The names or addresses an escalation's ``notify`` action names, in order, once each."""
    if notify is None:
        return []
    items = [notify] if isinstance(notify, str) else list(notify)
    return list(dict.fromkeys(item.strip() for item in items if item.strip()))


def _event_data(event: ev.Event) -> dict[str, Any]:
    data = event.model_dump(mode="json")
    if isinstance(event, ev.SlaEscalated):
        data["recipients"] = recipients(event.actions.get("notify"))
    return data


def _escalation_mail(event: ev.SlaEscalated) -> str:
    subject = f"SLA escalation (level {event.level}): {event.metric} of {event.ticket_id}"
    moment = "has breached" if event.when == "breach" else "is at risk"
    text = (
        f"The {event.metric.replace('_', ' ')} target of ticket {event.ticket_id} {moment}.\n\n"
        f"Escalation level: {event.level}\nPolicy: {event.policy_id or 'default'}\n"
        f"Timer: {event.timer_id}\n"
    )
    return email_body(subject, text)


async def enqueue(
    session: AsyncSession,
    subscriptions: Sequence[WebhookSubscription],
    event: ev.Event,
    event_id: str,
    now: datetime,
    *,
    email: bool,
) -> None:
    """Record the deliveries ``event`` causes, in the caller's transaction."""
    body: str | None = None
    for subscription in subscriptions:
        if not wants(subscription, event.type):
            continue
        body = body or webhook_body(event.type, _event_data(event), now)
        session.add(
            new_delivery(
                Delivery,
                channel="webhook",
                target=subscription.url,
                payload=body,
                event_id=event_id,
                event_type=event.type,
                ticket_id=event.subject,
                now=now,
                subscription_id=subscription.id,
            )
        )
    if email and isinstance(event, ev.SlaEscalated):
        addresses = [r for r in recipients(event.actions.get("notify")) if "@" in r]
        for address in addresses:
            session.add(
                new_delivery(
                    Delivery,
                    channel="email",
                    target=address,
                    payload=_escalation_mail(event),
                    event_id=event_id,
                    event_type=event.type,
                    ticket_id=event.subject,
                    now=now,
                )
            )


async def _secret_for(session: AsyncSession, row: Delivery) -> str | None:
    if row.subscription_id is None:
        return None
    subscription = await repository.get_subscription(session, row.subscription_id)
    return None if subscription is None else subscription.secret


DELIVERIES = DeliverySpec(model=Delivery, secret_for=_secret_for)
run_webhook_deliverer = background(DELIVERIES)
