"""Shared fixtures. Real upstream data is read from ../shared/arc-sources (never copied in)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = (REPO_ROOT.parent / "shared" / "arc-sources").resolve()
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_sources() -> Path:
    """The offline mirror of the 11 upstream repos. CI has it at the same relative path."""
    if not (SHARED / "SOURCES.json").is_file():
        pytest.fail(f"offline mirror not found at {SHARED}: tests need ../shared/arc-sources")
    return SHARED


@pytest.fixture(scope="session")
def sources_json(shared_sources: Path) -> list[dict]:
    return json.loads((shared_sources / "SOURCES.json").read_text())


@pytest.fixture()
def arcforge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ARCFORGE_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ARCFORGE_HOME", str(home))
    monkeypatch.delenv("ARCFORGE_MIRROR", raising=False)
    return home
