"""Alembic environment of the router schema."""

from services.router.models import metadata
from shared.migrate import run_env

run_env("router", metadata)
