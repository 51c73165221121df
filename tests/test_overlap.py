"""``arcforge overlap`` on reports written by run_dedup over the real ARC data."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from typer.testing import CliRunner

from arcforge.build.dedup import run_dedup
from arcforge.build.reports import write_reports
from arcforge.cli.app import app
from arcforge.inspect.overlap import overlap
from arcforge.task import QUARANTINE_SCHEMA
from tests.dedup_data import arc_table

EVAL = {("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation")}


@pytest.fixture(scope="module")
def out_dir(shared_sources, tmp_path_factory):
    r = run_dedup(
        arc_table(shared_sources),
        eval_splits=EVAL,
        exclude_eval=True,
        priority=("arc_agi_1", "arc_agi_2", "concept_arc"),
    )
    out = tmp_path_factory.mktemp("out")
    write_reports(
        out,
        {
            "quarantine": QUARANTINE_SCHEMA.empty_table(),
            "excluded": r.excluded,
            "duplicates": r.duplicates,
            "reported": r.reported,
        },
    )
    return out


def test_matrix_counts_who_copies_whom(out_dir):
    ov = overlap(out_dir)
    m = {(a, b): ov.matrix[i][j] for i, a in enumerate(ov.sources) for j, b in enumerate(ov.sources)}
    # ARC-2 training: 375 exact + 1 changed (leaked) ARC-1 evaluation copies + caa06a1f (leaked pair),
    # 390 ARC-1 training copies; ARC-2 evaluation: 6 ARC-1 evaluation tasks and db695cfb, which shares 5 of
    # its 6 pairs with ARC-1 evaluation 55783887 (reported).
    assert m[("arc_agi_2", "arc_agi_1")] == m[("arc_agi_1", "arc_agi_2")] == 377 + 390 + 6 + 1
    assert m[("arc_agi_1", "arc_agi_1")] == 2  # training/40853293 and training/caa06a1f
    assert "concept_arc" not in ov.sources
    assert ov.by_level["exact"] == 376 + 390 + 6


def test_cli_json_table_and_png(out_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["overlap", "-d", str(out_dir), "--json", "--png", str(tmp_path / "m.png")])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["sources"] == ["arc_agi_1", "arc_agi_2"]
    assert {"a": "arc_agi_1", "b": "arc_agi_2", "shared": 774} in data["pairs"]
    with Image.open(tmp_path / "m.png") as im:
        assert im.format == "PNG" and im.size[0] > 100
    res = runner.invoke(app, ["overlap", "-d", str(out_dir)])
    assert res.exit_code == 0 and "arc_agi_2" in res.stdout and "774" in res.stdout


def test_cli_on_a_folder_without_reports(tmp_path):
    res = CliRunner().invoke(app, ["overlap", "-d", str(tmp_path)])
    assert res.exit_code == 1
    assert "reports/excluded.jsonl" in res.output and "arcforge build" in res.output
