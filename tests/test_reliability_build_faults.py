"""A user's mistakes and an unlucky disk during `build` are one clear line, and nothing is lost.

Task files are hand-made in ARC's own format (small fixtures), except where a built dataset or the real
upstream tasks are the point.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.sources.members import ZipCache, open_member
from arcforge.task import DUPLICATE_KEY, UNREADABLE, TaskFormatError

runner = CliRunner()
REPO_ROOT = Path(__file__).resolve().parent.parent
GRID = [[1, 2], [3, 4]]
FLIP = [[2, 1], [4, 3]]


def task(seed: int = 0) -> dict:
    """A small task of random 4x4 grids (no two seeds give copies, recolored or not)."""
    rng = random.Random(seed)
    g = [[rng.randrange(10) for _ in range(4)] for _ in range(4)]
    h = [[rng.randrange(10) for _ in range(4)] for _ in range(4)]
    return {"train": [{"input": g, "output": g[::-1]}], "test": [{"input": h, "output": h[::-1]}]}


def write_tasks(folder: Path, n: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"t{i}.json").write_text(json.dumps(task(i)))
    return folder


def build(*args: str):
    return runner.invoke(app, ["build", *args])


def one_clear_line(r) -> None:
    assert r.exit_code == 1, r.output
    assert "Traceback" not in r.output and "internal error" not in r.output and "zip()" not in r.output, (
        r.output
    )


# --- class 6: a folder with no valid task -------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["empty", "all-broken", "readme-only", "max-grid-1", "built-dataset"])
def test_a_folder_without_a_valid_task_is_one_clear_line(tmp_path, arcforge_home, variant):
    src = tmp_path / "src"
    src.mkdir()
    extra: list[str] = []
    if variant == "all-broken":
        (src / "a.json").write_text('{"train": 3}')
        (src / "b.json").write_text("nope")
    elif variant == "readme-only":
        (src / "README.md").write_text("# my tasks\n")
    elif variant == "max-grid-1":
        write_tasks(src)
        extra = ["--max-grid", "1"]
    elif variant == "built-dataset":
        assert build("--local", str(write_tasks(tmp_path / "tasks")), "--out", str(src)).exit_code == 0
    out = tmp_path / "out"
    r = build("--local", str(src), "--out", str(out), *extra)
    one_clear_line(r)
    assert "no valid task to write" in r.output and "was not changed" in r.output and not out.exists()
    if variant == "all-broken":
        assert "2 quarantined" in r.output
    if variant == "max-grid-1":
        assert "3 quarantined (3 oversize)" in r.output and "--max-grid" in r.output


def test_local_equal_to_eval_local_is_refused(tmp_path, arcforge_home):
    src = write_tasks(tmp_path / "src")
    r = build("--local", str(src), "--eval-local", str(src), "--out", str(tmp_path / "out"))
    one_clear_line(r)
    assert "both as --local and as --eval-local" in r.output


# --- class 8 and 6: task files the build must report, with the right reason ---------------------------------
def test_duplicate_keys_and_nameless_files_are_quarantined_with_their_reason(tmp_path, arcforge_home):
    src = write_tasks(tmp_path / "src", 1)
    t = task(7)
    pair = json.dumps(t["train"][0]["input"])
    (src / "two-tests.json").write_text(
        f'{{"train": {json.dumps(t["train"])}, "test": {json.dumps(t["test"])}, '
        f'"test": {json.dumps(t["train"])}}}'
    )
    (src / "two-inputs.json").write_text(
        f'{{"train": [{{"input": {pair}, "input": {json.dumps(GRID)}, "output": {pair}}}], '
        f'"test": {json.dumps(t["test"])}}}'
    )
    (src / "names.json").write_text(json.dumps({**task(8), "note": "test", "tags": ["input", "train"]}))
    (src / "...json").write_text(json.dumps(task(9)))
    out = tmp_path / "out"
    r = build("--local", str(src), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (out / "reports" / "quarantine.jsonl").read_text().splitlines()]
    by_path = {row["path"]: row for row in rows}
    assert (
        by_path["two-tests.json"]["reason"] == DUPLICATE_KEY
        and "'test'" in by_path["two-tests.json"]["detail"]
    )
    assert (
        by_path["two-inputs.json"]["reason"] == DUPLICATE_KEY
        and "'input'" in by_path["two-inputs.json"]["detail"]
    )
    assert by_path["...json"]["reason"] == "bad_name"
    assert json.loads(r.stdout)["total_tasks"] == 2  # t0 and names.json (key names as values are data)


def test_an_unreadable_task_file_is_quarantined_as_unreadable(tmp_path):
    (tmp_path / "x.json").mkdir()  # listed as a file, then replaced: reading it fails (not a size problem)
    with ZipCache() as zips, pytest.raises(TaskFormatError) as e:
        open_member(tmp_path, "x.json", zips).read()
    assert e.value.reason == UNREADABLE and "cannot read the file" in e.value.detail


# --- class 6: blame the right path --------------------------------------------------------------------------
def _immutable(path: Path, on: bool) -> bool:
    """chattr +i / -i: a folder even root cannot change (the tests run as root in CI)."""
    return subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True).returncode == 0


@pytest.fixture()
def immutable(tmp_path):
    held: list[Path] = []

    def make(path: Path) -> Path:
        if not _immutable(path, True):
            pytest.skip("chattr +i is not available here (needs a filesystem and rights that support it)")
        held.append(path)
        return path

    yield make
    for p in held:
        _immutable(p, False)


def test_a_read_only_cache_is_named_not_blamed_on_out(tmp_path, arcforge_home, immutable):
    src = write_tasks(tmp_path / "src")
    arcforge_home.mkdir()
    immutable(arcforge_home)
    out = tmp_path / "out"
    r = build("--local", str(src), "--out", str(out))
    one_clear_line(r)
    assert "--out" not in r.output.split("hint")[0].replace("--out was not changed", ""), r.output
    assert str(arcforge_home) in r.output and "ARCFORGE_HOME" in r.output and not out.exists()


def test_a_read_only_out_changes_nothing_and_later_builds_work(tmp_path, arcforge_home, immutable):
    src = write_tasks(tmp_path / "src", 2)
    out = tmp_path / "out"
    assert build("--local", str(src), "--out", str(out)).exit_code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    write_tasks(src, 4)  # a different build
    immutable(out / "reports")
    r = build("--local", str(src), "--out", str(out))
    one_clear_line(r)
    assert "read-only" in r.output and "left as it was" in r.output
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(x.name for x in tmp_path.iterdir()) == [
        "home",
        "out",
        "src",
    ]  # no .out.old-PID, no .building
    _immutable(out / "reports", False)
    r = build("--local", str(src), "--out", str(out), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["total_tasks"] == 4, r.output


# --- class 8: the user's card edits -------------------------------------------------------------------------
def test_an_edited_card_is_kept_with_a_note(tmp_path, arcforge_home):
    src = write_tasks(tmp_path / "src", 2)
    out = tmp_path / "out"
    assert build("--local", str(src), "--out", str(out)).exit_code == 0
    card = out / "README.md"
    mine = card.read_text() + "\n## My notes\nHand-written analysis.\n"
    card.write_text(mine)
    r = build("--local", str(src), "--out", str(out), "--json")
    assert r.exit_code == 0, r.output
    assert (out / "README.edited.md").read_text() == mine and "My notes" not in card.read_text()
    assert "README.edited.md" in r.stderr and "had been edited" in r.stderr
    r = build(
        "--local", str(src), "--out", str(out)
    )  # an untouched card: replaced quietly, the kept one stays
    assert r.exit_code == 0 and "had been edited" not in r.output
    assert (out / "README.edited.md").read_text() == mine


# --- class 6: output to a full disk -------------------------------------------------------------------------
@pytest.mark.parametrize("args", [["--version"], ["--help"], ["sources", "--json"], ["sources"]])
def test_output_to_a_full_disk_is_one_clear_line(args, arcforge_home):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full on this system")
    with open("/dev/full", "w") as full:
        p = subprocess.run(
            [sys.executable, "-m", "arcforge", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
            timeout=120,
        )
    assert p.returncode == 1 and p.stderr.strip().splitlines() == [
        "Error: cannot write the output (No space left on device)"
    ], p.stderr


# --- class 4: one zip of many tasks -------------------------------------------------------------------------
def test_a_zip_is_opened_and_checked_once_per_build_not_per_chunk(tmp_path, arcforge_home, monkeypatch):
    """Counted, not timed: the members' check runs once per process however many chunks the zip makes."""
    from arcforge.sources import members

    src = tmp_path / "src"
    src.mkdir()
    with zipfile.ZipFile(src / "tasks.zip", "w") as zf:
        for i in range(1200):  # 5 chunks of 256 files
            zf.writestr(f"t/{i:05d}.json", json.dumps(task(i)))
    calls = []
    real = members.check_zip_members
    monkeypatch.setattr(members, "check_zip_members", lambda *a, **k: (calls.append(a[1]), real(*a, **k))[1])
    r = build("--local", str(src), "--out", str(tmp_path / "out"), "--workers", "1", "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)["files_read"] == 1200, r.output
    assert len(calls) <= 2, calls  # planning once, the chunks once (was once per chunk: 1 + 5)


def test_writing_no_rows_writes_no_shard(tmp_path):
    from arcforge.build.shard_writer import write_shards
    from arcforge.task import TASK_SCHEMA

    assert write_shards(TASK_SCHEMA.empty_table(), tmp_path / "out") == []  # was: ValueError from zip()
    assert not any((tmp_path / "out").rglob("*.parquet"))
