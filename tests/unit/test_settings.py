"""Settings: a bad value stops start-up with one line naming the variable."""

from __future__ import annotations

import pytest

from services.cli import main
from shared.settings import SettingsError, load_settings, parse_api_keys


def test_api_keys_are_parsed() -> None:
    assert parse_api_keys("a:admin, b:reader") == {"a": "admin", "b": "reader"}
    assert parse_api_keys("") == {}


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("TICKETFLOW_DATABASE_URL", "mysql://x", "TICKETFLOW_DATABASE_URL"),
        ("TICKETFLOW_API_KEYS", "key:owner", "TICKETFLOW_API_KEYS"),
        ("TICKETFLOW_TOPIC_PREFIX", "bad prefix", "TICKETFLOW_TOPIC_PREFIX"),
        ("TICKETFLOW_TOPIC_PARTITIONS", "zero", "TICKETFLOW_TOPIC_PARTITIONS"),
    ],
)
def test_bad_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=fragment) as info:
        load_settings()
    assert "\n" not in str(info.value)


def test_cli_prints_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKETFLOW_DATABASE_URL", "oracle://nope")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("ticketflow: TICKETFLOW_DATABASE_URL:")


def test_serve_requires_kafka(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["serve", "router"]) == 2
    assert "TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS" in capsys.readouterr().err
