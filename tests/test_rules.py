"""The execution check (arcforge.build.rules) and the program catalogue, on RE-ARC's and BARC's real code."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from arcforge.build.rules import ERROR, MATCH, STOPPED, RefTable, RuleCache, RuleConfig, check, references
from arcforge.sources.programs import barc_seeds, barc_synthetic, catalogue, re_arc_verifiers
from tests.rules_helpers import arc1_table, fetched_checkouts, local_program

OWN = ["007bbfb7", "00d62c1b", "0d3d703e"]  # RE-ARC verifiers and BARC seeds of these training tasks
OTHERS = ["017c7c7b", "05f2a901", "6150a2bd", "a416b8f3"]


@pytest.fixture(scope="module")
def checkouts(shared_sources, tmp_path_factory):
    return fetched_checkouts(shared_sources, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def rearc(checkouts):
    return checkouts["re_arc"]


@pytest.fixture(scope="module")
def barc(checkouts):
    return checkouts["barc"]


def test_catalogue_lists_every_upstream_program_with_its_path_lineage_and_digest(rearc, barc):
    verifiers, seeds, synthetic = re_arc_verifiers(rearc), barc_seeds(barc), barc_synthetic(barc)
    assert (len(verifiers), len(seeds), len(synthetic)) == (400, 162, 346)
    v = verifiers[0]
    assert (v.path, v.module, v.function, v.grid_type) == (
        "verifiers.py:verify_007bbfb7",
        "verifiers",
        "verify_007bbfb7",
        "tuple",
    )
    assert v.derived_from == ("arc_agi_1/training/007bbfb7",)
    kevin = next(s for s in seeds if s.key == "25d487eb_Kevin")
    assert kevin.path == "seeds/25d487eb_Kevin.py:main" and kevin.derived_from == (
        "arc_agi_1/training/25d487eb",
    )
    assert kevin.transpose and "scipy.ndimage" in kevin.preload
    assert not any(s.key in ("common", "template") for s in seeds)  # helpers, not seeds
    assert all(s.derived_from == () and s.stubs == (("common", "seeds/common.py"),) for s in synthetic)
    nested = [s for s in synthetic if s.module_dir == "synthetic_problems/gpt_annotated_problems"]
    assert len(nested) == 33
    digests = {p.digest for p in verifiers + seeds + synthetic}
    assert len(digests) == 908  # one per program: a cached result is never shared between two programs
    assert re_arc_verifiers(rearc)[0].digest == v.digest  # and stable
    assert catalogue("michaelhodel/re-arc", rearc, "re_arc") == verifiers
    assert catalogue("fchollet/ARC-AGI", rearc, "x") == []


def test_the_catalogue_cache_gives_the_same_programs_and_notices_a_changed_file(rearc, tmp_path, monkeypatch):
    from arcforge.sources import programs

    code = tmp_path / "re-arc"
    code.mkdir()
    for name in ("verifiers.py", "dsl.py"):
        (code / name).write_bytes((rearc / name).read_bytes())
    fresh = catalogue("michaelhodel/re-arc", code, "re_arc")
    assert catalogue("michaelhodel/re-arc", code, "re_arc", tmp_path / "cat") == fresh
    with monkeypatch.context() as mp:
        mp.setattr(programs, "_tree", None)  # answered from the cache: nothing is parsed
        assert catalogue("michaelhodel/re-arc", code, "re_arc", tmp_path / "cat") == fresh
    with (code / "verifiers.py").open("a") as f:
        f.write("\ndef verify_00000000(I):\n    return I\n")
    changed = catalogue("michaelhodel/re-arc", code, "re_arc", tmp_path / "cat")
    assert len(changed) == len(fresh) + 1 and changed[0].key == "00000000"


def test_a_checkout_without_the_program_files_has_no_programs(tmp_path, barc):
    (tmp_path / "seeds").mkdir()
    assert catalogue("xu3kev/BARC", tmp_path, "barc") == []  # no seeds/common.py: the data files only
    assert catalogue("michaelhodel/re-arc", tmp_path, "re_arc") == []


def test_verifiers_and_seeds_implement_their_own_task_and_the_cache_answers_a_rerun(
    shared_sources, rearc, barc, tmp_path
):
    refs = references(arc1_table(shared_sources, "training", OWN + OTHERS))
    progs = [p for p in re_arc_verifiers(rearc) + barc_seeds(barc) if p.key in OWN]
    assert len(progs) == 6
    cache = RuleCache(tmp_path / "rules")
    res = check(
        progs, {"re_arc": rearc, "barc": barc}, refs, config=RuleConfig(call_s=5.0, workers=2), cache=cache
    )
    got = {(p.path, r.eval_id): n for p, r, n in res.matches}
    pairs = {r.eval_id: len(r.inputs) for r in refs}
    for p in progs:
        own = p.derived_from[0]
        assert got.get((p.path, own)) == pairs[own], p.path  # every pair of its own task, tests included
    assert res.checked == len(progs) * len(refs) and res.cached == 0
    assert res.calls < len(progs) * sum(pairs.values())  # disagreeing tasks stop at their first pair
    again = check(progs, {"re_arc": rearc, "barc": barc}, refs, config=RuleConfig(call_s=5.0), cache=cache)
    assert (again.checked, again.calls, again.cached) == (0, 0, len(progs) * len(refs))
    assert [(p.path, r.eval_id, n) for p, r, n in again.matches] == [
        (p.path, r.eval_id, n) for p, r, n in res.matches
    ]


def test_barc_synthetic_programs_run_over_common_and_one_solves_a_training_task(
    shared_sources, barc, tmp_path
):
    # 091a91149c519d93.py transposes its input: ARC-AGI-1 training 74dd1130 is exactly that rule
    prog = next(p for p in barc_synthetic(barc) if p.key == "091a91149c519d93")
    refs = references(arc1_table(shared_sources, "training", ["74dd1130", "007bbfb7"]))
    res = check([prog], {"barc": barc}, refs, cache=RuleCache(tmp_path))
    assert [(r.eval_id, n) for _, r, n in res.matches] == [("arc_agi_1/training/74dd1130", 5)]
    assert res.errors == []


def test_programs_receive_inputs_only_never_an_output(tmp_path):
    """A spy program logs every argument it gets; the reference task's outputs never reach it."""
    log = tmp_path / "calls.jsonl"
    spy = local_program(
        tmp_path / "code",
        "spy",
        f"""
import json
def main(grid):
    with open({str(log)!r}, "a") as f:
        f.write(json.dumps(grid) + "\\n")
    return [[2 if c == 1 else c for c in row] for row in grid]
""",
    )
    pairs = [([[1, 0], [0, 1]], [[2, 0], [0, 2]]), ([[1, 1, 3]], [[2, 2, 3]]), ([[0], [1]], [[0], [2]])]
    task = {
        "id": "t",
        "source": "e",
        "split": "evaluation",
        "train": [{"input": i, "output": o} for i, o in pairs[:2]],
        "test": [{"input": pairs[2][0], "output": pairs[2][1]}],
    }
    other = {**task, "id": "u", "test": [{"input": [[5, 1]], "output": [[7, 7]]}]}
    refs = references(pa.Table.from_pylist([task, other]))
    res = check([spy], {"local": tmp_path / "code"}, refs)
    assert [(r.eval_id, n) for _, r, n in res.matches] == [("t", 3)]
    seen = [json.loads(line) for line in log.read_text().splitlines()]
    outputs = [o for _, o in pairs] + [[[7, 7]]]
    assert seen and not any(g in outputs for g in seen)
    assert sorted(map(json.dumps, seen)) == sorted(map(json.dumps, [i for i, _ in pairs] + [[[5, 1]]]))


