"""Durable outbound delivery: signed webhooks and e-mails, at least once, with a log.

A service that sends something out (sla's webhook subscriptions and escalation e-mails, survey's
links) writes one *delivery row* per message and destination in the same transaction as the
state change that causes it (an outbox of its own), in a table of its schema built from
``DeliveryMixin``. A background ``Deliverer`` claims due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; on SQLite the write lock taken at ``BEGIN IMMEDIATE`` serializes claims), leases them
for ``LEASE_SECONDS``, sends, and records the outcome:

- 2xx (or the SMTP server accepting the mail): ``delivered``;
- anything else: retried after an exponential backoff with jitter (``RetryPolicy``), every
  attempt appended to ``attempt_log``; after ``max_attempts`` (about 8 hours) or a permanent
  error (an unusable URL, SMTP 5xx, no SMTP server configured) the row is ``failed`` (given up).

A crash between sending and recording leaves the lease to expire, so the message is sent again
with the same ``webhook-id`` (the row id): receivers drop repeats. Nothing is lost.

Webhooks follow Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and
``webhook-signature: v1,<base64 HMAC-SHA256>`` signed with the destination's ``whsec_`` secret.
"""

from shared.delivery.retry import Outcome, RetryPolicy, next_state
from shared.delivery.rows import (
    Channel,
    DeliveryMixin,
    DeliveryRead,
    delivery_read,
    email_body,
    new_delivery,
    webhook_body,
)
from shared.delivery.send import check_secret, send_email, send_webhook, signed_headers
from shared.delivery.worker import (
    CONCURRENCY,
    LEASE_SECONDS,
    Deliverer,
    DeliverySpec,
    background,
)

__all__ = [
    "CONCURRENCY",
    "LEASE_SECONDS",
    "Channel",
    "Deliverer",
    "DeliveryMixin",
    "DeliveryRead",
    "DeliverySpec",
    "Outcome",
    "RetryPolicy",
    "background",
    "check_secret",
    "delivery_read",
    "email_body",
    "new_delivery",
    "next_state",
    "send_email",
    "send_webhook",
    "signed_headers",
    "webhook_body",
]
