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


# --- build fixtures (shared by the build, card, stats and CLI tests) -------------------------------------
@pytest.fixture(scope="session")
def mirror_home(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ARCFORGE_HOME whose cache holds the 11 mirrored sources, as `fetch` would leave it."""
    from arcforge.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    home = tmp_path_factory.mktemp("mirror_home")
    populate_cache(home, mirrored(load_manifests(), shared_sources), shared_sources)
    return home


@pytest.fixture(scope="session")
def full_build(mirror_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """ONE build of all 11 mirrored sources, reused by every test that needs a real dataset.

    Returns (out folder, BuildStats).
    """
    import os

    from arcforge.build import build

    out = tmp_path_factory.mktemp("full_build") / "out"
    old = os.environ.get("ARCFORGE_HOME")
    os.environ["ARCFORGE_HOME"] = str(mirror_home)
    try:
        stats = build(out)
    finally:
        if old is None:
            os.environ.pop("ARCFORGE_HOME", None)
        else:
            os.environ["ARCFORGE_HOME"] = old
    return out, stats
