"""Routing rules: validation at save time and evaluation in position order, as pure functions.

A rule is ``{name, position, enabled, conditions, actions}``. Rules run in ``position`` order
(ties by id) against the ticket as the condition language sees it; each matching rule applies
its actions to the document the next rule sees, so a later rule can build on an earlier one
(like Zendesk triggers). ``set_priority`` / ``set_group``: the last matching rule wins;
``require_skills`` / ``add_tags``: every matching rule adds.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shared.conditions import TICKET_FIELDS, Conditions, matches, unknown_fields
from shared.events import Priority
from shared.types import StrictInput

# What a routing rule may look at: the ticket fields of the shared language (custom_fields.* is
# always open).
RULE_FIELDS = TICKET_FIELDS

# Ticket fields whose change (from an inbound update) makes the rules run again.
RULE_INPUTS = frozenset(
    {"subject", "description", "channel", "tags", "custom_fields", "requester_tier"}
)


def _clean_names(values: list[str], what: str) -> list[str]:
    cleaned: list[str] = []
    for value in values:
        value = value.strip()
        if not value or len(value) > 100:
            raise ValueError(f"{what} {value!r} must be 1-100 characters")
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


class RuleActions(StrictInput):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    set_priority: Priority | None = None
    set_group: str | None = Field(default=None, min_length=1, max_length=100)
    require_skills: list[str] = Field(default_factory=list, max_length=50)
    add_tags: list[str] = Field(default_factory=list, max_length=50)

    @field_validator("require_skills")
    @classmethod
    def _skills(cls, value: list[str]) -> list[str]:
        return _clean_names(value, "skill")

    @field_validator("add_tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        tags = [t.lower() for t in _clean_names(value, "tag")]
        for tag in tags:
            if any(c.isspace() for c in tag):
                raise ValueError(f"tag {tag!r} must not contain spaces")
        return list(dict.fromkeys(tags))

    def is_empty(self) -> bool:
        return not (self.set_priority or self.set_group or self.require_skills or self.add_tags)


@dataclass(frozen=True)
class Rule:
    id: str
    name: str
    position: int
    enabled: bool
    conditions: Conditions
    actions: RuleActions


def problems(
    conditions: Conditions,
    actions: RuleActions,
    *,
    known_groups: Iterable[str],
    known_skills: Iterable[str],
) -> list[dict[str, str]]:
    """What makes a rule unsaveable, as 422 details; empty when it is fine.

    A group or skill is known when at least one agent (in any status) has it: a rule that
    routes to a group nobody is in would park tickets forever, so it is refused at save time.
    """
    details: list[dict[str, str]] = []
    for name in unknown_fields(conditions, RULE_FIELDS):
        details.append({"field": "conditions", "message": f"unknown field {name!r}", "value": name})
    if actions.is_empty():
        details.append({"field": "actions", "message": "a rule needs at least one action"})
    groups = set(known_groups)
    if actions.set_group is not None and actions.set_group not in groups:
        details.append(
            {
                "field": "actions.set_group",
                "message": f"no agent is in group {actions.set_group!r}",
                "value": actions.set_group,
            }
        )
    skills = set(known_skills)
    for skill in actions.require_skills:
        if skill not in skills:
            details.append(
                {
                    "field": "actions.require_skills",
                    "message": f"no agent has skill {skill!r}",
                    "value": skill,
                }
            )
    return details


@dataclass(frozen=True)
class Applied:
    """One rule that matched and what it changed."""

    rule_id: str
    rule_name: str
    changes: dict[str, list[Any]]


@dataclass
class Outcome:
    priority: str
    group: str | None
    tags: list[str]
    required_skills: list[str]
    applied: list[Applied] = field(default_factory=list)


def evaluate(rules: Sequence[Rule], document: Mapping[str, Any]) -> Outcome:
    """Run the enabled rules in position order over a ticket document."""
    doc = copy.deepcopy(dict(document))
    outcome = Outcome(
        priority=str(doc.get("priority") or "normal"),
        group=doc.get("group"),
        tags=list(doc.get("tags") or []),
        required_skills=[],
    )
    for rule in sorted(rules, key=lambda r: (r.position, r.id)):
        if not rule.enabled or not matches(rule.conditions, doc):
            continue
        actions = rule.actions
        changes: dict[str, list[Any]] = {}
        if actions.set_priority is not None and actions.set_priority != outcome.priority:
            changes["priority"] = [outcome.priority, actions.set_priority]
            outcome.priority = actions.set_priority
        if actions.set_group is not None and actions.set_group != outcome.group:
            changes["group"] = [outcome.group, actions.set_group]
            outcome.group = actions.set_group
        new_tags = [t for t in actions.add_tags if t not in outcome.tags]
        if new_tags:
            changes["tags"] = [list(outcome.tags), [*outcome.tags, *new_tags]]
            outcome.tags = [*outcome.tags, *new_tags]
        new_skills = [s for s in actions.require_skills if s not in outcome.required_skills]
        if new_skills:
            skills = [*outcome.required_skills, *new_skills]
            changes["required_skills"] = [list(outcome.required_skills), skills]
            outcome.required_skills = skills
        doc.update(priority=outcome.priority, group=outcome.group, tags=list(outcome.tags))
        if changes:
            outcome.applied.append(Applied(rule.id, rule.name, changes))
    return outcome


class RoutingRuleIn(StrictInput):
    """Body of ``POST /v1/routing-rules`` and ``PUT /v1/routing-rules/{id}``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=255)
    position: int = Field(default=0, ge=0, le=1_000_000)
    enabled: bool = True
    conditions: Conditions = Field(default_factory=Conditions)
    actions: RuleActions


class RoutingRuleRead(BaseModel):
    id: str
    name: str
    position: int
    enabled: bool
    conditions: Conditions
    actions: RuleActions
    created_at: datetime
    updated_at: datetime
