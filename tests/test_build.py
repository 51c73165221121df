"""The build pipeline: quarantine, --strict, --local, --max-grid, determinism, atomicity, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from arcforge.build import ingest, shard_writer
from arcforge.build.pipeline import build
from arcforge.build.reports import read_report
from arcforge.errors import BuildError, ManifestError
from arcforge.shards import read_table

GOOD = {"train": [{"input": [[1, 2]], "output": [[2, 1]]}], "test": [{"input": [[3, 4]], "output": [[4, 3]]}]}
BAD_FILES = {
    "bom.json": b"\xef\xbb\xbf" + json.dumps(GOOD).encode(),
    "ragged.json": json.dumps({**GOOD, "train": [{"input": [[1, 2], [3]], "output": [[1]]}]}).encode(),
    "value.json": json.dumps({**GOOD, "test": [{"input": [[1, 12]], "output": [[1]]}]}).encode(),
    "float.json": json.dumps({**GOOD, "test": [{"input": [[1, 2.5]], "output": [[1]]}]}).encode(),
    "empty.json": json.dumps({**GOOD, "train": [{"input": [], "output": [[1]]}]}).encode(),
    "notrain.json": json.dumps({"test": GOOD["test"]}).encode(),
    "notest.json": json.dumps({"train": GOOD["train"], "test": []}).encode(),
    "broken.json": b'{"train": [',
}
EXPECTED_REASONS = {
    "bom": 1,
    "non_rectangular": 1,
    "bad_value": 2,
    "empty_grid": 1,
    "no_train": 1,
    "no_test": 1,
    "invalid_json": 1,
}


def _local(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# Three genuinely different tasks (different shapes: no symmetry or recoloring maps one onto another),
# so within-collection dedup keeps all three.
GOOD_B = {
    "train": [{"input": [[1, 2, 3]], "output": [[3, 2, 1]]}],
    "test": [{"input": [[4, 5, 6]], "output": [[6, 5, 4]]}],
}
GOOD_C = {
    "train": [{"input": [[1, 2], [3, 4]], "output": [[4]]}],
    "test": [{"input": [[5, 6], [7, 8]], "output": [[8]]}],
}


@pytest.fixture()
def messy(tmp_path) -> Path:
    return _local(
        tmp_path / "My Tasks",
        {
            **{f"bad/{k}": v for k, v in BAD_FILES.items()},
            "training/a.json": json.dumps(GOOD).encode(),
            "evaluation/b.json": json.dumps(GOOD_B).encode(),
            "c.json": json.dumps(GOOD_C).encode(),
            ".hidden.json": b"junk",
        },
    )


def test_quarantine_every_reason_and_build_goes_on(arcforge_home, messy):
    out = arcforge_home / "out"
    stats = build(out, local=[messy])
    assert stats.quarantined == dict(sorted(EXPECTED_REASONS.items()))
    assert stats.tasks == {"my_tasks": {"evaluation": 1, "training": 2}}
    q = read_report(out, "quarantine").to_pylist()
    assert {r["path"] for r in q} == {f"bad/{k}" for k in BAD_FILES}
    ragged = next(r for r in q if r["path"] == "bad/ragged.json")
    assert ragged["reason"] == "non_rectangular" and "train[0].input row 1" in ragged["detail"]
    assert all(r["source"] == "my_tasks" and r["split"] == "training" for r in q)
    # nothing lost: written + quarantined == files that hold tasks
    assert stats.total_tasks + stats.total_quarantined == len(BAD_FILES) + 3
    t = read_table(out)
    assert sorted(t["id"].to_pylist()) == ["my_tasks/c", "my_tasks/evaluation/b", "my_tasks/training/a"]
    assert set(t["license"].to_pylist()) == {"unknown"}


def test_strict_fails_and_keeps_previous_output(arcforge_home, messy, tmp_path):
    out = arcforge_home / "out"
    good = _local(tmp_path / "good", {"x.json": json.dumps(GOOD).encode()})
    build(out, local=[good])
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    with pytest.raises(BuildError, match="--strict: 8 task"):
        build(out, local=[messy], strict=True)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []


def test_max_grid_drops_and_reports(arcforge_home, tmp_path):
    big = {"train": [{"input": [[1] * 31], "output": [[1]]}], "test": [{"input": [[1]], "output": [[1]]}]}
    folder = _local(
        tmp_path / "f", {"big.json": json.dumps(big).encode(), "ok.json": json.dumps(GOOD).encode()}
    )
    stats = build(arcforge_home / "o1", local=[folder])
    assert stats.over_30 == {"f": {"training": 1}} and stats.total_tasks == 2
    stats = build(arcforge_home / "o2", local=[folder], max_grid=30, strict=True)  # oversize is not an error
    assert stats.total_tasks == 1 and stats.oversize_dropped == 1 and stats.quarantined == {"oversize": 1}
    q = read_report(arcforge_home / "o2", "quarantine").to_pylist()
    assert q[0]["path"] == "big.json" and "31" in q[0]["detail"]


def test_missing_unknown_and_unsafe_inputs(arcforge_home, tmp_path):
    with pytest.raises(BuildError) as e:
        build(tmp_path / "o", sources=["arc_agi_1"])
    assert "arc_agi_1" in e.value.message and e.value.hint == "arcforge fetch arc_agi_1"
    with pytest.raises(ManifestError, match="unknown source 'nope'"):
        build(tmp_path / "o", sources=["nope"])
    with pytest.raises(BuildError, match="nothing to build"):
        build(tmp_path / "o")
    user = _local(tmp_path / "precious", {"notes.txt": b"mine"})
    with pytest.raises(BuildError, match="not an arcforge build"):
        build(user, local=[_local(tmp_path / "f", {"a.json": json.dumps(GOOD).encode()})])
    assert (user / "notes.txt").read_bytes() == b"mine"


def test_resume_does_not_reparse_finished_sources(arcforge_home, tmp_path, monkeypatch):
    a = _local(tmp_path / "a", {"x.json": json.dumps(GOOD).encode()})
    b = _local(tmp_path / "b", {"y.json": json.dumps(GOOD_B).encode()})
    calls: list[str] = []
    real = ingest._local_items

    def crash_on_b(plan):
        calls.append(plan.name)
        if plan.name == "b":
            raise KeyboardInterrupt  # Ctrl-C while source b is parsed
        return real(plan)

    monkeypatch.setattr(ingest, "_local_items", crash_on_b)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "out", local=[a, b], workers=1)  # serial: a is complete when b starts
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(ingest, "_local_items", lambda plan: (calls.append(plan.name), real(plan))[1])
    stats = build(tmp_path / "out", local=[a, b])
    assert calls == ["a", "b", "b"]  # a came from the build cache the second time
    assert stats.cached_sources == ["a"] and stats.total_tasks == 2
    (a / "x2.json").write_text(json.dumps(GOOD_C))  # a changed: parsed again
    stats = build(tmp_path / "out", local=[a, b])
    assert calls[-1] == "a" and stats.total_tasks == 3


def test_crash_while_writing_leaves_previous_output(full_build, mirror_home, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "out"
    shutil.copytree(full_build[0], out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    monkeypatch.setenv("ARCFORGE_HOME", str(mirror_home))
    real = shard_writer._gather  # rows gathered for each block of a shard file being written
    written: list[int] = []

    def crash_after_three(batches, starts, rows):
        written.append(len(rows))
        if len(written) == 3:
            raise KeyboardInterrupt
        return real(batches, starts, rows)

    monkeypatch.setattr(shard_writer, "_gather", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        build(out, sources=["arc_agi_1", "concept_arc", "mini_arc"])
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temp folder left behind


def test_two_builds_are_byte_identical(full_build, mirror_home, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCFORGE_HOME", str(mirror_home))
    first, _ = full_build
    build(tmp_path / "again", use_cache=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(
        p.relative_to(tmp_path / "again") for p in (tmp_path / "again").rglob("*") if p.is_file()
    )
    for f in files:
        assert (first / f).read_bytes() == (tmp_path / "again" / f).read_bytes(), f
