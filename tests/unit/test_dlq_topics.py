"""``ticketflow dlq`` accepts a topic with or without the prefix, or its DLQ's name."""

from __future__ import annotations

import pytest

from services.dlq import topic_names
from shared.settings import Settings


@pytest.mark.parametrize(
    "given", ["tickets", "ticketflow.tickets", "ticketflow.tickets.dlq", " tickets.dlq "]
)
def test_topic_names(given: str) -> None:
    settings = Settings(topic_prefix="ticketflow.")
    assert topic_names(settings, given) == ("ticketflow.tickets", "ticketflow.tickets.dlq")


def test_without_a_broker_the_command_says_what_is_missing(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.cli import main

    monkeypatch.delenv("TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["dlq", "list", "tickets"]) == 2
    assert "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err
