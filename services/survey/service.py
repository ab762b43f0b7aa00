"""survey's business rules. Functions take the session and the outbox and never commit."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.survey import delivery, repository, scoring
from services.survey.models import Survey, SurveyPolicy
from services.survey.schemas import DEFAULT_DELAY_MINUTES, SurveyPolicyWrite
from shared import events as ev
from shared.conditions import Conditions, matches, unknown_fields
from shared.errors import Conflict, Gone, NotFound, Unprocessable, found
from shared.runtime import UnitOfWork


@dataclass(frozen=True)
class PolicyView:
    id: str
    kind: str
    question: str
    delay_minutes: int
    expires_after_hours: int
    conditions: Conditions = field(default_factory=Conditions)
    cooldown_days: int = 0
    sample_rate: float = 1.0
    delivery: dict[str, Any] | None = None


DEFAULT_QUESTIONS: dict[str, str] = {
    "csat": "How would you rate the support you received?",
    "nps": "How likely are you to recommend us to a friend or colleague?",
    "ces": "How easy was it to get your issue resolved?",
}

# Applies only when no survey policy exists at all: a CSAT survey an hour after the solve,
# open for a week, shown in GET /v1/surveys (no delivery channel).
DEFAULT_POLICY = PolicyView(
    id="default-csat",
    kind="csat",
    question=DEFAULT_QUESTIONS["csat"],
    delay_minutes=60,
    expires_after_hours=7 * 24,
)


def policy_view(policy: SurveyPolicy) -> PolicyView:
    return PolicyView(
        id=policy.id,
        kind=policy.kind,
        question=policy.question,
        delay_minutes=policy.delay_minutes,
        expires_after_hours=policy.expires_after_hours,
        conditions=Conditions.model_validate(policy.conditions),
        cooldown_days=policy.cooldown_days,
        sample_rate=policy.sample_rate,
        delivery=policy.delivery,
    )


def choose_policy(policies: list[PolicyView], ticket: ev.TicketSnapshot) -> PolicyView | None:
    """The first policy (by position) whose conditions the ticket meets; the default if none exist."""
    if not policies:
        return DEFAULT_POLICY
    document = ticket.model_dump(mode="json")
    return next((p for p in policies if matches(p.conditions, document)), None)


def sampled(ticket_id: str, policy_id: str, rate: float) -> bool:
    """Deterministic sampling: the same ticket and policy always decide the same way."""
    if rate >= 1.0:
        return True
    digest = hashlib.sha256(f"{policy_id}\x00{ticket_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


# --- tokens -----------------------------------------------------------------------------------


def derive_token(secret: str, survey_id: str) -> str:
    """HMAC-SHA256(secret, survey id): 256 bits, re-derivable by the server only."""
    mac = hmac.new(secret.encode(), f"survey-link\x00{survey_id}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def new_token(secret: str | None, survey_id: str) -> str:
    return derive_token(secret, survey_id) if secret else secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def recover_token(secret: str | None, survey: Survey) -> str | None:
    """The survey's token if the server can honestly re-derive it, else None."""
    if not secret or survey.token_hash is None:
        return None
    token = derive_token(secret, survey.id)
    return token if hmac.compare_digest(hash_token(token), survey.token_hash) else None


async def link_secret(session: AsyncSession, configured: str | None, now: datetime) -> str:
    """TICKETFLOW_SURVEY_TOKEN_SECRET when set, else the one generated once and kept in the
    survey schema: every sent survey has a link that any instance can re-derive."""
    if configured:
        return configured
    return await repository.stored_token_secret(session, secrets.token_urlsafe(48), now)


async def known_link_secret(session: AsyncSession, configured: str | None) -> str | None:
    """``link_secret`` for reads: the secret if there is one yet, never making it (a survey can
    only have been sent once the sender made it)."""
    return configured or await repository.kept_token_secret(session)


def token_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/s/{token}"


# --- life cycle -------------------------------------------------------------------------------


@dataclass
class SurveyContext(UnitOfWork):
    """survey's unit of work."""


async def on_solved(ctx: SurveyContext, ticket: ev.TicketSnapshot) -> Survey | None:
    policies = [policy_view(p) for p in await repository.list_policies_ordered(ctx.session)]
    policy = choose_policy(policies, ticket)
    if policy is None or not sampled(ticket.id, policy.id, policy.sample_rate):
        return None
    if policy.cooldown_days > 0:
        since = ctx.clock.now() - timedelta(days=policy.cooldown_days)
        if await repository.requester_surveyed_since(
            ctx.session, ticket.requester.id, since, exclude_ticket_id=ticket.id
        ):
            return None
    return await schedule(ctx, ticket, policy)


