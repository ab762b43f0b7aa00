"""Helpdesk webhook payloads → canonical inbound events, one module per vendor.

Every vendor module offers the same interface (see ``base``): a ``parse`` function from the
decoded body to a ``Parsed``. Adding a vendor is one module here, one entry in ``PARSERS`` style
call sites in ``webhooks_api``, and its signature check in ``signatures``.
"""

from services.router.providers.base import (
    NO_MAPPINGS,
    MappingError,
    Mappings,
    Parsed,
    PayloadError,
    body_digest,
)
from services.router.providers.freshdesk import parse_freshdesk
from services.router.providers.generic import parse_generic
from services.router.providers.jira import JiraFields, jira_status, parse_jira
from services.router.providers.zendesk import parse_zendesk

__all__ = [
    "NO_MAPPINGS",
    "JiraFields",
    "MappingError",
    "Mappings",
    "Parsed",
    "PayloadError",
    "body_digest",
    "jira_status",
    "parse_freshdesk",
    "parse_generic",
    "parse_jira",
    "parse_zendesk",
]
