"""Alembic environment of the sla schema."""

from services.sla.models import metadata
from shared.migrate import run_env

run_env("sla", metadata)
