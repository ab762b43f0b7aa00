"""Time source. Services take a ``Clock`` so tests can control time."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware UTC."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time (returns early only if cancelled)."""
        ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


def utcnow() -> datetime:
    return datetime.now(UTC)


async def wait_for_wake(wake: asyncio.Event, seconds: float) -> bool:
    """Wait until ``wake`` is set or ``seconds`` pass; True if woken.

    Uses ``asyncio.timeout`` rather than ``asyncio.wait_for``: on Python 3.11 ``wait_for`` can
    swallow a cancellation that races with the event being set, and the task never stops.
    """
    try:
        async with asyncio.timeout(max(0.0, seconds)):
            await wake.wait()
        return True
    except TimeoutError:
        return False
