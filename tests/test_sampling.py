"""``--tasks-per-generator``: a generator's examples sampled into several distinct tasks, deterministically
(``arcforge.build.sampling``), on its own and in builds of the real RE-ARC code in ../shared."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from arcforge.build.pipeline import build
from arcforge.build.provenance import read_provenance
from arcforge.build.reports import read_report
from arcforge.build.sampling import sampling_seed, task_indices
from arcforge.cli.app import app
from arcforge.errors import BuildError
from arcforge.shards import read_table
from arcforge.task import task_from_row
from tests.test_generate import RE_ARC_KEYS, fetched  # noqa: F401  (the fixture: a few generators, fetched)

runner = CliRunner()


def test_first_tasks_are_the_consecutive_runs_then_distinct_sets():
    got = task_indices(20, 4, 300, seed=7)
    assert got[:5] == [(0, 1, 2, 3), (4, 5, 6, 7), (8, 9, 10, 11), (12, 13, 14, 15), (16, 17, 18, 19)]
    assert len(got) == 300 and len({frozenset(t) for t in got}) == 300
    assert all(len(set(t)) == 4 and all(0 <= i < 20 for i in t) for t in got)
    assert task_indices(20, 4, 300, seed=7) == got  # deterministic
    assert task_indices(20, 4, 100, seed=7) == got[:100]  # fewer tasks: a prefix of the same draws
    assert task_indices(20, 4, 300, seed=8)[5:] != got[5:]
    assert task_indices(20, 4, 3, seed=7) == got[:3]  # fewer than the runs: the first runs only


def test_every_set_at_most_and_none_from_too_few_examples():
    everything = task_indices(8, 4, 1000, seed=1)  # more than C(8, 4) = 70 asked: each set once
    assert len(everything) == math.comb(8, 4) and len({frozenset(t) for t in everything}) == 70
    assert everything[:2] == [(0, 1, 2, 3), (4, 5, 6, 7)]
    assert len(task_indices(8, 4, 50, seed=1)) == 50  # past half of the sets: listed and shuffled
    assert task_indices(3, 4, 10, seed=1) == [] and task_indices(8, 4, 0, seed=1) == []
    assert sampling_seed("re_arc", "007bbfb7") != sampling_seed("re_arc", "00d62c1b")
    assert sampling_seed("re_arc", "007bbfb7") != sampling_seed("barc", "007bbfb7")


def _rows(out: Path) -> list[dict]:
    return read_table(out, sources=["re_arc"], splits=["generated"]).to_pylist()


def _pairs(row: dict) -> frozenset:
    return frozenset((str(p["input"]), str(p["output"])) for p in [*row["train"], *row["test"]])


def test_sampled_build_keeps_every_task_and_matches_the_plain_build(fetched, arcforge_home):  # noqa: F811
    kw = {
        "sources": ["re_arc"],
        "manifests_dir": fetched,
        "generate": {"re_arc": 8},
        "use_cache": False,
        "check_rules": False,
    }
    plain = build(arcforge_home / "plain", workers=1, **kw)
    s1 = build(arcforge_home / "s1", workers=1, generate_tasks={"re_arc": 20}, **kw)
    s2 = build(arcforge_home / "s2", workers=2, generate_tasks={"*": 20}, **kw)
    assert s2.generated == s1.generated
    shards = [
        sorted((p.relative_to(o).as_posix(), p.read_bytes()) for p in o.rglob("*.parquet"))
        for o in (arcforge_home / "s1", arcforge_home / "s2")
    ]
    assert shards[0] == shards[1]  # any worker count, and --tasks-per-generator N == SOURCE=N here
    g = s1.generated["re_arc"]
    assert g["kept"] == 24 and g["tasks"] == 60 and g["sampled"] == 54 and g["unused"] == 0
    assert s1.tasks["re_arc"]["generated"] == 60  # the build's dedup: all distinct
    dups = read_report(arcforge_home / "s1", "duplicates").to_pylist()
    assert not [d for d in dups if "generated" in (d["kept_split"], d["dropped_split"])]
    rows, before = _rows(arcforge_home / "s1"), _rows(arcforge_home / "plain")
    assert plain.tasks["re_arc"]["generated"] == 6
    by_id = {r["id"]: r for r in rows}
    for r in before:  # the tasks the plain build makes are the first ones, unchanged
        assert by_id[r["id"]] == r
    for r in rows:  # fingerprint and difficulty made from the examples' parts: as the task computes them
        t = task_from_row(r)
        assert r["fingerprint"] == t.fingerprint and r["difficulty"] == float(np.float32(t.difficulty))
    for key in RE_ARC_KEYS:
        mine = [r for r in rows if r["id"].startswith(f"re_arc/generated/{key}/")]
        assert [r["id"].rsplit("/", 1)[1] for r in mine] == [f"{c:04d}" for c in range(20)]
        assert len({_pairs(r) for r in mine}) == 20 and all(
            len(r["train"]) == 3 and len(r["test"]) == 1 for r in mine
        )
    prov = read_provenance(arcforge_home / "s1")
    entry = next(x for x in prov.sources if x.name == "re_arc")
    assert entry.extra["generate"]["tasks_per_generator"] == 20
    assert prov.options["tasks_per_generator"] == {"re_arc": 20}
    assert "tasks_per_generator" not in read_provenance(arcforge_home / "plain").options


def test_tasks_per_generator_names_a_generator_source(fetched, arcforge_home, tmp_path):  # noqa: F811
    with pytest.raises(BuildError, match="--tasks-per-generator arc_agi_1=3: 'arc_agi_1' is not a generator"):
        build(
            arcforge_home / "o",
            sources=["arc_agi_1", "re_arc"],
            manifests_dir=fetched,
            generate={"re_arc": 4},
            generate_tasks={"arc_agi_1": 3},
        )
    for bad in ("x", "re_arc=", "-2"):
        r = runner.invoke(app, ["build", "--out", str(tmp_path / "o"), "--tasks-per-generator", bad])
        assert r.exit_code == 2 and "--tasks-per-generator" in r.output, (bad, r.output)
