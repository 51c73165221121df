"""`arcforge build --exclude-eval` end to end over the mirrored sources: reports, card counts, overlap."""

import json
import os

from typer.testing import CliRunner

from arcforge.build.reports import read_report
from arcforge.cli.app import app
from arcforge.shards import read_table


def test_exclude_eval_build_writes_reports_and_card(mirror_home, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCFORGE_HOME", str(mirror_home))
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["build", "--out", str(out), "--exclude-eval", "--json"])
    assert r.exit_code == 0, r.output
    excluded = read_report(out, "excluded").to_pylist()
    by_id = {e["id"]: e for e in excluded}
    # ARC-1 training/40853293 is evaluation/070dd51e; ARC-2 training holds ARC-1 eval tasks, pairs reordered.
    assert by_id["arc_agi_1/training/40853293"]["eval_ids"] == ["arc_agi_1/evaluation/070dd51e"]
    assert by_id["arc_agi_1/training/40853293"]["level"] == "exact"
    arc2_exact = [e for e in excluded if e["source"] == "arc_agi_2" and e["level"] == "exact"]
    assert len(arc2_exact) == 375
    kept = set(read_table(out)["id"].to_pylist())
    assert not kept & set(by_id)
    assert "concept_arc/MinimalTasks/CenterMinimal" in kept
    # evaluation rows stay, including the 6 ARC-1 eval tasks that ARC-2 evaluation repeats
    assert sum(1 for i in kept if i.startswith("arc_agi_1/evaluation/")) == 400
    assert sum(1 for i in kept if i.startswith("arc_agi_2/evaluation/")) == 120
    for name in ("duplicates", "reported", "quarantine"):
        assert (out / "reports" / f"{name}.jsonl").is_file()
    card = (out / "README.md").read_text()
    levels: dict[str, int] = {}
    for e in excluded:
        levels[e["level"]] = levels.get(e["level"], 0) + 1
    for level, n in levels.items():  # the card shows the count of every exclusion level
        assert f"| `excluded.{level}` | {n} |" in card
    ov = CliRunner().invoke(app, ["overlap", "-d", str(out), "--json"])
    assert ov.exit_code == 0, ov.output
    assert json.loads(ov.stdout)
    assert os.environ["ARCFORGE_HOME"] == str(mirror_home)


def test_dedup_reports_its_progress(arcforge_home, tmp_path):
    """Dedup of a million tasks takes minutes: its steps show on the build's progress (plain lines every 30 s
    when not a terminal), as the parse and write steps do."""
    from arcforge.build.pipeline import build

    class Recorder:
        def __init__(self):
            self.started: list[str] = []

        def start(self, key, description, total=None, *, unit="items"):
            self.started.append(key)

        def advance(self, key, amount=1):
            pass

        def update(self, key, **kw):
            pass

        def finish(self, key):
            pass

    task = {
        "train": [{"input": [[1, 2], [3, 4]], "output": [[4, 3], [2, 1]]}],
        "test": [{"input": [[5, 6], [7, 8]], "output": [[8, 7], [6, 5]]}],
    }
    mine, ref = tmp_path / "mine", tmp_path / "ref"
    for folder in (mine, ref):
        folder.mkdir()
        (folder / "a.json").write_text(json.dumps(task))
    (mine / "b.json").write_text(
        json.dumps(
            {
                "train": [{"input": [[0, 1, 0], [1, 1, 1]], "output": [[1]]}],
                "test": [{"input": [[2, 0], [2, 2]], "output": [[2]]}],
            }
        )
    )
    rec = Recorder()
    stats = build(
        tmp_path / "out", local=[mine], eval_local=[ref], exclude_eval=True, workers=1, progress=rec
    )
    assert stats.total_tasks == 1 and stats.excluded == 1
    assert rec.started.index("parse") < rec.started.index("dedup.invariants") < rec.started.index("write")
