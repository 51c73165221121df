"""Shared fixtures.

Real upstream data (never copied into the project) comes from ``ARCFORGE_MIRROR``, else from
``../shared/arc-sources``; without either, every test that needs it is skipped with one reason. Tests
that use it are marked ``shared`` automatically (``-m "not shared"`` leaves them out). When
``../shared`` exists (as in CI) a skipped ``shared`` test fails the run: CI must run all of them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_ROOT = (REPO_ROOT.parent / "shared").resolve()
SHARED = SHARED_ROOT / "arc-sources"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NO_MIRROR = (
    "needs the real upstream repos: set ARCFORGE_MIRROR to a folder laid out <owner>/<repo>/<files> "
    f"or place them at {SHARED}"
)


def find_mirror() -> Path | None:
    """The offline mirror of the upstream repos: $ARCFORGE_MIRROR, else ../shared/arc-sources, else None."""
    env = os.environ.get("ARCFORGE_MIRROR")
    if env and not env.startswith(("http://", "https://")):
        return Path(env).resolve()
    return SHARED if SHARED.is_dir() else None


MIRROR = find_mirror()


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "shared_sources" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.shared)


_skipped_shared: list[str] = []


def pytest_runtest_logreport(report):
    if report.skipped and "shared" in report.keywords:
        _skipped_shared.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    # CI has ../shared: a test that needs it and was skipped anyway is a failure, not a pass.
    if SHARED_ROOT.is_dir() and _skipped_shared:
        tr = session.config.pluginmanager.get_plugin("terminalreporter")
        if tr is not None:
            tr.write_line(
                f"FAILED: {len(_skipped_shared)} test(s) needing the real upstream data were skipped "
                f"although {SHARED_ROOT} exists, e.g. {_skipped_shared[0]}",
                red=True,
            )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def shared_sources() -> Path:
    """The offline mirror of the upstream repos (those SOURCES.json lists). CI has ../shared/arc-sources."""
    if MIRROR is None:
        pytest.skip(NO_MIRROR)
    if not (MIRROR / "SOURCES.json").is_file():
        pytest.fail(f"{MIRROR}: not an offline mirror of the upstream repos (no SOURCES.json)")
    return MIRROR


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory):
    """A tiny hand-made upstream (tests/tiny_upstream.py): mirror, manifests and pins. Needs no real data."""
    from tests.tiny_upstream import make_tiny

    return make_tiny(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def sources_json(shared_sources: Path) -> list[dict]:
    return json.loads((shared_sources / "SOURCES.json").read_text())


@pytest.fixture(scope="session")
def mirrored_names(sources_json: list[dict]) -> set[str]:
    """The names of the manifests whose upstream repo the mirror holds, as SOURCES.json lists them, and
    whose files it holds (it copies some repos only in part: neoneye's collection keeps one folder)."""
    from arcforge.sources.lock import kept_files, mirror_root
    from arcforge.sources.manifest import load_manifests

    repos = {f"{s['owner']}/{s['repo']}" for s in sources_json}
    return {
        name
        for name, m in load_manifests().items()
        if m.repo in repos and kept_files(mirror_root(MIRROR, m), m.files)
    }


@pytest.fixture()
def arcforge_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated ARCFORGE_HOME for one test."""
    home = tmp_path / "home"
    monkeypatch.setenv("ARCFORGE_HOME", str(home))
    monkeypatch.delenv("ARCFORGE_MIRROR", raising=False)
    return home


@pytest.fixture()
def hub_online(arcforge_home, tmp_path, monkeypatch):
    """huggingface_hub allowed online, but only to the loopback Hub (tests/hub_server.py); its own caches in
    tmp."""
    import huggingface_hub.constants as hc
    from hub_server import HubServer

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hc, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    with HubServer() as hub:
        monkeypatch.setenv("ARCFORGE_HUB_URL", hub.url)
        yield hub


# --- build fixtures (shared by the build, card, stats and CLI tests) -------------------------------------
@pytest.fixture(scope="session")
def mirror_home(shared_sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An ARCFORGE_HOME whose cache holds every mirrored source, as `fetch` would leave it."""
    from arcforge.sources.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    home = tmp_path_factory.mktemp("mirror_home")
    populate_cache(home, mirrored(load_manifests(), shared_sources), shared_sources)
    return home


@pytest.fixture(scope="session")
def full_build(mirror_home: Path, tmp_path_factory: pytest.TempPathFactory):
    """ONE build of all the mirrored sources, reused by every test that needs a real dataset.

    Returns (out folder, BuildStats).
    """
    import os

    from arcforge.build.pipeline import build

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


@pytest.fixture()
def one_thread():
    """Tiny torch models: one intra-op thread is fastest and does not oversubscribe a shared CPU."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
