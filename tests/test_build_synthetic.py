"""`arcforge build --source synthetic` with its knobs (count, families, difficulty), and per-family stats."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from arcforge import synthetic
from arcforge.cli.app import app
from arcforge.shards import read_tasks
from arcforge.synthetic.base import DIFFICULTIES

runner = CliRunner()


def _build(out, *args):
    return runner.invoke(app, ["build", "--out", str(out), "--source", "synthetic", *args, "--json"])


def test_families_and_difficulty_reach_the_shards_card_and_provenance(arcforge_home, tmp_path):
    out = tmp_path / "ds"
    r = _build(
        out,
        "--synthetic-tasks",
        "60",
        "--synthetic-families",
        "flip,gravity,color_map",
        "--synthetic-difficulty",
        "easy",
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tasks"] == {"synthetic": {"training": 60}}
    tasks = list(read_tasks(out, sources=["synthetic"]))
    assert synthetic.family_counts(tasks) == {"color_map": 20, "flip": 20, "gravity": 20}
    easy = DIFFICULTIES["easy"]
    for t in tasks:  # these three families keep the input's shape, so every grid is within easy's sides
        assert t.extra["params"] is not None
        for g in t.grids():
            assert easy.min_side <= max(g.shape) <= easy.max_side, t.id
    # the same tasks the generator makes directly (the build adds nothing and drops nothing)
    direct = synthetic.generate(60, seed=0, families=["flip", "gravity", "color_map"], difficulty="easy")
    assert sorted(t.fingerprint for t in tasks) == sorted(t.fingerprint for t in direct)
    card = (out / "README.md").read_text()
    assert "difficulty easy" in card and "families flip, gravity, color_map" in card
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["options"]["synthetic_difficulty"] == "easy"
    assert prov["options"]["synthetic_families"] == ["flip", "gravity", "color_map"]


def test_stats_per_family(arcforge_home, tmp_path):
    out = tmp_path / "ds"
    assert (
        _build(
            out, "--synthetic-tasks", "48", "--synthetic-families", "easy", "--synthetic-difficulty", "hard"
        ).exit_code
        == 0
    )
    r = runner.invoke(app, ["stats", "-d", str(out), "--json"])
    assert r.exit_code == 0, r.output
    fams = json.loads(r.stdout)["families"]["synthetic"]["training"]
    assert sorted(fams) == synthetic.families(easy_only=True)
    assert sum(f["tasks"] for f in fams.values()) == 48
    tasks = list(read_tasks(out))
    for fam, f in fams.items():  # checked against the tasks themselves
        mine = [t for t in tasks if synthetic.family_of(t) == fam]
        assert f["tasks"] == len(mine)
        assert f["max_side"] == max(max(g.shape) for t in mine for g in t.grids())
        assert f["train_pairs_per_task"] == round(float(np.mean([len(t.train) for t in mine])), 2)
    text = runner.invoke(app, ["stats", "-d", str(out)]).stdout
    assert "synthetic/training by family" in text and "mirror_concat" in text


def test_easy_expands_and_bad_knobs_fail_before_anything_is_written(arcforge_home, tmp_path):
    assert synthetic.resolve_families(["easy", "denoise", "flip"]) == (
        *synthetic.families(easy_only=True),
        "denoise",
    )
    assert synthetic.resolve_families(None) is None
    out = tmp_path / "ds"
    r = _build(out, "--synthetic-families", "flip,nope")
    assert r.exit_code == 1 and "unknown synthetic family: nope" in r.output
    r = _build(out, "--synthetic-difficulty", "extreme")
    assert r.exit_code == 2 and "'extreme'" in r.output and "'easy', 'medium', 'hard'" in r.output
    r = _build(out, "--synthetic-families", ",")
    assert r.exit_code == 1 and "no synthetic families selected" in r.output
    assert not out.exists()
