"""CI runs a shortened demo end to end: mirror fetch -> build --exclude-eval -> train -> eval -> PNGs; and the
offline path (nothing reachable -> one notice, the built-in source alone)."""

import json

from PIL import Image
from typer.testing import CliRunner

from arcforge import synthetic
from arcforge.build.reports import read_report
from arcforge.cli.app import app
from arcforge.demo.real import REAL_TASKS, task_tokens
from arcforge.demo.run import DEMO_FAMILIES, DemoConfig, held_out, per_family_scores
from arcforge.shards import read_tasks

EASY = synthetic.families(easy_only=True)


def test_short_demo_end_to_end(tmp_path, arcforge_home, shared_sources, mirrored_names):
    out = tmp_path / "demo"
    r = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--steps",
            "4",
            "--tasks",
            "96",
            "--eval-tasks",
            "16",
            "--votes",
            "2",
            "--ttt-steps",
            "1",
            "--mirror",
            str(shared_sources),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert set(res["fetched"]) == mirrored_names  # what SOURCES.json lists; the others are unavailable
    assert res["notice"] is None
    for png in ("loss.png", "gallery.png"):
        with Image.open(out / png) as im:
            assert im.width > 10 and im.height > 10
    assert json.loads((out / "demo.json").read_text()) == res
    # trained and scored on the demo's (easy) families at the easy difficulty: one distribution
    assert res["config"]["families"] == list(DEMO_FAMILIES) and res["config"]["difficulty"] == "easy"
    assert set(DEMO_FAMILIES) <= set(EASY) and sorted(res["per_family"]) == sorted(DEMO_FAMILIES)
    assert all(f["easy"] for f in res["per_family"].values())
    assert sum(f["tasks"] for f in res["per_family"].values()) == 16
    assert res["config"]["eval"]["ttt"]["steps"] == 1 and res["config"]["eval"]["votes"] == 2
    for f in res["per_family"].values():  # with and without test-time training, and the baseline
        assert {
            "pass2_rate",
            "pass2_rate_no_ttt",
            "exact_match",
            "exact_match_no_ttt",
            "baseline_exact",
        } <= set(f)
    assert res["baseline_exact"] == 0.0  # every pair changes its input: "answer = test input" never scores
    card = (out / "data" / "README.md").read_text()
    assert "synthetic" in card and "arc_agi_1" in card and "difficulty easy" in card
    # --exclude-eval ran on the real sources: its report exists and ARC-2 lost its ARC-1 eval copies
    assert read_report(out / "data", "excluded").num_rows > 0
    train = list(read_tasks(out / "data", sources=["synthetic"]))
    assert len(train) == 96 and {synthetic.family_of(t) for t in train} == set(DEMO_FAMILIES)
    # the checkpoint says what it was trained on
    cfg = json.loads((out / "run" / "checkpoints" / "step-000004" / "config.json").read_text())
    assert cfg["data"]["loss_on"] == "outputs" and cfg["data"]["sources"] == ["synthetic"]
    # next to the synthetic score, the smallest real ARC-AGI-1 evaluation tasks of the build, same recipe
    real = res["real"]
    assert real["tasks"] == REAL_TASKS == len(real["ids"]) and real["source"] == "arc_agi_1"
    assert all(i.startswith("arc_agi_1/") and "evaluation" in i for i in real["ids"])
    assert real["test_inputs"] >= REAL_TASKS and 0 < real["scored"] <= real["test_inputs"]
    assert all(0.0 <= real[k] <= 1.0 for k in ("pass2", "pass2_no_ttt", "exact", "token_accuracy"))
    evals = list(read_tasks(out / "data", sources=["arc_agi_1"], splits=["evaluation"]))
    assert real["ids"] == [t.id for t in sorted(evals, key=lambda t: (task_tokens(t), t.id))[:REAL_TASKS]]
    assert (
        max(task_tokens(t) for t in evals if t.id in real["ids"]) < 384
    )  # the smallest: whole in the context