async def schedule(
    ctx: SurveyContext, ticket: ev.TicketSnapshot, policy: PolicyView
) -> Survey | None:
    """Schedule a survey for a solved ticket; None if this policy already has one for it.

    A survey cancelled by a reopen is scheduled again when the ticket is solved again (a newer
    ticket version); a duplicate ``ticket.solved`` (same or older version) changes nothing.
    """
    now = ctx.clock.now()
    solved_at = ticket.solved_at or now
    send_at = max(solved_at + timedelta(minutes=policy.delay_minutes), now)
    existing = await repository.survey_for(ctx.session, ticket.id, policy.id)
    if existing is not None:
        if existing.status != "cancelled" or ticket.version <= existing.ticket_version:
            return None
        survey = existing
        survey.status = "scheduled"
        survey.cancelled_at = None
        survey.send_at = send_at
    else:
        survey = Survey(
            id=str(uuid.uuid4()),
            ticket_id=ticket.id,
            policy_id=policy.id,
            kind=policy.kind,
            question=policy.question,
            status="scheduled",
            requester_id=ticket.requester.id,
            created_at=now,
            send_at=send_at,
        )
        ctx.session.add(survey)
    survey.ticket_version = ticket.version
    survey.requester_email = ticket.requester.email
    survey.requester_name = ticket.requester.name
    survey.requester_tier = ticket.requester.tier
    survey.subject = ticket.subject[:1000]
    survey.assignee_id = ticket.assignee_id
    survey.group = ticket.group
    survey.channel = ticket.channel
    survey.priority = ticket.priority
    survey.solved_at = solved_at
    survey.delivery = policy.delivery
    survey.expires_at = None
    await ctx.session.flush()
    await ctx.emit(
        ev.SurveyScheduled(
            survey_id=survey.id,
            ticket_id=ticket.id,
            policy_id=policy.id,
            kind=policy.kind,
            send_at=survey.send_at,
        )
    )
    return survey


async def cancel_scheduled(
    ctx: SurveyContext, ticket_id: str, reason: str, ticket_version: int | None = None
) -> int:
    cancelled = 0
    for survey in await repository.scheduled_for_ticket(ctx.session, ticket_id):
        if ticket_version is not None and ticket_version <= survey.ticket_version:
            continue  # an older reopen than the solve that scheduled this survey
        survey.status = "cancelled"
        survey.cancelled_at = ctx.clock.now()
        await ctx.emit(
            ev.SurveyCancelled(
                survey_id=survey.id,
                ticket_id=ticket_id,
                policy_id=survey.policy_id,
                kind=survey.kind,
                reason=reason,
            )
        )
        cancelled += 1
    return cancelled


async def send_due(
    ctx: SurveyContext,
    token_secret: str | None,
    policy_expiry: dict[str, int],
    limit: int = 100,
    *,
    base_url: str,
) -> list[tuple[Survey, str]]:
    """Send the surveys whose time has come, and record the deliveries of their links in the
    same transaction; returns them with their fresh tokens."""
    now = ctx.clock.now()
    sent: list[tuple[Survey, str]] = []
    for survey in await repository.claim_due(ctx.session, now, limit):
        token = new_token(token_secret, survey.id)
        hours = policy_expiry.get(survey.policy_id, DEFAULT_POLICY.expires_after_hours)
        survey.status = "sent"
        survey.sent_at = now
        survey.expires_at = now + timedelta(hours=hours)
        survey.token_hash = hash_token(token)
        event_id = await ctx.emit(
            ev.SurveySent(
                survey_id=survey.id,
                ticket_id=survey.ticket_id,
                policy_id=survey.policy_id,
                kind=survey.kind,
                sent_at=now,
                expires_at=survey.expires_at,
            )
        )
        delivery.enqueue(ctx.session, survey, token_url(base_url, token), event_id, now)
        sent.append((survey, token))
    return sent


async def expire_due(ctx: SurveyContext, limit: int = 500) -> int:
    now = ctx.clock.now()
    expired = await repository.claim_expired(ctx.session, now, limit)
    for survey in expired:
        survey.status = "expired"
        await ctx.emit(
            ev.SurveyExpired(
                survey_id=survey.id,
                ticket_id=survey.ticket_id,
                policy_id=survey.policy_id,
                kind=survey.kind,
                expired_at=now,
            )
        )
    return len(expired)


