"""Generator sources against the real upstream code (RE-ARC's generators and verifiers, BARC's seeds) in
../shared, a few generators and examples each; hostile generators in a build; lineage exclusion."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

from arcforge.build.pipeline import build
from arcforge.build.reports import read_report
from arcforge.errors import BuildError
from arcforge.shards import read_table
from arcforge.sources import lock
from arcforge.sources.fetch import fetch_sources
from arcforge.sources.generate import driver, example_seed, generate_keys, group_tasks
from arcforge.sources.manifest import MANIFEST_DIR, load_manifests

RE_ARC_KEYS = ["007bbfb7", "00d62c1b", "017c7c7b"]
BARC_KEYS = ["007bbfb7", "00d62c1b"]
SETTINGS = {"driver": "re_arc", "call_s": 5.0, "memory_mb": 1024, "stubs": ["matplotlib", "tqdm"], "k": 3}


def test_re_arc_examples_are_seeded_by_source_key_and_index(shared_sources):
    d = driver(shared_sources / "michaelhodel" / "re-arc", SETTINGS)
    assert len(d.keys()) == 400 and d.keys()[0] == "007bbfb7"
    both = generate_keys(d, "re_arc", RE_ARC_KEYS[:2], 5)
    alone = generate_keys(d, "re_arc", RE_ARC_KEYS[1:2], 5)
    other = generate_keys(d, "another", RE_ARC_KEYS[1:2], 5)
    grids = [
        [(e.input.tobytes(), e.output.tobytes(), e.index) for e in r.examples]
        for r in (*both, *alone, *other)
    ]
    assert grids[1] == grids[2] != grids[3]  # a key's examples depend on (source, key, index) only
    for r in both:
        assert r.counts["kept"] == 5 and len(r.examples) == 5
        assert r.counts["attempts"] == 5 + sum(
            r.counts[f]
            for f in ("verifier_mismatch", "degenerate", "repeat", "generator_error", "bad_structure")
        )
        e = r.examples[0]
        assert 0 <= e.measures["rng_difficulty"] <= 1 and 0 < e.measures["pso_difficulty"] < 1
    assert example_seed("re_arc", "007bbfb7", 0) != example_seed("re_arc", "007bbfb7", 1)
    tasks, unused = group_tasks(
        both[0],
        d,
        source="re_arc",
        split="generated",
        k=3,
        provenance={"repo": "michaelhodel/re-arc", "commit": "c", "license": "MIT"},
    )
    assert (len(tasks), unused) == (1, 1)
    t = tasks[0]
    assert t.id == "re_arc/generated/007bbfb7/0000" and len(t.train) == 3 and len(t.test) == 1
    assert t.derived_from == ("arc_agi_1/training/007bbfb7",) and t.quality == "verified"
    assert t.upstream_difficulty == t.extra["pso_difficulty"] and t.extra["attempts"] == [0, 1, 2, 3]


def test_re_arc_verifier_reproduces_every_kept_output(shared_sources):
    """The verifier filter is upstream's: a kept example is one its verifier maps input -> output."""
    from arcforge.sources.sandbox import Sandbox

    root = shared_sources / "michaelhodel" / "re-arc"
    d = driver(root, SETTINGS)
    (res,) = generate_keys(d, "re_arc", ["00d62c1b"], 4)
    with Sandbox(root, ["verifiers"], stubs={"matplotlib": ""}) as sb:
        for e in res.examples:
            got = sb.call("verifiers", "verify_00d62c1b", [e.input.tolist()], grid_type="tuple")
            assert got.value == e.output.tolist()


def _manifests(tmp: Path, re_arc_keys=RE_ARC_KEYS, barc_keys=BARC_KEYS) -> Path:
    """The bundled manifests (and their pins), the generator sources limited to a few keys."""
    mdir = tmp / "manifests"
    mdir.mkdir()
    for name in ("re_arc.toml", "barc.toml", "arc_agi_1.toml", "digests.lock"):
        shutil.copy(MANIFEST_DIR / name, mdir / name)
    for name, keys in (("re_arc.toml", re_arc_keys), ("barc.toml", barc_keys)):
        text = (mdir / name).read_text()
        (mdir / name).write_text(
            text.replace("memory_mb = 1024\n", f"memory_mb = 1024\nkeys = {keys!r}\n".replace("'", '"'))
        )
    return mdir


@pytest.fixture()
def fetched(shared_sources, arcforge_home, tmp_path):
    mdir = _manifests(tmp_path)
    results = fetch_sources(load_manifests(mdir).values(), mirror=shared_sources)
    assert all(r.ok for r in results)
    return mdir