def test_offline_demo_uses_the_built_in_source_alone(tmp_path, arcforge_home):
    empty_mirror = tmp_path / "mirror"
    empty_mirror.mkdir()
    out = tmp_path / "demo"
    r = CliRunner().invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--steps",
            "2",
            "--tasks",
            "16",
            "--eval-tasks",
            "8",
            "--families",
            "flip,gravity",
            "--votes",
            "1",
            "--ttt-steps",
            "0",
            "--mirror",
            str(empty_mirror),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["fetched"] == [] and "unreachable" in res["notice"]
    assert sorted(res["per_family"]) == ["flip", "gravity"]
    assert [p.name for p in (out / "data").iterdir() if p.is_dir() and p.name != "reports"] == ["synthetic"]
    assert res["real"]["tasks"] == 0 and "arc_agi_1 was not fetched" in res["real"]["why"]  # said, not faked


def test_held_out_tasks_share_the_distribution_but_not_the_tasks():
    cfg = DemoConfig(families=("flip", "rotate"), difficulty="easy")
    train = list(synthetic.generate(40, seed=cfg.seed, families=cfg.families, difficulty=cfg.difficulty))
    fps = {t.fingerprint for t in train}
    held = held_out(cfg, 30, fps)
    assert len(held) == 30 and not fps & {t.fingerprint for t in held}
    assert {synthetic.family_of(t) for t in held} == {"flip", "rotate"}
    assert all(max(g.shape) <= 5 for t in held for g in t.grids())


def test_per_family_scores_count_exact_and_baseline():
    tasks = list(synthetic.generate(4, seed=3, families=["flip", "gravity"], difficulty="easy"))
    recs = [
        {
            "task": t.id,
            "test_index": 0,
            "exact": i == 0,
            "pass2": i < 2,
            "exact_before": False,
            "pass2_before": i == 1,
        }
        for i, t in enumerate(tasks)
    ]
    scores = per_family_scores(tasks, recs, {"flip"})
    flip = [t for t in tasks if synthetic.family_of(t) == "flip"]
    assert [t.id for t in flip] == [tasks[0].id, tasks[2].id]
    assert scores["flip"] == {
        "tasks": 2,
        "exact": 1,
        "pass2": 1,
        "exact_no_ttt": 0,
        "pass2_no_ttt": 0,
        "baseline": 0,
        "easy": True,
        "exact_match": 0.5,
        "pass2_rate": 0.5,
        "exact_match_no_ttt": 0.0,
        "pass2_rate_no_ttt": 0.0,
        "baseline_exact": 0.0,
    }
    assert scores["gravity"]["pass2_no_ttt"] == 1 and scores["gravity"]["easy"] is False
    # without TTT the records carry no *_before: "no TTT" is the plain score
    plain = per_family_scores(tasks, [{"task": t.id, "exact": True} for t in tasks], {"flip"})
    assert plain["flip"]["exact_no_ttt"] == plain["flip"]["pass2"] == 2


def test_the_real_task_line_gives_the_figure_or_why_not():
    from arcforge.cli.demo import _real_line
    from arcforge.demo.real import real_figure

    why = "no real task to score: arc_agi_1 was not fetched"
    assert _real_line(real_figure([], why, None, 0.0)) == f"real ARC: {why}"
    tasks = list(synthetic.generate(2, seed=0, families=["flip"]))
    m = {
        "test_inputs": 3,
        "scored": 3,
        "pass@2": 1 / 3,
        "pass@2_before": 0.0,
        "exact_match": 1 / 3,
        "exact_match_before": 0.0,
        "token_accuracy": 0.5523,
    }
    line = _real_line(real_figure(tasks, None, m, 12.4))
    assert "the 2 smallest" in line and "3 test inputs" in line and "pass@2 33.3% with test-time" in line
    assert "0.0% without" in line and "token accuracy 55.2%" in line and "scored in 12 s" in line
