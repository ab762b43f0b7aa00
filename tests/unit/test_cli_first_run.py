"""What a newcomer sees first: ``ticketflow --version``, the dev banner, quiet logs."""

from __future__ import annotations

import logging
from importlib.metadata import version
from pathlib import Path

import pytest

from services.cli import main
from services.dev import DEV_API_KEYS, banner
from shared.logging import configure_logging
from shared.settings import Settings


def test_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"ticketflow {version('ticketflow')}"


def test_dev_banner_names_every_url_and_both_dev_keys() -> None:
    settings = Settings(api_keys=DEV_API_KEYS)
    ports = {"router": 9001, "sla": 9002, "survey": 9003}
    text = banner(settings, ports, Path("/data"), dev_keys=True)
    for port in ports.values():
        assert f"http://127.0.0.1:{port}" in text
    assert "console http://127.0.0.1:9002/console" in text
    assert "API key (admin):  dev-admin-key" in text
    assert "API key (reader): dev-reader-key" in text
    # Keys the user configured are not echoed.
    own = banner(Settings(api_keys="secret:admin"), ports, Path("/data"), dev_keys=False)
    assert "secret" not in own


def test_dev_logging_keeps_uvicorn_and_httpx_quiet() -> None:
    try:
        configure_logging("info", "text", embedded=True)
        assert not logging.getLogger("uvicorn.error").isEnabledFor(logging.INFO)
        assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)
        assert logging.getLogger("ticketflow.demo").isEnabledFor(logging.INFO)
        configure_logging("debug", "text", embedded=True)
        assert logging.getLogger("uvicorn.error").isEnabledFor(logging.DEBUG)
    finally:
        logging.getLogger("uvicorn.error").setLevel(logging.NOTSET)
        configure_logging("info", "json")


def test_only_router_splits_into_api_and_worker(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TICKETFLOW_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    assert main(["serve", "sla", "--role", "worker"]) == 2
    assert "only router splits" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["serve", "router", "--role", "janitor"])
    assert exit_.value.code == 2
