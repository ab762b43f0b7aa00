"""Who is looking at the console: a bearer API key, or the console's signed session cookie.

The cookie never holds the key. It holds a SHA-256 fingerprint of the key, signed (itsdangerous,
HMAC) with a secret derived from the configured API keys, so every sla instance with the same keys
accepts it, and removing a key from ``TICKETFLOW_API_KEYS`` ends its sessions. The server maps the
fingerprint back to the key to call router's and survey's public APIs on the viewer's behalf.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials
from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.auth import authenticate
from shared.errors import Unauthorized
from shared.settings import Role, Settings, app_settings

COOKIE = "ticketflow_console"
SESSION_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Viewer:
    key: str
    role: Role


def fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    keys = ",".join(sorted(settings.api_key_roles()))
    secret = hashlib.sha256(f"ticketflow-console|{keys}".encode()).hexdigest()
    return URLSafeTimedSerializer(secret, salt="ticketflow-console-session")


def viewer_for_key(key: str, settings: Settings) -> Viewer | None:
    """The viewer for an API key typed on the sign-in page; None for a wrong key."""
    found: Viewer | None = None
    for known, role in settings.api_key_roles().items():
        if hmac.compare_digest(known.encode(), key.encode()):
            found = Viewer(known, role)
    return found


def session_cookie(viewer: Viewer, settings: Settings) -> str:
    return _serializer(settings).dumps({"fp": fingerprint(viewer.key)})


def viewer_from_cookie(value: str, settings: Settings) -> Viewer | None:
    try:
        data = _serializer(settings).loads(value, max_age=SESSION_SECONDS)
    except BadSignature:  # also SignatureExpired
        return None
    if not isinstance(data, dict) or not isinstance(data.get("fp"), str):
        return None
    found: Viewer | None = None
    for known, role in settings.api_key_roles().items():
        if hmac.compare_digest(fingerprint(known), data["fp"]):
            found = Viewer(known, role)
    return found


async def optional_viewer(
    request: Request, settings: Annotated[Settings, Depends(app_settings)]
) -> Viewer | None:
    """The bearer key if one is sent (it must be valid), else the session cookie, else None."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        credentials = (
            HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip())
            if scheme.lower() == "bearer"
            else None
        )
        role = await authenticate(credentials, settings)
        return Viewer(token.strip(), role)
    cookie = request.cookies.get(COOKIE)
    return viewer_from_cookie(cookie, settings) if cookie else None


async def require_viewer(viewer: Annotated[Viewer | None, Depends(optional_viewer)]) -> Viewer:
    if viewer is None:
        raise Unauthorized(
            "sign in at /console or send Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return viewer


ConsoleViewer = Annotated[Viewer, Depends(require_viewer)]
MaybeViewer = Annotated[Viewer | None, Depends(optional_viewer)]
