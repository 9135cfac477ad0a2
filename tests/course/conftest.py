"""Shared fixtures of the course's tests: the fixture content and an app on a temporary database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURE_CONTENT = Path(__file__).parent / "fixtures" / "content"


@pytest.fixture
def content_dir(tmp_path: Path) -> Path:
    """A writable copy of the fixture content (tests break files in it)."""
    target = tmp_path / "content"
    shutil.copytree(FIXTURE_CONTENT, target)
    return target


@pytest.fixture
def client(tmp_path: Path):
    from fastapi.testclient import TestClient

    from descentlab.course import Settings, create_app

    settings = Settings(
        database=str(tmp_path / "course.sqlite3"),
        content_dir=FIXTURE_CONTENT,
        cache_dir=tmp_path / "cache",
    )
    with TestClient(create_app(settings)) as test_client:
        yield test_client
