"""`arcforge build` with the rule level, end to end on BARC's real synthetic problems and their programs.

BARC's synthetic problem 01aeb3007bcf0250 (annotated ok) comes with its program, which flips the grid upside
down: ARC-AGI-1 training 68b16354 is that rule. No grid is shared, so only running the program finds it.
"""

from __future__ import annotations

import json
import shutil

import polars as pl
import pytest

from arcforge.build.pipeline import build
from arcforge.build.reports import read_report
from arcforge.sources.manifest import load_manifests

FLIP, FLIPPED = "01aeb3007bcf0250", "arc_agi_1/training/68b16354"
OTHERS = ["00339623fade9c57", "0113758503f8e80f"]  # annotated bad (dropped), and one that solves nothing


@pytest.fixture(scope="module")
def rules_home(shared_sources, tmp_path_factory):
    """A cache holding ARC-AGI-1 and BARC (its synthetic problems' programs included), fetched from the
    mirror and digest-checked as `arcforge fetch` does, and the bundled manifests with BARC's synthetic
    problems limited to three."""
    from arcforge.sources.fetch import fetch_sources

    base = tmp_path_factory.mktemp("rules_build")
    mdir = base / "manifests"
    shutil.copytree(load_manifests()["barc"].path.parent, mdir)
    text = (mdir / "barc.toml").read_text()
    one = ", ".join(f'"synthetic_problems/{u}.json"' for u in [FLIP, *OTHERS])
    assert 'include = ["synthetic_problems/*.json"]' in text
    (mdir / "barc.toml").write_text(
        text.replace('include = ["synthetic_problems/*.json"]', f"include = [{one}]")
    )
    manifests = load_manifests(mdir)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ARCFORGE_HOME", str(base / "home"))
        got = fetch_sources([manifests["arc_agi_1"], manifests["barc"]], mirror=shared_sources)
    assert [r.status for r in got] == ["fetched", "fetched"], [r.error for r in got]
    return base / "home", mdir


def _build(home, mdir, out, monkeypatch, **kw):
    monkeypatch.setenv("ARCFORGE_HOME", str(home))
    return build(
        out,
        sources=["arc_agi_1", "barc"],
        manifests_dir=mdir,
        eval_refs=["arc_agi_1:training"],
        workers=1,
        **kw,
    )


def test_a_program_that_implements_a_reference_rule_removes_its_tasks(rules_home, tmp_path, monkeypatch):
    home, mdir = rules_home
    stats = _build(home, mdir, tmp_path / "out", monkeypatch, exclude_eval=True, check_rules=True)
    assert (
        stats.rules["programs"] == 2 and stats.rules["reference_tasks"] == 400
    )  # the programs of kept problems
    assert stats.rules["checked"] == 800 and stats.rules["calls"] >= 800
    assert stats.dedup.get("excluded.rule") == 1
    ex = read_report(tmp_path / "out", "excluded").to_pylist()
    (row,) = [r for r in ex if r["level"] == "rule"]
    assert (row["source"], row["split"], row["eval_ids"]) == ("barc", "synthetic_problems", [FLIPPED])
    assert FLIP in row["id"]
    rules = read_report(tmp_path / "out", "rules").to_pylist()
    assert rules == [
        {
            "source": "barc",
            "program": f"synthetic_problems/{FLIP}.py:main",
            "derived_from": [],
            "eval_id": FLIPPED,
            "pairs": 4,
        }
    ]
    lineage = read_report(tmp_path / "out", "rule_lineage").to_pylist()
    assert [(r["program"], r["disagreement"]) for r in lineage] == [
        (f"synthetic_problems/{FLIP}.py:main", "solves_reference")
    ]
    kept = pl.read_parquet(tmp_path / "out" / "barc" / "synthetic_problems-*.parquet")
    assert kept.height == 1 and FLIP not in kept["id"][0]  # the other kept problem stays
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| `excluded.rule` | 1 |" in card and "| `rules.matches` | 1 |" in card

    assert stats.rules["programs_run"] == 2 and stats.rules["summary"] == 0


def _no(what):
    def refuse(*a, **k):
        raise AssertionError(f"a warm rebuild {what}")

    return refuse


def test_a_warm_rebuild_reads_one_summary_and_writes_the_same_reports(rules_home, tmp_path, monkeypatch):
    from arcforge.build import pipeline
    from arcforge.sources import programs, sandbox

    home, mdir = rules_home
    _build(home, mdir, tmp_path / "cold", monkeypatch, exclude_eval=True, check_rules=True)
    monkeypatch.setattr(sandbox.Sandbox, "start", _no("started a sandbox"))
    monkeypatch.setattr(pipeline, "_check_code", _no("re-hashed a checkout"))  # only before a program runs
    monkeypatch.setattr(programs, "_tree", _no("parsed a program file"))  # the catalogue is cached
    again = _build(home, mdir, tmp_path / "warm", monkeypatch, exclude_eval=True, check_rules=True)
    assert again.rules["summary"] == 1 and again.rules["calls"] == 0 and again.rules["programs_run"] == 0
    assert again.rules["cached"] == 800
    for name in ("excluded", "reported", "rules", "rule_errors", "rule_lineage"):
        cold, warm = (tmp_path / d / "reports" / f"{name}.jsonl" for d in ("cold", "warm"))
        assert cold.read_bytes() == warm.read_bytes(), name


def test_without_exclude_eval_the_match_is_reported_and_nothing_removed(rules_home, tmp_path, monkeypatch):
    home, mdir = rules_home
    stats = _build(home, mdir, tmp_path / "out", monkeypatch, check_rules=True)
    assert "excluded.rule" not in stats.dedup
    assert [r["eval_id"] for r in read_report(tmp_path / "out", "rules").to_pylist()] == [FLIPPED]
    assert stats.tasks["barc"]["synthetic_problems"] == 2


def test_by_default_no_program_runs_unless_generated(rules_home, tmp_path, monkeypatch):
    home, mdir = rules_home
    stats = _build(home, mdir, tmp_path / "out", monkeypatch, exclude_eval=True)
    assert stats.rules == {}
    assert read_report(tmp_path / "out", "rules").num_rows == 0
    assert json.loads(json.dumps(stats.to_dict()))["rules"] == {}


def test_a_changed_checkout_is_refused_before_its_programs_run(rules_home, tmp_path, monkeypatch):
    from arcforge.errors import BuildError
    from arcforge.sources import sandbox

    home, mdir = rules_home
    copy = tmp_path / "home"
    shutil.copytree(home, copy, symlinks=True)
    (prog,) = copy.glob(f"sources/xu3kev/BARC/*/synthetic_problems/{FLIP}.py")
    prog.write_text(prog.read_text() + "\n# edited\n")  # a new digest: no cached result answers it
    monkeypatch.setattr(sandbox.Sandbox, "start", _no("started a sandbox for edited code"))
    with pytest.raises(BuildError, match="do not match the pinned digest"):
        _build(copy, mdir, tmp_path / "out", monkeypatch, exclude_eval=True, check_rules=True)
