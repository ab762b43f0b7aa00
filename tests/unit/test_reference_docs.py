"""The reference in docs/ stays whole: every setting and event type is documented, and the
README, CONTRIBUTING and docs link only files that exist in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.events import EVENT_TYPES
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`TICKETFLOW_{name.upper()}`" in text, name


def test_every_event_type_is_documented() -> None:
    text = (ROOT / "docs" / "events.md").read_text()
    for event_type in EVENT_TYPES:
        assert f"`{event_type}`" in text, event_type


def test_every_command_is_documented() -> None:
    text = (ROOT / "docs" / "commands.md").read_text()
    for command in ("dev", "serve", "migrate", "dlq", "bench"):
        assert f"### `ticketflow {command}" in text, command
    assert "ticketflow --version" in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(ROOT), f"{page.name} links {target}, outside the repository"
        assert path.exists(), f"{page.name} links {target}, which does not exist"
