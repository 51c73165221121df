"""Decontamination rules on the real evaluation sets: planted test pairs, evidence-based triviality,
verification on the grids, the meaning of ``--eval``, and grids of every size."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from arcforge.build import canon
from arcforge.build.dedup import COMMON_TASKS, INFO_BITS, run_dedup
from arcforge.build.ingest import SourcePlan
from arcforge.build.pipeline import eval_split_set
from arcforge.cli.app import app
from arcforge.errors import BuildError
from arcforge.grids import apply_symmetry, recolor
from arcforge.sources.manifest import load_manifests
from arcforge.task import Pair, Task, tasks_to_table
from tests.dedup_data import load_tasks

EVAL = {("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation")}


@pytest.fixture(scope="module")
def eval_tasks(shared_sources) -> list[Task]:
    return load_tasks(
        shared_sources, "fchollet/ARC-AGI", "data/evaluation/*.json", "arc_agi_1", "evaluation", "data"
    ) + load_tasks(
        shared_sources, "arcprize/ARC-AGI-2", "data/evaluation/*.json", "arc_agi_2", "evaluation", "data"
    )


@pytest.fixture(scope="module")
def eval_table(eval_tasks) -> pa.Table:
    return tasks_to_table(eval_tasks)


def _disguise(pair: Pair, rng: np.random.Generator, k: int) -> Pair:
    """A random symmetry and recoloring, 0 kept on even ``k``, moved on odd."""
    s = int(rng.integers(0, 8))
    perm = np.r_[0, 1 + rng.permutation(9)] if k % 2 == 0 else rng.permutation(10)
    f = lambda g: None if g is None else recolor(apply_symmetry(g, s), perm)  # noqa: E731
    return Pair(f(pair.input), f(pair.output))


def _noise(rng: np.random.Generator) -> Pair:
    h, w = rng.integers(3, 12, 2)
    return Pair(rng.integers(0, 10, (h, w)).astype(np.int8), rng.integers(0, 10, (w, h)).astype(np.int8))


def test_every_evaluation_test_pair_planted_into_a_new_task_is_excluded(eval_tasks, eval_table):
    rng = np.random.default_rng(14)
    planted, origin = [], {}
    for t in eval_tasks:
        for p in t.test:
            k = len(planted)
            pairs = [_noise(rng), _noise(rng), _disguise(p, rng, k)]
            pairs = [pairs[i] for i in rng.permutation(3)]
            n_test = 1 + k % 2  # the answer lands in the train or the test role
            tid = f"planted/{k}"
            planted.append(Task(tid, "planted", "training", pairs[n_test:], pairs[:n_test]))
            origin[tid] = t.id
    assert len(planted) == 586  # every test pair of ARC-AGI-1 and ARC-AGI-2 evaluation
    r = run_dedup(
        pa.concat_tables([eval_table, tasks_to_table(planted)]), eval_splits=EVAL, exclude_eval=True
    )
    got = {x["id"]: x for x in r.excluded.to_pylist()}
    missed = sorted(set(origin) - set(got))
    assert not missed, f"{len(missed)} planted test pairs kept, e.g. {missed[:3]}"
    assert all(origin[i] in got[i]["eval_ids"] and got[i]["level"] == "leaked_pair" for i in origin)
    assert r.table.num_rows == eval_table.num_rows  # every evaluation task stays


def _info(pair: Pair) -> float:
    counts = [np.bincount(g.ravel(), minlength=10) for g in (pair.input, pair.output)]
    a, b = (float(canon.information_bits(c)) for c in counts)
    return a + min(a, b)


def test_a_train_pair_is_trivial_only_by_evidence(eval_tasks, eval_table):
    rng = np.random.default_rng(5)
    src = next(t for t in eval_tasks[40:] if len(t.train) >= 3 and _info(t.train[0]) >= 2 * INFO_BITS)
    leak = src.train[0]
    one = Task("leak/one", "leak", "training", [_noise(rng), _disguise(leak, rng, 1)], [_noise(rng)])
    r = run_dedup(pa.concat_tables([eval_table, tasks_to_table([one])]), eval_splits=EVAL, exclude_eval=True)
    assert [(x["id"], x["level"], x["eval_ids"]) for x in r.excluded.to_pylist()] == [
        ("leak/one", "leaked_pair", [src.id])
    ]
    # The same pair in COMMON_TASKS unrelated tasks (each sharing only it) is a common motif: reported.
    many = [
        Task(f"motif/{k}", "motif", "training", [_noise(rng), _disguise(leak, rng, k)], [_noise(rng)])
        for k in range(COMMON_TASKS)
    ]
    r = run_dedup(pa.concat_tables([eval_table, tasks_to_table(many)]), eval_splits=EVAL, exclude_eval=True)
    assert r.excluded.num_rows == 0
    rep = {x["id"]: x for x in r.reported.to_pylist() if x["id"].startswith("motif/")}
    assert set(rep) == {t.id for t in many} and all(
        x["reason"].startswith("common pair") for x in rep.values()
    )
    # A low-information train pair (a few bits) is reported, never dropped; a test pair always is.
    tiny_src = next(t for t in eval_tasks if _info(t.train[0]) < INFO_BITS)
    tiny = Task("tiny/x", "tiny", "training", [_noise(rng), tiny_src.train[0]], [_noise(rng)])
    answer = Task("answer/x", "answer", "training", [_noise(rng), *many[0].train[:1]], [tiny_src.test[0]])
    r = run_dedup(
        pa.concat_tables([eval_table, tasks_to_table([tiny, answer])]), eval_splits=EVAL, exclude_eval=True
    )
    assert {x["id"] for x in r.excluded.to_pylist()} == {"answer/x"}
    assert [x["reason"][:12] for x in r.reported.to_pylist() if x["id"] == "tiny/x"] == ["trivial pair"]


def _orbit_family(rng: np.random.Generator, n: int) -> list[np.ndarray]:
    """2x6 grids of two colors, two of each color in each of the 3 symmetry orbits of cells: all share one
    orbit signature (as 444444/888888 and 484848/848484 do), most are different grids."""
    out, seen = [], set()
    while len(out) < n:
        g = np.zeros((2, 6), np.int8)
        for j in range(3):
            cells = [(0, j), (1, j), (0, 5 - j), (1, 5 - j)]
            for i in rng.permutation(4)[:2]:
                g[cells[i]] = 1
        g = np.where(g == 1, 8, 4).astype(np.int8)
        form = canon.canonical_form(g)
        if form not in seen:
            seen.add(form)
            out.append(g)
    return out


def test_colliding_grid_signatures_never_exclude():
    rng = np.random.default_rng(2)
    g = _orbit_family(rng, 8)
    ref = Task("e/a", "e", "evaluation", [Pair(g[0], g[1])], [Pair(g[2], g[3])])
    other = Task("t/b", "t", "training", [Pair(g[4], g[5])], [Pair(g[6], g[7])])
    table = tasks_to_table([ref, other])
    inv = canon.invariants(table)
    assert len(set(inv.grid_inv.tolist())) == 1  # one signature for all eight grids: only candidates
    r = run_dedup(table, eval_splits={("e", "evaluation")}, exclude_eval=True)
    assert r.excluded.num_rows == 0 and r.table.num_rows == 2
    # The same grids, rotated and recolored, are a near duplicate (or better) and verified as one.
    copy = Task(
        "t/c", "t", "training", [_disguise(Pair(g[0], g[5]), rng, 1)], [_disguise(Pair(g[2], g[3]), rng, 0)]
    )
    r = run_dedup(tasks_to_table([ref, copy]), eval_splits={("e", "evaluation")}, exclude_eval=True)
    assert [(x["id"], x["level"]) for x in r.excluded.to_pylist()] == [("t/c", "leaked_pair")]


def test_no_grid_shared_no_near_duplicate(shared_sources):
    # With ARC-AGI-2 training as the reference, tama color/color_83 shares a grid signature with
    # e9afcf9a but no grid: it stays.
    ref = load_tasks(
        shared_sources, "arcprize/ARC-AGI-2", "data/training/e9afcf9a.json", "arc_agi_2", "training", "data"
    )
    tama = load_tasks(
        shared_sources,
        "neoneye/arc-dataset-tama",
        "dataset/color/color_83.json",
        "neoneye_tama",
        "training",
        "dataset",
    )
    table = tasks_to_table(ref + tama)
    inv = canon.invariants(table)
    ref_g = set(inv.grid_inv[(inv.grid_task == 0) & ~inv.grid_trivial].tolist())
    assert ref_g & set(inv.grid_inv[(inv.grid_task == 1) & ~inv.grid_trivial].tolist())
    r = run_dedup(table, eval_splits={("arc_agi_2", "training")}, exclude_eval=True)
    assert r.excluded.num_rows == 0


def test_canonical_form_is_exact():
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = rng.integers(1, 7, 2)
        a = rng.integers(0, 4, (h, w)).astype(np.int8)
        b = rng.integers(0, 4, (w, h)).astype(np.int8)
        d = _disguise(Pair(a, b), rng, int(rng.integers(2)))
        assert canon.canonical_form(a, b) == canon.canonical_form(d.input, d.output)
        assert canon.canonical_form(a) == canon.canonical_form(d.input)
    # a color swap inside one grid of a pair is not a recoloring of the pair
    x = np.array([[1, 0], [0, 0]], np.int8)
    assert canon.canonical_form(x, x) != canon.canonical_form(x, 1 - x)
    assert canon.canonical_form(x) == canon.canonical_form(1 - x)  # but of the grid alone it is


# --- grids of every size ---------------------------------------------------------------------------------
def test_big_grid_sums_are_exact():
    rng = np.random.default_rng(1)
    for h, w in ((182, 181), (1, 40_000), (300, 300)):
        g = rng.integers(0, 10, (h, w)).astype(np.int8)
        grids = canon.Grids(g.ravel(), np.zeros(1, np.int64), np.array([h]), np.array([w]))
        s = canon.sym_sums(grids)[0]  # (10, 8)
        wt = canon._sym_weights(h, w).astype(np.int64)  # exact integers (< 2**31)
        want = np.array([[wt[k][g.ravel() == c].sum() for k in range(8)] for c in range(10)]).astype(
            np.uint64
        )
        assert np.array_equal(s, want)
        stats, counts = canon.color_stats(grids)
        assert np.array_equal(counts[0], np.bincount(g.ravel(), minlength=10)) and (stats[0] > 0).all()


def test_grids_of_32768_cells_or_more_are_deduplicated():
    rng = np.random.default_rng(3)
    big, line = (
        rng.integers(0, 10, (182, 181)).astype(np.int8),
        rng.integers(0, 3, (1, 40_000)).astype(np.int8),
    )
    small = rng.integers(0, 10, (5, 5)).astype(np.int8)
    ev = Task(
        "e/a", "e", "evaluation", [Pair(big, big[::-1]), Pair(line, line[:, ::-1])], [Pair(small, small.T)]
    )
    s, perm = 6, rng.permutation(10)
    pairs = [
        Pair(recolor(apply_symmetry(p.input, s), perm), recolor(apply_symmetry(p.output, s), perm))
        for p in ev.pairs
    ]
    copy = Task("t/copy", "t", "training", pairs[1:], pairs[:1])
    big2 = rng.integers(0, 10, (182, 181)).astype(np.int8)
    other = Task("t/other", "t", "training", [Pair(big2, big2[::-1])], [Pair(small, small)])
    r = run_dedup(tasks_to_table([ev, copy, other]), eval_splits={("e", "evaluation")}, exclude_eval=True)
    assert [(x["id"], x["level"]) for x in r.excluded.to_pylist()] == [("t/copy", "recolored")]
    assert sorted(r.table.column("id").to_pylist()) == ["e/a", "t/other"]


def test_build_keeps_a_40000_cell_grid(arcforge_home, tmp_path):
    folder = tmp_path / "big"
    folder.mkdir()
    row = [[i % 10 for i in range(40_000)]]
    (folder / "wide.json").write_text(
        json.dumps({"train": [{"input": row, "output": row}], "test": [{"input": [[1]], "output": [[2]]}]})
    )
    r = CliRunner().invoke(
        app,
        ["build", "--out", str(arcforge_home / "out"), "--local", str(folder), "--exclude-eval", "--json"],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["tasks"] == {"big": {"training": 1}}


# --- what --eval means -----------------------------------------------------------------------------------
def _plans(*names: str) -> list[SourcePlan]:
    ms = load_manifests()
    return [SourcePlan(n, "manifest", manifest=ms[n]) for n in names]


def test_bare_eval_source_means_its_evaluation_splits():
    plans = _plans("arc_agi_1", "arc_agi_2", "concept_arc")
    warnings: list[str] = []
    assert eval_split_set(plans, ["arc_agi_2"], warnings) == {("arc_agi_2", "evaluation")}
    assert not warnings
    assert eval_split_set(plans, None) == EVAL  # the default: every eval manifest's evaluation split
    assert eval_split_set(plans, ["arc_agi_2:training"], warnings) == {("arc_agi_2", "training")}
    assert len(warnings) == 1 and "'training' is not an evaluation split" in warnings[0]
    with pytest.raises(BuildError, match="has no evaluation split"):
        eval_split_set(plans, ["concept_arc"])
    with pytest.raises(BuildError, match="has no split 'nope'"):
        eval_split_set(plans, ["arc_agi_2:nope"])


def test_cli_warns_about_a_training_split_as_reference(arcforge_home, tmp_path):
    folder = tmp_path / "mine"
    for split, g in (("training", [[1, 2], [3, 4]]), ("evaluation", [[5, 6, 7]])):
        (folder / split).mkdir(parents=True)
        (folder / split / "a.json").write_text(
            json.dumps({"train": [{"input": g, "output": g}], "test": [{"input": g, "output": g}]})
        )
    args = ["build", "--out", str(arcforge_home / "out"), "--local", str(folder), "--exclude-eval"]
    r = CliRunner().invoke(app, [*args, "--eval", "mine:training"])
    assert r.exit_code == 0, r.output
    assert "warning: --eval mine:training: 'training' is not an evaluation split" in r.output
    r = CliRunner().invoke(app, [*args, "--eval", "mine", "--json"])
    assert r.exit_code == 0 and "warning:" not in r.output and json.loads(r.stdout)["warnings"] == []
    (folder / "evaluation" / "a.json").unlink()  # a bare local source means its `evaluation` split: now empty
    r = CliRunner().invoke(app, [*args, "--eval", "mine"])
    assert r.exit_code == 0 and "warning: --eval mine:evaluation: no task in that split" in r.output


def test_information_bits_of_small_grids():
    dot = np.zeros((3, 3), np.int8)
    dot[1, 1] = 5
    two = np.zeros((15, 15), np.int8)
    two[3, 4] = two[9, 2] = 1
    bits = [float(canon.information_bits(np.bincount(g.ravel(), minlength=10))) for g in (dot, two, dot * 0)]
    assert bits == pytest.approx([np.log2(9), np.log2(225 * 224 / 2), 0.0])


def test_a_match_that_does_not_hold_on_the_grids_is_refused():
    from arcforge.build.decon import _Forms, _verify

    rng = np.random.default_rng(4)
    a = [_noise(rng) for _ in range(3)]
    b = [_disguise(p, rng, 1) for p in a]  # the same pairs, each with its own symmetry and recoloring
    c = [*a[:2], _noise(rng)]
    pb = canon.read_pairs(
        tasks_to_table([Task(f"t/{i}", "t", "training", x[1:], x[:1]) for i, x in enumerate((a, b, c))])
    )
    f = _Forms(pb, np.searchsorted(pb.task, np.arange(4)))
    forms_a = set(f.pairs(0))
    assert _verify("exact", f, 0, f, 0, None, 0.3) == 1.0 and _verify("exact", f, 1, f, 0, None, 0.3) is None
    assert _verify("recolored", f, 2, f, 0, None, 0.3) is None  # one pair differs
    assert _verify("leaked_pair", f, 1, f, 0, forms_a, 0.3) == 1.0  # pair-wise the same
    only_a = forms_a - set(f.pairs(2))
    assert (
        len(only_a) == 1 and _verify("leaked_pair", f, 2, f, 0, only_a, 0.3) is None
    )  # decisive pair not shared
    assert _verify("near_duplicate", f, 2, f, 0, None, 0.3) == pytest.approx(4 / 8)
    assert _verify("near_duplicate", f, 2, f, 0, None, 0.6) is None