HOSTILE = {
    "loop": "def main(grid):\n    while True:\n        pass\n",
    "bomb": "def main(grid):\n    x = []\n    while True:\n        x.append([0] * (1 << 28))\n",
    "crash": "import os\ndef main(grid):\n    os.abort()\n",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_a_hostile_program_costs_one_error_entry_within_its_limit(kind, shared_sources, tmp_path):
    prog = local_program(tmp_path / "code", kind, HOSTILE[kind])
    fine = local_program(tmp_path / "code", "fine", "def main(grid):\n    return grid\n")
    refs = references(arc1_table(shared_sources, "training", OWN + OTHERS))
    config = RuleConfig(call_s=0.5, wall_s=5.0, memory_mb=512, max_failures=2)
    res = check(
        [prog, fine], {"local": tmp_path / "code"}, refs, config=config, cache=RuleCache(tmp_path / "c")
    )
    assert len(res.errors) == 1
    (err,) = res.errors
    assert err.program == prog and err.failures == 2 and err.unchecked == len(refs) - 2
    assert err.error.startswith({"loop": "timeout", "bomb": "memory", "crash": "crashed"}[kind])
    assert res.calls == 2 + len(refs)  # the hostile one: max_failures calls; the fine one: one per task
    cached = RuleCache(tmp_path / "c", config).load(prog)
    assert [v[0] for k, v in cached.items() if k != STOPPED] == [ERROR, ERROR] and STOPPED in cached
    rc = RuleCache(tmp_path / "c", config)
    rc.root.joinpath("summary").rename(tmp_path / "gone")  # no summary: the per-program files answer
    again = check([prog, fine], {"local": tmp_path / "code"}, refs, config=config, cache=rc)
    assert (again.calls, again.programs_run, again.summary) == (0, 0, False)  # given up: not run again
    assert [(e.program, e.failures, e.unchecked) for e in again.errors] == [(prog, 2, len(refs) - 2)]


def test_a_module_that_does_not_import_is_one_error_and_its_unit_still_runs(shared_sources, tmp_path):
    broken = local_program(
        tmp_path / "code", "broken", "raise SystemExit('no')\ndef main(g):\n    return g\n"
    )
    fine = local_program(tmp_path / "code", "fine", "def main(grid):\n    return grid\n")
    refs = references(arc1_table(shared_sources, "training", OTHERS))
    cache = RuleCache(tmp_path / "c")
    res = check([broken, fine], {"local": tmp_path / "code"}, refs, cache=cache)
    assert [(e.program.key, e.unchecked) for e in res.errors] == [("broken", len(refs))]
    assert "did not import" in res.errors[0].error
    assert res.checked == len(refs)  # the fine program, in a sandbox of its own
    again = check([broken, fine], {"local": tmp_path / "code"}, refs, cache=cache)
    assert again.calls == 0 and [e.program.key for e in again.errors] == ["broken"]


def test_a_failure_is_retried_under_other_limits_a_match_is_not(shared_sources, tmp_path):
    slow = local_program(
        tmp_path / "code", "slow", "import time\ndef main(grid):\n    time.sleep(0.6)\n    return grid\n"
    )
    refs = references(arc1_table(shared_sources, "training", OTHERS[:2]))
    short, long = RuleConfig(call_s=0.3, wall_s=0.4, max_failures=5), RuleConfig(call_s=3.0)
    res = check(
        [slow], {"local": tmp_path / "code"}, refs, config=short, cache=RuleCache(tmp_path / "c", short)
    )
    assert res.errors and res.errors[0].failures == 2
    res = check(
        [slow], {"local": tmp_path / "code"}, refs, config=long, cache=RuleCache(tmp_path / "c", long)
    )
    assert res.errors == [] and res.checked == 2
    again = RuleCache(tmp_path / "c", short).load(slow)
    assert all(v[0] != MATCH for v in again.values()) and len(again) == 2


def test_a_changed_program_runs_alone_and_an_unchanged_check_reads_its_summary(shared_sources, tmp_path):
    code = tmp_path / "code"
    same = local_program(code, "same", "def main(grid):\n    return grid\n")
    flip = local_program(code, "flip", "def main(grid):\n    return grid[::-1]\n")
    nothing = local_program(code, "nothing", "def main(grid):\n    return [[0]]\n")
    refs = references(arc1_table(shared_sources, "training", ["68b16354", *OTHERS]))
    cache = RuleCache(tmp_path / "c")
    cold = check([same, flip, nothing], {"local": code}, refs, cache=cache)
    assert (cold.programs_run, cold.summary) == (3, False)
    assert [(p.key, r.eval_id) for p, r, _ in cold.matches] == [("flip", "arc_agi_1/training/68b16354")]
    warm = check([same, flip, nothing], {"local": code}, refs, cache=cache)
    assert (warm.summary, warm.programs_run, warm.sandboxes, warm.calls) == (True, 0, 0, 0)
    assert warm.cached == cold.checked == 3 * len(refs)
    assert [(p, r.eval_id, n) for p, r, n in warm.matches] == [(p, r.eval_id, n) for p, r, n in cold.matches]
    changed = local_program(code, "nothing", "def main(grid):\n    return grid[::-1]\n")  # a new digest
    again = check([same, flip, changed], {"local": code}, refs, cache=cache)
    assert (again.summary, again.programs_run, again.checked, again.cached) == (
        False,
        1,
        len(refs),
        2 * len(refs),
    )
    assert [(p.key, r.eval_id) for p, r, _ in again.matches] == [
        ("flip", "arc_agi_1/training/68b16354"),
        ("nothing", "arc_agi_1/training/68b16354"),
    ]


def test_a_ref_table_answers_from_the_summary_without_reading_the_pairs(
    shared_sources, tmp_path, monkeypatch
):
    import arcforge.build.rules as rules

    code = tmp_path / "code"
    flip = local_program(code, "flip", "def main(grid):\n    return grid[::-1]\n")
    table = arc1_table(shared_sources, "training", ["68b16354", *OTHERS])
    cache = RuleCache(tmp_path / "c")
    cold = check([flip], {"local": code}, RefTable(table), cache=cache)
    monkeypatch.setattr(rules, "references", None)  # the pairs are not read again
    warm = check(
        [flip], {"local": code}, RefTable(pa.concat_tables([table.slice(0, 2), table.slice(2)])), cache=cache
    )
    assert warm.summary and [(r.eval_id, n) for _, r, n in warm.matches] == [
        (r.eval_id, n) for _, r, n in cold.matches
    ]
    other = table.set_column(table.schema.get_field_index("test"), "test", table["train"])  # other pairs
    assert RefTable(other).key != RefTable(table).key
