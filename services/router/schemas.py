"""router's request and response models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from shared.events import Author, Channel, Priority, Status, Tier
from shared.types import StrictInput

_NAME = r"^[A-Za-z0-9][A-Za-z0-9 _.:@/+-]*$"


class _In(StrictInput):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _clean_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not tag or len(tag) > 100 or any(c.isspace() for c in tag):
            raise ValueError(f"tag {tag!r} must be 1-100 characters without spaces")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


def _no_nul(value: Any) -> Any:
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain NUL bytes")
    return value


class RequesterIn(_In):
    id: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    name: str | None = Field(default=None, max_length=255)
    tier: Tier = "standard"

    @model_validator(mode="after")
    def _identified(self) -> RequesterIn:
        if not self.id and not self.email:
            raise ValueError("requester needs an id or an email")
        return self

    @property
    def key(self) -> str:
        return self.id or (self.email or "").lower()


class TicketCreate(_In):
    external_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=_NAME)
    subject: str = Field(min_length=1, max_length=1000)
    description: str | None = Field(default=None, max_length=200_000)
    channel: Channel
    priority: Priority | None = None
    requester: RequesterIn
    tags: list[str] = Field(default_factory=list, max_length=100)
    group: str | None = Field(default=None, min_length=1, max_length=100)
    custom_fields: dict[str, Any] = Field(default_factory=dict, max_length=100)

    _tags = field_validator("tags")(_clean_tags)
    _nul = field_validator("subject", "description", "external_id", "group")(_no_nul)


class TicketUpdate(_In):
    status: Status | None = None
    priority: Priority | None = None
    tags: list[str] | None = Field(default=None, max_length=100)
    group: str | None = Field(default=None, max_length=100)
    assignee_id: str | None = Field(default=None, max_length=100)

    _tags = field_validator("tags")(_clean_tags)

    @model_validator(mode="after")
    def _something(self) -> TicketUpdate:
        if not self.model_fields_set:
            raise ValueError("nothing to change: give status, priority, tags, group or assignee_id")
        for name in ("status", "priority", "tags"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class MessageCreate(_In):
    author: Author
    author_id: str | None = Field(default=None, max_length=255)
    public: bool = True
    body: str = Field(min_length=1, max_length=200_000)

    _nul = field_validator("body", "author_id")(_no_nul)


class RequesterRead(BaseModel):
    id: str
    email: str | None
    name: str | None
    tier: Tier


class DecisionRead(BaseModel):
    at: datetime
    kind: str
    changes: dict[str, Any]
    reason: str


class TicketRead(BaseModel):
    id: str
    source: str
    external_id: str
    subject: str
    description: str | None
    status: Status
    priority: Priority
    channel: Channel
    requester: RequesterRead
    tags: list[str]
    assignee_id: str | None
    group: str | None
    custom_fields: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    solved_at: datetime | None
    # The vendor's own status and priority as last reported (None for tickets made here).
    source_status: str | None = None
    source_priority: str | None = None
    # Skills the routing rules require of the assignee (an addition to the contract).
    required_skills: list[str] = Field(default_factory=list)
    routing_history: list[DecisionRead] = Field(default_factory=list)


class MessageRead(BaseModel):
    id: str
    ticket_id: str
    author: Author
    author_id: str | None
    public: bool
    body: str
    created_at: datetime


AgentStatus = str


class AgentPut(_In):
    name: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    groups: list[str] = Field(default_factory=list, max_length=50)
    skills: list[str] = Field(default_factory=list, max_length=100)
    capacity: dict[str, int] = Field(default_factory=dict)
    status: str = Field(default="offline", pattern=r"^(online|away|offline)$")
    timezone: str = Field(default="UTC", max_length=64)

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int]) -> dict[str, int]:
        return _check_capacity(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _check_timezone(value)


class AgentPatch(_In):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    groups: list[str] | None = Field(default=None, max_length=50)
    skills: list[str] | None = Field(default=None, max_length=100)
    capacity: dict[str, int] | None = None
    status: str | None = Field(default=None, pattern=r"^(online|away|offline)$")
    timezone: str | None = Field(default=None, max_length=64)

    @field_validator("capacity")
    @classmethod
    def _capacity(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        return None if value is None else _check_capacity(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _check_timezone(value)


class AgentRead(BaseModel):
    id: str
    name: str
    email: str | None
    groups: list[str]
    skills: list[str]
    capacity: dict[str, int]
    status: str
    timezone: str
    load: dict[str, int]
    created_at: datetime
    updated_at: datetime


CAPACITY_KEYS = {"email", "chat", "phone", "web", "social", "api", "other", "*"}


def _check_capacity(value: dict[str, int]) -> dict[str, int]:
    for channel, limit in value.items():
        if channel not in CAPACITY_KEYS:
            raise ValueError(f"capacity channel {channel!r} is not one of {sorted(CAPACITY_KEYS)}")
        if limit < 0 or limit > 10_000:
            raise ValueError(f"capacity for {channel} must be between 0 and 10000")
    return value


def _check_timezone(value: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


MAPPED_PROVIDERS = ("zendesk", "freshdesk", "jira")


def _unencodable(text: str) -> bool:
    try:
        text.encode("utf-8")  # a lone surrogate cannot be stored
    except UnicodeEncodeError:
        return True
    return False


class ProviderMappings(_In):
    """Per-vendor maps from the vendor's raw value (case-insensitive) to the canonical one."""

    status: dict[str, Status] = Field(default_factory=dict, max_length=500)
    priority: dict[str, Priority] = Field(default_factory=dict, max_length=500)

    @field_validator("status", "priority", mode="after")
    @classmethod
    def _keys(cls, value: dict[str, Any]) -> dict[str, Any]:
        cleaned: dict[str, Any] = {}
        for raw, canonical in value.items():
            key = raw.strip()
            if not key or len(key) > 255 or "\x00" in key or _unencodable(key):
                raise ValueError(f"raw value {raw!r} must be 1-255 characters of text")
            cleaned[key] = canonical
        return cleaned


class ProviderMappingsRead(ProviderMappings):
    provider: str
    updated_at: datetime | None = None
