"""The event bus: one interface, a Kafka implementation and an in-process one.

Both give the same guarantees, checked by one contract test suite: per-key ordering (a key always
maps to the same partition, and a partition is processed in order), at-least-once delivery
(an offset is committed only after its handler returned), one delivery per consumer group, and
bounded retries after which the message goes to ``<topic>.dlq`` with the error.
"""

from shared.bus.base import (
    EventBus,
    Handler,
    Message,
    OutgoingMessage,
    PermanentError,
    Subscription,
)
from shared.bus.kafka import KafkaBus
from shared.bus.memory import MemoryBus

__all__ = [
    "EventBus",
    "Handler",
    "KafkaBus",
    "MemoryBus",
    "Message",
    "OutgoingMessage",
    "PermanentError",
    "Subscription",
]
