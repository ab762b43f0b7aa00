"""API-key authentication: ``Authorization: Bearer <key>`` with role admin or reader."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from shared.errors import Forbidden, Unauthorized
from shared.settings import Role, Settings, get_settings


def _role_for(token: str, keys: dict[str, Role]) -> Role | None:
    # Compare against every key so the time taken does not reveal which prefix matched.
    found: Role | None = None
    for key, role in keys.items():
        if hmac.compare_digest(key.encode(), token.encode()):
            found = role
    return found


async def authenticate(
    request: Request, settings: Annotated[Settings, Depends(get_settings)]
) -> Role:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "missing API key: send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    role = _role_for(token.strip(), settings.api_key_roles())
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