async def answerable(session: AsyncSession, token: str, now: datetime) -> Survey:
    """The survey a token opens, or the contract's error: 404 unknown, 409 answered, 410 expired."""
    survey = await repository.survey_by_token_hash(session, hash_token(token))
    if survey is None:
        raise NotFound("unknown survey link")
    if survey.status == "answered":
        raise Conflict("this survey has already been answered")
    if survey.status == "expired" or (survey.expires_at is not None and survey.expires_at <= now):
        raise Gone("this survey has expired")
    if survey.status != "sent":
        raise NotFound("unknown survey link")
    return survey


async def answer(
    ctx: SurveyContext, token: str, score: int, comment: str | None, kind: str | None = None
) -> Survey:
    survey = await answerable(ctx.session, token, ctx.clock.now())
    if kind is not None and kind != survey.kind:
        raise Unprocessable(
            f"kind: this survey is {survey.kind}, not {kind}",
            details=[{"field": "kind", "message": f"must be {survey.kind}"}],
        )
    if not scoring.on_scale(survey.kind, score):
        low, high = scoring.SCALES[survey.kind]
        raise Unprocessable(
            f"score: must be between {low} and {high} for a {survey.kind} survey",
            details=[{"field": "score", "message": f"must be between {low} and {high}"}],
        )
    now = ctx.clock.now()
    survey.status = "answered"
    survey.score = score
    survey.comment = comment or None
    survey.answered_at = now
    await ctx.session.flush()
    common: dict[str, Any] = {
        "survey_id": survey.id,
        "ticket_id": survey.ticket_id,
        "policy_id": survey.policy_id,
        "kind": survey.kind,
    }
    await ctx.emit(
        ev.SurveyAnswered(**common, score=score, comment=survey.comment, answered_at=now)
    )
    if scoring.is_low(survey.kind, score):
        requester = ev.Requester(
            id=survey.requester_id,
            email=survey.requester_email,
            name=survey.requester_name,
            tier=survey.requester_tier or "standard",
        )
        await ctx.emit(
            ev.SurveyFollowUpRequired(
                **common,
                score=score,
                comment=survey.comment,
                requester=requester,
                assignee_id=survey.assignee_id,
                group=survey.group,
            )
        )
    return survey


# --- policies ---------------------------------------------------------------------------------


def _apply(policy: SurveyPolicy, body: SurveyPolicyWrite) -> None:
    """Validate ``body`` (naming the field at fault) and write it onto ``policy``."""
    unknown = unknown_fields(body.conditions)
    if unknown:
        raise Unprocessable(
            f"conditions: unknown field {unknown[0]!r}",
            details=[{"field": "conditions", "message": f"unknown field {f!r}"} for f in unknown],
        )
    delivery_body = body.delivery.model_dump(mode="json")
    if body.delivery.webhook_url is not None:
        # Keep the secret a PUT does not mention: subscribers keep verifying.
        kept = (policy.delivery or {}).get("webhook_secret") if policy.delivery else None
        secret = body.delivery.webhook_secret or kept or delivery.new_webhook_secret()
        if not delivery.valid_webhook_secret(secret):
            raise Unprocessable(
                "delivery.webhook_secret: must be whsec_ followed by base64",
                details=[{"field": "delivery.webhook_secret", "message": "not base64"}],
            )
        delivery_body["webhook_secret"] = secret
    policy.name = body.name
    policy.kind = body.kind
    policy.position = body.position
    policy.conditions = body.conditions.model_dump(mode="json")
    policy.delay_minutes = (
        body.delay_minutes if body.delay_minutes is not None else DEFAULT_DELAY_MINUTES[body.kind]
    )
    policy.cooldown_days = body.cooldown_days
    policy.sample_rate = body.sample_rate
    policy.expires_after_hours = body.expires_after_hours
    policy.question = body.question or DEFAULT_QUESTIONS[body.kind]
    policy.delivery = delivery_body


async def policy_or_404(session: AsyncSession, policy_id: str) -> SurveyPolicy:
    return found(await repository.get_policy(session, policy_id), f"survey policy {policy_id}")


async def create_policy(ctx: SurveyContext, body: SurveyPolicyWrite) -> SurveyPolicy:
    now = ctx.clock.now()
    policy = SurveyPolicy(id=str(uuid.uuid4()), created_at=now, updated_at=now)
    _apply(policy, body)
    ctx.session.add(policy)
    await ctx.session.flush()
    return policy


async def replace_policy(
    ctx: SurveyContext, policy_id: str, body: SurveyPolicyWrite
) -> SurveyPolicy:
    policy = await policy_or_404(ctx.session, policy_id)
    _apply(policy, body)
    policy.updated_at = ctx.clock.now()
    await ctx.session.flush()
    return policy


async def delete_policy(ctx: SurveyContext, policy_id: str) -> None:
    await ctx.session.delete(await policy_or_404(ctx.session, policy_id))
