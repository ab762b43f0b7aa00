"""router's webhook intake: ``POST /v1/webhooks/{zendesk,freshdesk,jira,generic}``.

Each handler: rate limit → authenticate over the raw body → parse to canonical events → in one
transaction record the delivery (once) and write the events to the outbox → 202 after commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import ValidationError

from services.router import intake, providers, repository, service, signatures, webhook_docs
from services.router.models import ProviderMapping
from services.router.schemas import MAPPED_PROVIDERS, ProviderMappings, ProviderMappingsRead
from shared.app import Session, context
from shared.auth import Admin, Reader
from shared.errors import NotFound, Unprocessable, validation_details
from shared.pagination import Cursor, Limit
from shared.runtime import ServiceRuntime

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"description": '`{"accepted": n, "duplicates": m, "ticket_ids": [...]}`'},
    401: {"description": "Bad, missing or expired signature, or no secret configured"},
    413: {"description": "Body over 1 MiB"},
    422: {"description": "Body is not the provider's format; the error names the field"},
    429: {"description": "Rate limit for this source; see Retry-After"},
}
_BODY = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}}}


def _runtime(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


def _limit(request: Request, runtime: ServiceRuntime, provider: str) -> None:
    limiter: intake.RateLimiter | None = getattr(request.app.state, "intake_limiter", None)
    if limiter is None:
        settings = runtime.settings
        limiter = intake.RateLimiter(settings.intake_rate_per_second, settings.intake_burst)
        request.app.state.intake_limiter = limiter
    host = request.client.host if request.client else "unknown"
    limiter.take(f"{provider}:{host}")


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")  # a lone surrogate (``"\ud800"``) cannot be stored or published
    except UnicodeEncodeError:
        return True
    return False


def _find_nul(value: Any, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL byte or a lone surrogate."""
    if isinstance(value, str):
        return path if _bad_text(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if _bad_text(str(key)):
                return where
            found = _find_nul(item, where)
            if found:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = _find_nul(item, f"{path}.{index}" if path else str(index))
            if found:
                return found
    return None


def read_json(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 422 naming what is wrong.

    orjson reads the common case; it refuses lone surrogates and a NUL can only come as the
    escape ``\\u0000``, so only a body holding that escape is searched for the field. Whatever
    orjson refuses is read again by the standard library, whose answer (accepted, or the 422
    naming the field or the parse error) is the contract.
    """
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _read_json_slowly(body)
    if not isinstance(data, dict):
        raise Unprocessable("body must be a JSON object", details=[{"field": "body"}])
    if b"\\u0000" in body:
        _refuse_bad_text(data)
    return data


def _read_json_slowly(body: bytes) -> dict[str, Any]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unprocessable("body must be UTF-8 JSON", details=[{"field": "body"}]) from None
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        message = getattr(exc, "msg", "too deeply nested")
        raise Unprocessable(f"body is not JSON: {message}", details=[{"field": "body"}]) from None
    if not isinstance(data, dict):
        raise Unprocessable("body must be a JSON object", details=[{"field": "body"}])
    _refuse_bad_text(data)
    return data


def _refuse_bad_text(data: dict[str, Any]) -> None:
    where = _find_nul(data, "")
    if where is not None:
        raise Unprocessable(
            f"{where or 'body'}: must not contain NUL bytes or unpaired surrogates",
            details=[{"field": where or "body"}],
        )


def _parsing(parse: Callable[[], providers.Parsed]) -> providers.Parsed:
    try:
        parsed = parse()
    except ValidationError as exc:
        details = validation_details(exc.errors())
        raise Unprocessable(
            f"{details[0]['field']}: {details[0]['message']}", details=details
        ) from None
    except providers.PayloadError as exc:
        details = validation_details(exc.errors)
        raise Unprocessable(
            f"{details[0]['field']}: {details[0]['message']}", details=details
        ) from None
    except providers.MappingError as exc:
        raise Unprocessable(
            str(exc), details=[{"field": exc.field, "message": exc.message}]
        ) from None
    if not parsed.events:
        raise Unprocessable("payload carries no ticket event", details=[{"field": "body"}])
    return parsed


async def _accept(
    runtime: ServiceRuntime,
    provider: str,
    parse: Callable[[providers.Mappings], providers.Parsed],
    body: bytes,
    *,
    mapped: bool = True,
) -> Response:
    """Parse (422 naming the field), store the delivery once with its events, then 202."""
    acceptance = await intake.accept_delivery(
        runtime,
        provider=provider,
        parse=lambda mappings: _parsing(lambda: parse(mappings)),
        body=body,
        mapped=mapped,
    )
    return Response(orjson.dumps(acceptance.body()), 202, media_type="application/json")


# The intake routes take only the request, so FastAPI solves no dependencies on the hot path:
# the runtime and its settings come from ``app.state``, the signature is the authentication.


@router.post(
    "/zendesk",
    status_code=202,
    responses=_RESPONSES,
    openapi_extra=webhook_docs.openapi_extra("zendesk", _BODY),
)
async def zendesk_webhook(request: Request) -> Response:
    """Zendesk event-subscription (``zen:event-type:ticket.*``) or trigger-template bodies."""
    runtime = _runtime(request)
    _limit(request, runtime, "zendesk")
    secret = signatures.require_secret("zendesk", runtime.settings.webhook_secret("zendesk"))
    body = await request.body()
    signatures.verify_zendesk(secret, request.headers, body, runtime.clock.now())
    data = read_json(body)
    return await _accept(runtime, "zendesk", lambda m: providers.parse_zendesk(data, m), body)


@router.post(
    "/freshdesk",
    status_code=202,
    responses=_RESPONSES,
    openapi_extra=webhook_docs.openapi_extra("freshdesk", _BODY),
)
async def freshdesk_webhook(request: Request) -> Response:
    """Freshdesk automation webhooks (``{"freshdesk_webhook": {...}}``)."""
    runtime = _runtime(request)
    _limit(request, runtime, "freshdesk")
    secret = signatures.require_secret("freshdesk", runtime.settings.webhook_secret("freshdesk"))
    signatures.verify_freshdesk(secret, request.headers)
    body = await request.body()
    data = read_json(body)
    now = runtime.clock.now()
    return await _accept(
        runtime, "freshdesk", lambda m: providers.parse_freshdesk(data, now, m), body
    )


@router.post(
    "/jira",
    status_code=202,
    responses=_RESPONSES,
    openapi_extra=webhook_docs.openapi_extra("jira", _BODY),
)
async def jira_webhook(request: Request) -> Response:
    """Jira / JSM webhooks: ``jira:issue_created``, ``jira:issue_updated``, ``comment_created``."""
    runtime = _runtime(request)
    _limit(request, runtime, "jira")
    secret = signatures.require_secret("jira", runtime.settings.webhook_secret("jira"))
    body = await request.body()
    signatures.verify_jira(secret, request.headers, body)
    data = read_json(body)
    delivery_id = request.headers.get("x-atlassian-webhook-identifier")

    def parse(mappings: providers.Mappings) -> providers.Parsed:
        parsed = providers.parse_jira(data, delivery_id, mappings)
        if parsed.events:
            signatures.check_window(parsed.events[0].occurred_at, runtime.clock.now(), "timestamp")
        return parsed

    return await _accept(runtime, "jira", parse, body)


@router.post(
    "/generic",
    status_code=202,
    responses=_RESPONSES,
    openapi_extra=webhook_docs.openapi_extra("generic", _BODY),
)
async def generic_webhook(request: Request) -> Response:
    """One canonical inbound event (``ticket.upsert`` / ``ticket.message``), Standard Webhooks."""
    runtime = _runtime(request)
    _limit(request, runtime, "generic")
    secret = signatures.require_secret("generic", runtime.settings.webhook_secret("generic"))
    body = await request.body()
    delivery_id = signatures.verify_generic(secret, request.headers, body)
    data = read_json(body)
    # The generic body is already canonical: no mappings to read.
    return await _accept(
        runtime, "generic", lambda _: providers.parse_generic(data, delivery_id), body, mapped=False
    )


# --- audit ------------------------------------------------------------------------------------

audit_router = APIRouter(prefix="/v1", tags=["tickets"])


@audit_router.get("/tickets/{ticket_id}/deliveries")
async def ticket_deliveries(
    ticket_id: Annotated[str, Path(min_length=3, max_length=255)],
    session: Session,
    _: Reader,
    limit: Limit = 100,
    cursor: Cursor = None,
) -> dict[str, Any]:
    """The raw webhook deliveries that reported on this ticket, oldest first (for audit)."""
    deliveries = await repository.page_deliveries_for(
        session, ticket_id, limit=limit, cursor=cursor
    )
    return {
        "items": [
            {
                "provider": row.provider,
                "delivery_key": row.delivery_key,
                "event_types": row.event_types,
                "received_at": row.received_at.isoformat(),
                "body": row.body,
            }
            for row in deliveries.rows
        ],
        "next_cursor": deliveries.next_cursor,
    }


# --- provider mappings ------------------------------------------------------------------------

mappings_router = APIRouter(prefix="/v1/providers", tags=["webhooks"])

Provider = Annotated[str, Path(min_length=1, max_length=32)]


def _mapped_provider(provider: str) -> str:
    if provider not in MAPPED_PROVIDERS:
        raise NotFound(
            f"provider {provider!r} has no mappings; one of: {', '.join(MAPPED_PROVIDERS)}"
        )
    return provider


def _mappings_read(provider: str, row: ProviderMapping | None) -> ProviderMappingsRead:
    return ProviderMappingsRead(
        provider=provider,
        status=dict(row.status) if row else {},
        priority=dict(row.priority) if row else {},
        updated_at=row.updated_at if row else None,
    )


@mappings_router.get("/{provider}/mappings", response_model=ProviderMappingsRead)
async def get_provider_mappings(
    provider: Provider, session: Session, _: Reader
) -> ProviderMappingsRead:
    """The admin's maps for a vendor; values not in them use the built-in defaults."""
    provider = _mapped_provider(provider)
    return _mappings_read(provider, await repository.get_provider_mapping(session, provider))


@mappings_router.put("/{provider}/mappings", response_model=ProviderMappingsRead)
async def put_provider_mappings(
    provider: Provider,
    body: ProviderMappings,
    ctx: Annotated[service.RouterContext, Depends(context(service.RouterContext))],
    _: Admin,
) -> ProviderMappingsRead:
    """Replace a vendor's status and priority maps (``{raw: canonical}``)."""
    provider = _mapped_provider(provider)
    return _mappings_read(provider, await service.put_provider_mappings(ctx, provider, body))