def _shard_bytes(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def test_generated_build_is_byte_identical_across_runs_and_workers(fetched, arcforge_home):
    kw = {"sources": ["re_arc", "barc"], "manifests_dir": fetched, "generate": {"re_arc": 8, "barc": 4}}
    s1 = build(arcforge_home / "o1", workers=1, use_cache=False, **kw)
    s2 = build(arcforge_home / "o2", workers=2, use_cache=False, **kw)
    assert _shard_bytes(arcforge_home / "o1") == _shard_bytes(arcforge_home / "o2")
    assert s1.generated == s2.generated
    g = s1.generated["re_arc"]
    assert g["kept"] == 24 and g["tasks"] == 6 and g["unused"] == 0
    assert g["attempts"] == g["kept"] + sum(
        g.get(r, 0) for r in ("verifier_mismatch", "degenerate", "repeat", "generator_error", "bad_structure")
    )
    assert (
        s1.tasks["re_arc"]["generated"] == 6
        and s1.tasks["barc"]["generated"] == s1.generated["barc"]["tasks"]
    )
    t = read_table(arcforge_home / "o1", sources=["re_arc"], splits=["generated"]).to_pylist()
    assert {r["id"].rsplit("/", 1)[0] for r in t} == {f"re_arc/generated/{k}" for k in RE_ARC_KEYS}
    assert all(
        r["quality"] == "verified"
        and r["derived_from"] == [f"arc_agi_1/training/{r['id'].split('/')[2]}"]
        and 0 < r["difficulty"] < 1
        and r["upstream_difficulty"] > 0
        for r in t
    )
    seeds = read_table(arcforge_home / "o1", sources=["barc"], splits=["generated"]).to_pylist()
    assert seeds and {r["path"] for r in seeds} <= {f"seeds/{k}.py" for k in BARC_KEYS}
    assert all(
        r["quality"] == "program"
        and r["derived_from"] == [f"arc_agi_1/training/{r['id'].split('/')[2]}"]
        and r["upstream_difficulty"] is None
        for r in seeds
    )
    probs = read_table(arcforge_home / "o1", sources=["barc"], splits=["synthetic_problems"]).to_pylist()
    assert probs and {r["quality"] for r in probs} <= {"good", "ok"}
    from arcforge.build.provenance import read_provenance

    prov = read_provenance(arcforge_home / "o1")
    re_arc = next(x for x in prov.sources if x.name == "re_arc")
    assert re_arc.digest.startswith("sha256:") and re_arc.extra["kind"] == "generator"
    assert re_arc.extra["generate"] == {
        "examples_per_generator": 8,
        "driver": "re_arc",
        "k": 3,
        "keys": RE_ARC_KEYS,
        "call_s": 5.0,
        "memory_mb": 1024,
    }
    assert prov.options["generate"] == {"barc": 4, "re_arc": 8}
    # a second build with the same options comes from the build cache, same bytes
    s3 = build(arcforge_home / "o3", workers=2, **kw)
    build(arcforge_home / "o4", workers=2, **kw)
    assert "re_arc" in build(arcforge_home / "o4", workers=2, **kw).cached_sources
    assert s3.generated == s1.generated
    assert _shard_bytes(arcforge_home / "o4") == _shard_bytes(arcforge_home / "o1")


def test_exclude_eval_drops_tasks_derived_from_a_reference_task(fetched, arcforge_home, shared_sources):
    """RE-ARC's generators are written from ARC-AGI-1 training tasks: with that split as the reference,
    every generated task goes, as ``lineage`` when it shares no grid with its original."""
    results = fetch_sources(load_manifests(fetched).values(), mirror=shared_sources)
    assert all(r.ok for r in results)
    stats = build(
        arcforge_home / "o",
        sources=["arc_agi_1", "re_arc"],
        manifests_dir=fetched,
        generate={"re_arc": 4},
        exclude_eval=True,
        eval_refs=["arc_agi_1:training"],
        workers=1,
    )
    assert "generated" not in stats.tasks.get("re_arc", {})
    exc = [r for r in read_report(arcforge_home / "o", "excluded").to_pylist() if r["split"] == "generated"]
    assert len(exc) == 3 and {r["level"] for r in exc} == {"lineage"}
    assert sorted(r["eval_ids"][0] for r in exc) == [f"arc_agi_1/training/{k}" for k in RE_ARC_KEYS]
    assert stats.dedup["excluded.lineage"] == 3
    # with the default reference (the evaluation split) their lineage names no reference task: they stay,
    # but for the rule level: verify_007bbfb7 also maps every pair of evaluation 5b6cbef5 (the same fractal
    # rule), so the task its generator made goes, and training 007bbfb7 stays beside 5b6cbef5, reported
    kept = build(
        arcforge_home / "o2",
        sources=["arc_agi_1", "re_arc"],
        manifests_dir=fetched,
        generate={"re_arc": 4},
        exclude_eval=True,
        workers=1,
    )
    assert kept.tasks["re_arc"]["generated"] == 2 and kept.dedup["excluded.rule"] == 1
    (rule,) = [r for r in read_report(arcforge_home / "o2", "excluded").to_pylist() if r["level"] == "rule"]
    assert rule["id"] == "re_arc/generated/007bbfb7/0000" and rule["eval_ids"] == [
        "arc_agi_1/evaluation/5b6cbef5"
    ]
    shared = [r for r in read_report(arcforge_home / "o2", "reported").to_pylist() if r["level"] == "rule"]
    assert [(r["id"], r["eval_ids"]) for r in shared] == [
        ("arc_agi_1/training/007bbfb7", ["arc_agi_1/evaluation/5b6cbef5"])
    ]


def test_generate_names_a_generator_source_of_the_build(fetched, arcforge_home):
    with pytest.raises(BuildError, match="'arc_agi_1' is not a generator source"):
        build(arcforge_home / "o", sources=["arc_agi_1"], manifests_dir=fetched, generate={"arc_agi_1": 3})
    with pytest.raises(BuildError, match="source 'nope' is not part of this build"):
        build(arcforge_home / "o", sources=["re_arc"], manifests_dir=fetched, generate={"nope": 3})


HOSTILE_GENERATORS = textwrap.dedent("""
    import os
    from utils import *

    def generate_00000001(diff_lb, diff_ub):
        g = tuple(
            tuple((r * 3 + c + unifint(diff_lb, diff_ub, (0, 9))) % 10 for c in range(3)) for r in range(3)
        )
        return {"input": g, "output": tuple(reversed(g))}

    def generate_00000002(diff_lb, diff_ub):
        while True:
            pass

    def generate_00000003(diff_lb, diff_ub):
        raise KeyError("no such thing")

    def generate_00000004(diff_lb, diff_ub):
        return {"input": bytearray(10**11), "output": 1}

    def generate_00000005(diff_lb, diff_ub):
        return {"input": ((1, 2), (3,)), "output": ((1,),)}

    def generate_00000006(diff_lb, diff_ub):
        os.abort()
""")
HOSTILE_VERIFIERS = "def verify_00000001(I):\n    return tuple(reversed(I))\n" + "".join(
    f"def verify_0000000{i}(I):\n    return I\n" for i in range(2, 7)
)
HOSTILE_UTILS = textwrap.dedent("""
    import matplotlib.pyplot as plt
    from random import uniform
    rng = []

    def unifint(diff_lb, diff_ub, bounds):
        a, b = bounds
        d = uniform(diff_lb, diff_ub)
        rng.append(d)
        return min(max(a, round(a + (b - a) * d)), b)
""")
HOSTILE_MAIN = "import utils\n\ndef get_pso_difficulty(example):\n    return 0.5\n"


def test_hostile_generators_cost_one_quarantined_example_each_and_the_build_finishes(arcforge_home, tmp_path):
    repo = tmp_path / "mirror" / "someone" / "hostile"
    repo.mkdir(parents=True)
    for name, text in (
        ("generators.py", HOSTILE_GENERATORS),
        ("verifiers.py", HOSTILE_VERIFIERS),
        ("utils.py", HOSTILE_UTILS),
        ("main.py", HOSTILE_MAIN),
        ("dsl.py", ""),
    ):
        (repo / name).write_text(text)
    mdir = tmp_path / "manifests"
    mdir.mkdir()
    (mdir / "hostile.toml").write_text(
        textwrap.dedent("""
        name = "hostile"
        kind = "generator"
        repo = "someone/hostile"
        commit = "0123456789abcdef0123456789abcdef01234567"
        license = "MIT"
        format = "standard"
        files = ["*.py"]
        [generator]
        driver = "re_arc"
        code = ["generators.py", "verifiers.py", "utils.py", "main.py", "dsl.py"]
        stubs = ["matplotlib"]
        call_s = 0.5
        memory_mb = 512
        [[tasks]]
        split = "none"
        include = ["nothing/*.json"]
    """)
    )
    manifests = load_manifests(mdir)
    lock.write_lock(mdir / "digests.lock", lock.pins_from_mirror(manifests.values(), tmp_path / "mirror"))
    assert all(r.ok for r in fetch_sources(manifests.values(), mirror=tmp_path / "mirror"))
    stats = build(
        arcforge_home / "o", sources=["hostile"], manifests_dir=mdir, generate={"hostile": 4}, workers=2
    )
    assert stats.tasks == {
        "hostile": {"generated": 1}
    }  # four examples of the good generator: one task of k+1 = 4
    g = stats.generated["hostile"]
    assert g["kept"] == 4 and g["unused"] == 0
    rows = read_report(arcforge_home / "o", "quarantine").to_pylist()
    by_key = {}
    for r in rows:
        by_key.setdefault(r["detail"].split(" ", 1)[0], set()).add(
            (r["reason"], r["detail"].split(": ", 1)[1])
        )
    assert by_key["00000002"] == {("generator_error", "timeout after 0.5 s")}
    assert by_key["00000003"] == {("generator_error", "KeyError: 'no such thing'")}
    assert by_key["00000004"] == {("generator_error", "memory limit")}
    assert {r for r, _ in by_key["00000005"]} == {"non_rectangular"}
    assert by_key["00000006"] == {("generator_error", "crashed (signal 6)")}
    # a generator that keeps failing is abandoned after 10 errors in a row, each one quarantined example
    assert all(len([r for r in rows if r["detail"].startswith(k)]) == 10 for k in by_key)
    assert g["abandoned"] == 5 and g["generator_error"] == 40 and g["non_rectangular"] == 10
