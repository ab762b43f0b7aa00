"""Alembic environment of the survey schema."""

from services.survey.models import metadata
from shared.migrate import run_env

run_env("survey", metadata)
