"""Settings read from ``TICKETFLOW_*`` environment variables and ``.env``.

Nothing reads settings at import time: services receive a ``Settings`` from ``get_settings()``
(a FastAPI dependency that tests override) or from the CLI.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from fastapi import Request
from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICES = ("router", "sla", "survey")
Role = Literal["admin", "reader"]


class SettingsError(Exception):
    """A setting is invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKETFLOW_",
        env_file=".env",
        env_ignore_empty=True,
        extra="ignore",
        populate_by_name=True,
    )

    database_url: str = "sqlite+aiosqlite:///./.ticketflow/ticketflow.db"
    kafka_bootstrap_servers: str | None = None
    topic_prefix: str = "ticketflow."
    topic_partitions: int = Field(default=8, ge=1, le=1024)
    api_keys: str = ""
    webhook_secret_zendesk: str | None = None
    webhook_secret_freshdesk: str | None = None
    webhook_secret_jira: str | None = None
    webhook_secret_generic: str | None = None
    public_base_url: str = "http://127.0.0.1:8003"
    # Webhook intake rate limit per source (provider + client address), per router process.
    intake_rate_per_second: float = Field(default=50.0, gt=0, le=100_000)
    intake_burst: int = Field(default=200, ge=1, le=1_000_000)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    consumer_max_retries: int = Field(default=5, ge=0, le=100)
    outbox_poll_seconds: float = Field(default=0.5, gt=0, le=60)
    # What a ``serve router`` process runs (sla and survey run only ``all``): ``all``; ``api``
    # (HTTP and the relay of what it writes, no consumers or background loops); ``worker``
    # (consumers, relay, background loops; only /healthz, /readyz and /metrics over HTTP).
    # ``serve --role`` sets it.
    process_role: Literal["all", "api", "worker"] = "all"
    # survey: survey links are HMAC(secret, survey id); without it links are random and shown
    # only in the delivery, never again (only their SHA-256 is stored).
    survey_token_secret: str | None = None
    survey_sender_poll_seconds: float = Field(default=5.0, gt=0, le=3600)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_sender: str = "surveys@ticketflow.invalid"
    # sla's ops console reads agents and routing history from router's public API and survey
    # results from survey's, with the signed-in viewer's own key.
    router_url: str = "http://127.0.0.1:8001"
    survey_url: str = "http://127.0.0.1:8003"

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str) -> str:
        if not value.startswith(("postgresql+asyncpg://", "sqlite+aiosqlite://")):
            raise ValueError(
                "must be a postgresql+asyncpg:// or sqlite+aiosqlite:// SQLAlchemy URL"
            )
        return value

    @field_validator("api_keys")
    @classmethod
    def _api_keys_format(cls, value: str) -> str:
        parse_api_keys(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _topic_prefix(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        if not set(value) <= allowed:
            raise ValueError("may only contain letters, digits, '.', '_' and '-'")
        return value

    def api_key_roles(self) -> dict[str, Role]:
        return parse_api_keys(self.api_keys)

    def topic(self, name: str) -> str:
        """The full topic name for a contract topic (``tickets`` → ``ticketflow.tickets``)."""
        return f"{self.topic_prefix}{name}"

    def consumer_group(self, service: str) -> str:
        """A service's Kafka consumer group, namespaced like its topics (``ticketflow.router``),
        so two deployments sharing a cluster with different prefixes never share a group."""
        return f"{self.topic_prefix}{service}"

    def webhook_secret(self, provider: str) -> str | None:
        secret: str | None = getattr(self, f"webhook_secret_{provider}")
        return secret or None


def parse_api_keys(value: str) -> dict[str, Role]:
    """Parse ``key:role,key2:role`` into a mapping; raises ``ValueError`` on a bad entry."""
    keys: dict[str, Role] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        key, sep, role = entry.rpartition(":")
        if not sep or not key:
            raise ValueError(f"entry {entry[:4]}… must be key:role")
        if role not in ("admin", "reader"):
            raise ValueError(f"role {role!r} must be admin or reader")
        keys[key] = role  # type: ignore[assignment]
    return keys


def load_settings(**overrides: object) -> Settings:
    """Build settings, turning a validation failure into one line naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error["loc"] else "?"
        message = error["msg"].removeprefix("Value error, ")
        raise SettingsError(f"TICKETFLOW_{field.upper()}: {message}") from None


@lru_cache
def get_settings() -> Settings:
    """The settings of this process, read once from the environment."""
    return load_settings()


async def app_settings(request: Request) -> Settings:
    """FastAPI dependency: the settings the app was built with (``create_service``).

    Read from ``app.state`` rather than through ``dependency_overrides``: with an override in
    place FastAPI re-inspects the override's signature on every request. Async, because FastAPI
    would run a plain function dependency in its thread pool."""
    settings: Settings = request.app.state.settings
    return settings
