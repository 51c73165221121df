"""`arcforge sources` and `arcforge fetch` through typer's CliRunner, on the real shared mirror."""

from __future__ import annotations

import json
import shutil
import socket

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app

runner = CliRunner()


@pytest.fixture()
def big_home(arcforge_home):
    """An ARCFORGE_HOME that will hold every mirrored source (~70 MB, 10k files): removed right after the test
    instead of being left to pytest's tmp_path retention."""
    yield arcforge_home
    shutil.rmtree(arcforge_home, ignore_errors=True)


def test_fetch_all_from_mirror_env_then_sources_shows_the_mirrored_cached(
    big_home, shared_sources, monkeypatch, mirrored_names
):
    from arcforge.sources.manifest import load_manifests

    known = set(load_manifests())
    unmirrored = known - mirrored_names
    assert mirrored_names and unmirrored  # the mirror holds some sources, not all (Sequence_ARC is not in it)
    monkeypatch.setenv("ARCFORGE_MIRROR", str(shared_sources))
    res = runner.invoke(app, ["fetch", "--all"])
    assert res.exit_code == 1, res.output
    assert f"{len(mirrored_names)} fetched, {len(unmirrored)} unavailable" in res.output
    for name in unmirrored:
        assert f"unavailable: {name}: " in res.output
    src = runner.invoke(app, ["sources", "--json"])
    assert src.exit_code == 0, src.output
    rows = {r["name"]: r for r in json.loads(src.stdout)["sources"]}
    assert set(rows) == known
    assert {n for n, r in rows.items() if r["cached"]} == mirrored_names
    assert rows["arc_agi_1"]["role"] == "eval" and rows["arc_agi_1"]["splits"] == ["training", "evaluation"]
    assert rows["arc_agi_1"]["digest"].startswith("sha256:") and rows["sequence_arc"]["digest"] is None
    # and the plain table
    table = runner.invoke(app, ["sources"])
    assert table.exit_code == 0 and f"{len(known)} sources (" in table.output
    assert f"; {len(mirrored_names)} cached under" in table.output
    # sizes come from the pins: the shipped ones, and those recorded by this first fetch
    assert rows["arc_agi_1"]["bytes"] == 3798476 and all(rows[n]["bytes"] for n in mirrored_names)


def test_sources_lists_each_kind_size_and_license(arcforge_home):
    from arcforge.sources.manifest import load_manifests

    res = runner.invoke(app, ["sources", "--json"])
    assert res.exit_code == 0, res.output
    rows = {r["name"]: r for r in json.loads(res.stdout)["sources"]}
    assert len(rows) >= 20 and set(rows) == set(load_manifests())
    assert {r["kind"] for r in rows.values()} >= {"repo", "hub"}
    assert rows["barc_100k_gpt4"]["kind"] == "hub" and rows["barc_100k_gpt4"]["license"] == "MIT"
    assert rows["arc_agi_1_parquet"]["license"] == "unknown"  # the dataset card states none: unknown stays
    assert (
        rows["neoneye_pqa"]["license"] == "unknown"
        and rows["neoneye_nosound"]["license"] == "LicenseRef-DbCL-1.0"
    )
    assert rows["arc_agi_1"]["bytes"] == 3798476 and rows["barc_100k_gpt4"]["bytes"] is None  # not pinned yet
    table = runner.invoke(app, ["sources"], env={"COLUMNS": "250"})
    assert table.exit_code == 0
    line = next(x for x in table.output.splitlines() if x.split()[:1] == ["arc_agi_1"])
    assert " repo " in line and "3.8 MB" in line and "Apache-2.0" in line
    hub = next(x for x in table.output.splitlines() if x.split()[:1] == ["barc_100k_gpt4"])
    assert " hub " in hub and " ? " in hub and "MIT" in hub
    assert f"{len(rows)} sources (" in table.output and " hub" in table.output


def test_fetch_json_report_and_cached_rerun(arcforge_home, shared_sources):
    args = ["fetch", "arc_community", "concept_arc", "--mirror", str(shared_sources), "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    rep = json.loads(first.stdout)
    assert rep["ok"] and [s["status"] for s in rep["sources"]] == ["fetched", "fetched"]
    assert rep["sources"][0]["path"].startswith(str(arcforge_home))
    again = json.loads(runner.invoke(app, args).stdout)
    assert [s["status"] for s in again["sources"]] == ["cached", "cached"]


def test_fetch_mixed_json_exit_code(arcforge_home, shared_sources, mirrored_names):
    from arcforge.sources.manifest import load_manifests

    missing = min(set(load_manifests()) - mirrored_names)
    res = runner.invoke(app, ["fetch", missing, "neoneye_bad", "--mirror", str(shared_sources), "--json"])
    assert res.exit_code == 1
    rep = json.loads(res.stdout)
    assert not rep["ok"]
    assert {s["name"]: s["status"] for s in rep["sources"]} == {
        missing: "unavailable",
        "neoneye_bad": "fetched",
    }


def test_fetch_needs_names_or_all(arcforge_home):
    res = runner.invoke(app, ["fetch"])
    assert res.exit_code == 2 and "--all" in res.output
    res = runner.invoke(app, ["fetch", "--all", "barc"])
    assert res.exit_code == 2


def test_unknown_source_lists_known_ones(arcforge_home):
    res = runner.invoke(app, ["fetch", "nope"])
    assert res.exit_code == 1
    assert "Error: unknown source 'nope'; known sources: arc_1d" in res.output


def test_missing_mirror_folder(arcforge_home, tmp_path):
    res = runner.invoke(app, ["fetch", "barc", "--mirror", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "Error: mirror folder" in res.output


def test_unreachable_github_suggests_mirror(arcforge_home, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ARCFORGE_GITHUB_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("ARCFORGE_RETRIES", "2")
    monkeypatch.setenv("ARCFORGE_RETRY_DELAY", "0.01")
    res = runner.invoke(app, ["fetch", "arc_community"])
    assert res.exit_code == 1
    assert f"failed: arc_community: cannot reach 127.0.0.1:{port}" in res.output
    assert "--mirror" in res.output


def test_first_fetch_of_an_unpinned_source_says_it_recorded_the_digest(
    arcforge_home, monkeypatch, tmp_path, shared_sources
):
    from fetch_server import TarballServer, github_tarball

    from arcforge.sources.manifest import load_manifests

    m = load_manifests()["sequence_arc"]  # not in the shipped lock: no pin yet
    task = (shared_sources / "fchollet/ARC-AGI/data/evaluation/00576224.json").read_text()
    src = tmp_path / "Sequence_ARC" / "data" / "evaluation"
    src.mkdir(parents=True)
    (src / "00576224.json").write_text(task)
    with TarballServer() as srv:
        srv.add_tarball(
            "seedling123",
            "Sequence_ARC",
            m.commit,
            github_tarball(tmp_path / "Sequence_ARC", "Sequence_ARC", m.commit),
        )
        monkeypatch.setenv("ARCFORGE_GITHUB_URL", srv.url)
        monkeypatch.setenv("no_proxy", "127.0.0.1")
        for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.delenv(var, raising=False)
        res = runner.invoke(app, ["fetch", "sequence_arc"])
        assert res.exit_code == 0, res.output
        assert "sequence_arc had no pinned digest; recorded sha256:" in res.output
        assert f"in {arcforge_home / 'digests.lock'} (later fetches" in res.output
        again = runner.invoke(app, ["fetch", "sequence_arc"])
        assert again.exit_code == 0 and "1 cached" in again.output and "recorded" not in again.output
        assert srv.count() == 1
