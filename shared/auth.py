"""API-key authentication: ``Authorization: Bearer <key>`` with role admin or reader."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.errors import Forbidden, Unauthorized
from shared.settings import Role, Settings, app_settings


def _role_for(token: str, keys: dict[str, Role]) -> Role | None:
    # Compare against every key so the time taken does not reveal which prefix matched.
    found: Role | None = None
    for key, role in keys.items():
        if hmac.compare_digest(key.encode(), token.encode()):
            found = role
    return found


# Declares the scheme in the OpenAPI document (so /docs has an Authorize button); the errors
# are ours, in the contract's shape.
_bearer = HTTPBearer(
    scheme_name="apiKey",
    description="An API key from TICKETFLOW_API_KEYS: role admin (read and write) or reader.",
    auto_error=False,
)


async def authenticate(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    settings: Annotated[Settings, Depends(app_settings)],
) -> Role:
    token = credentials.credentials.strip() if credentials else ""
    if not token:
        raise Unauthorized(
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    role = _role_for(token, settings.api_key_roles())
    if role is None:
        raise Unauthorized("invalid API key", headers={"WWW-Authenticate": "Bearer"})
    return role


async def require_reader(role: Annotated[Role, Depends(authenticate)]) -> Role:
    return role


async def require_admin(role: Annotated[Role, Depends(authenticate)]) -> Role:
    if role != "admin":
        raise Forbidden("this API key is read-only; writing needs an admin key")
    return role


Reader = Annotated[Role, Depends(require_reader)]
Admin = Annotated[Role, Depends(require_admin)]
