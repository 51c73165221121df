"""Parallel builds: the same bytes for any number of workers, parallel generation equal to the serial
generator, and an interrupted parallel build that leaves the previous output as it was."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from arcforge import synthetic
from arcforge.build.ingest import SourcePlan, _Chunk, _SourceMerger
from arcforge.build.parallel import WorkerPool, available_cpus, resolve_workers
from arcforge.build.pipeline import _split_bytes, build
from arcforge.build.shard_writer import _rows_nbytes, write_shards
from arcforge.build.spill import SpillWriter, read_spill
from arcforge.shards import read_table
from arcforge.synthetic.generator import generate_table
from arcforge.task import tasks_to_table

ROOT = Path(__file__).resolve().parent.parent


def _task_json(t) -> dict:
    return {
        role: [{"input": p.input.tolist(), "output": p.output.tolist()} for p in pairs]
        for role, pairs in (("train", t.train), ("test", t.test))
    }


def _files(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A user folder with every kind of member: plain files in two splits, a zip whose member has the same
    id as a plain file, an RE-ARC example list, broken files, a non-task, and copies for dedup."""
    root = tmp_path_factory.mktemp("tasks") / "mine"
    tasks = list(synthetic.generate(90, seed=3))
    for i, t in enumerate(tasks[:60]):
        (root / "training").mkdir(parents=True, exist_ok=True)
        (root / "training" / f"t{i:03d}.json").write_text(json.dumps(_task_json(t)))
    for i, t in enumerate(tasks[60:75]):
        (root / "evaluation").mkdir(parents=True, exist_ok=True)
        (root / "evaluation" / f"e{i:03d}.json").write_text(json.dumps(_task_json(t)))
    # copies: of an evaluation task (excluded with --exclude-eval) and of a training task (a duplicate)
    (root / "training" / "copy_of_e000.json").write_bytes((root / "evaluation" / "e000.json").read_bytes())
    (root / "training" / "zz_copy_of_t001.json").write_bytes((root / "training" / "t001.json").read_bytes())
    examples = [p for t in tasks[75:90] for p in _task_json(t)["train"]]
    (root / "training" / "re_arc_list.json").write_text(json.dumps(examples))
    (root / "training" / "broken.json").write_bytes(b'{"train": [')
    (root / "training" / "value.json").write_text(
        json.dumps({**_task_json(tasks[0]), "test": [{"input": [[1, 12]], "output": [[1]]}]})
    )
    (root / "training" / "not_a_task.json").write_text(json.dumps({"hello": "world"}))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for i, t in enumerate(tasks[40:50]):
            zf.writestr(f"z{i:02d}.json", json.dumps(_task_json(t)))
        zf.writestr("training/t002.json", json.dumps(_task_json(tasks[5])))  # id mine/training/t002 again
    (root / "packed.zip").write_bytes(buf.getvalue())
    return root


def test_output_is_byte_identical_for_any_worker_count(arcforge_home, tmp_path, task_folder):
    opts = {
        "local": [task_folder],
        "synthetic_tasks": 200,
        "synthetic_difficulty": "easy",
        "exclude_eval": True,
        "eval_refs": ["mine:evaluation"],
    }
    outs = {}
    for workers in (1, 3):
        stats = build(tmp_path / f"out{workers}", use_cache=False, workers=workers, **opts)
        outs[workers] = _files(tmp_path / f"out{workers}")
        assert stats.quarantined == {"bad_structure": 1, "bad_value": 1, "duplicate_id": 1, "invalid_json": 1}
        assert stats.excluded >= 1 and stats.duplicates >= 2  # the copies and the zip's tasks
        assert stats.tasks["synthetic"]["training"] == 200
    assert outs[1] == outs[3]
    # two workers, parsing into the build cache, then served from it: the same bytes again
    build(tmp_path / "cached1", workers=2, **opts)
    again = build(tmp_path / "cached2", workers=2, **opts)
    assert again.cached_sources == ["mine"]
    assert _files(tmp_path / "cached1") == _files(tmp_path / "cached2") == outs[1]


def test_parallel_synthetic_tasks_are_the_serial_generators(arcforge_home, tmp_path):
    n = 700
    build(tmp_path / "out", sources=["synthetic"], synthetic_tasks=n, seed=11, workers=2)
    got = read_table(tmp_path / "out").sort_by("id")
    want = sorted(synthetic.generate(n, seed=11), key=lambda t: t.id)
    assert got["id"].to_pylist() == [t.id for t in want]
    assert got["fingerprint"].to_pylist() == [t.fingerprint for t in want]


def test_a_repeated_draw_is_drawn_again_as_the_serial_generator_does(tmp_path):
    """Workers draw without knowing earlier tasks; the ordered merge re-draws a task whose fingerprint is
    already taken. Here chunk 2 repeats chunk 1's tasks, so every one of them must be re-drawn."""
    import pyarrow as pa

    plan = SourcePlan("synthetic", "synthetic", synthetic_n=40, seed=5)
    first = generate_table(0, 20, 5)
    with SpillWriter(tmp_path / "s.arrow") as w:
        merger = _SourceMerger(0, plan, w)
        merger.add(_Chunk(0, False, first))
        merger.add(_Chunk(0, True, first))  # the draws of tasks 0..19 again, offered as tasks 20..39
    got = read_spill(tmp_path / "s.arrow")
    taken = set(first["fingerprint"].to_pylist())
    want = [
        synthetic.generator.regenerate(i, 5, families=None, difficulty="medium", taken=taken)
        for i in range(20, 40)
    ]
    assert got.slice(20)["fingerprint"].to_pylist() == [t.fingerprint for t in want]
    assert len(set(got["fingerprint"].to_pylist())) == 40
    assert pa.concat_tables([first]).equals(got.slice(0, 20))


def test_spill_layout_does_not_depend_on_the_pieces(tmp_path):
    table = generate_table(0, 300, 1)
    a, b = tmp_path / "a.arrow", tmp_path / "b.arrow"
    with SpillWriter(a, batch_rows=64) as w:
        w.write(table)
    with SpillWriter(b, batch_rows=64) as w:
        for lo, hi in ((0, 1), (1, 70), (70, 71), (71, 250), (250, 300)):
            w.write(table.slice(lo, hi - lo))
    assert a.read_bytes() == b.read_bytes()
    assert [x.num_rows for x in read_spill(a).to_batches()] == [64, 64, 64, 64, 44]


def test_worker_counts():
    assert resolve_workers(None) == resolve_workers(0) == available_cpus() == len(os.sched_getaffinity(0))
    assert resolve_workers(3) == 3
    with pytest.raises(Exception, match="at least 1"):
        resolve_workers(-1)
    with WorkerPool(2) as pool:
        assert list(pool.imap(abs, range(-50, 0), window=3)) == list(range(50, 0, -1))


def test_a_worker_error_stops_the_build_with_its_message(arcforge_home, tmp_path):
    with WorkerPool(2) as pool, pytest.raises(ZeroDivisionError):
        list(pool.imap(_inverse, [1, 2, 0, 4]))


def _inverse(x: int) -> float:
    return 1 / x


def _held_or_done(job: tuple[int, str]) -> int:
    """Item 0 waits for ``release`` in the folder (60 s at most); the others leave a mark and return."""
    i, folder = job
    if i == 0:
        deadline = time.monotonic() + 60
        while not (Path(folder) / "release").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
    else:
        (Path(folder) / f"done-{i}").touch()
    return i


def test_a_slow_chunk_at_the_head_does_not_idle_the_other_workers(tmp_path):
    """The parse stage merges chunks in order; while the first chunk is still running, the other worker
    goes on through the parse window (PARSE_WINDOW_PER_WORKER per worker), not just a couple of chunks."""
    import threading

    from arcforge.build.ingest import PARSE_WINDOW_PER_WORKER

    got: list[int] = []
    with WorkerPool(2) as pool:
        window = PARSE_WINDOW_PER_WORKER * pool.workers
        jobs = [(i, str(tmp_path)) for i in range(window + 4)]
        t = threading.Thread(target=lambda: got.extend(pool.imap(_held_or_done, jobs, window=window)))
        t.start()
        deadline = time.monotonic() + 60
        while len(list(tmp_path.glob("done-*"))) < window - 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        done_while_held = len(list(tmp_path.glob("done-*")))
        (tmp_path / "release").touch()
        t.join(60)
    assert PARSE_WINDOW_PER_WORKER >= 4
    assert done_while_held >= window - 1  # every chunk in flight behind the held one finished meanwhile
    assert got == list(range(window + 4))


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_interrupted_parallel_build_leaves_previous_output(arcforge_home, tmp_path, task_folder):
    out = tmp_path / "out"
    build(out, local=[task_folder], workers=2)
    before = _tree(out)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "arcforge",
        "build",
        "--out",
        str(out),
        "--no-cache",
        "--workers",
        "2",
        "--source",
        "synthetic",
        "--synthetic-tasks",
        "30000",
    ]
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    tmp = arcforge_home / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp.glob("build-*/*.arrow.tmp-*")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    assert list(tmp.glob("build-*/*.arrow.tmp-*")), "the build never started spilling tasks"
    workers = _children(proc.pid)
    assert len(workers) >= 2
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
    try:
        proc.communicate(timeout=90)  # chunks already running finish first; a hang never ends
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("an interrupted parallel build did not stop")
    assert proc.returncode != 0
    assert _tree(out) == before
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".out")]
    assert not list(tmp.glob("build-*"))
    # workers exit on their own once the pool closes; give a loaded machine time to schedule them
    gone_by = time.monotonic() + 20
    while _alive(workers) and time.monotonic() < gone_by:
        time.sleep(0.1)
    assert not _alive(workers)


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.append(pid)
    return alive


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def test_shards_do_not_depend_on_how_the_table_is_chunked(tmp_path):
    import pyarrow as pa

    from arcforge.build.shard_writer import write_shards

    table = generate_table(0, 300, 2)
    table = table.set_column(1, "source", pa.array(["b" if i % 3 else "a" for i in range(300)]))
    pieces = [table.slice(lo, hi - lo) for lo, hi in ((0, 7), (7, 120), (120, 121), (121, 300))]
    chunked = pa.Table.from_batches([b for p in pieces for b in p.to_batches()])
    a = write_shards(table, tmp_path / "a", shard_bytes=60_000, row_group_rows=16)
    b = write_shards(chunked, tmp_path / "b", shard_bytes=60_000, row_group_rows=16)
    assert a == b and len(a) > 2 and {i.source for i in a} == {"a", "b"}
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    back = read_table(tmp_path / "a")
    assert (
        back["id"].to_pylist()
        == table.sort_by([("source", "ascending"), ("id", "ascending")])["id"].to_pylist()
    )
    assert back.sort_by("id").to_pylist() == table.sort_by("id").to_pylist()


def test_a_killed_build_leaves_spill_files_that_the_next_build_removes(arcforge_home, tmp_path, task_folder):
    """SIGKILL runs no cleanup: the spill folder stays in ARCFORGE_HOME/tmp. The next build removes it (its
    process is gone) and leaves a running build's folder, and files arcforge did not name, alone."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [
        sys.executable,
        "-m",
        "arcforge",
        "build",
        "--out",
        str(tmp_path / "killed"),
        "--no-cache",
        "--workers",
        "2",
        "--source",
        "synthetic",
        "--synthetic-tasks",
        "30000",
    ]
    proc = subprocess.Popen(
        cmd, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True
    )
    tmp = arcforge_home / "tmp"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp.glob(f"build-{proc.pid}-*/*.arrow.tmp-*")):
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    left = list(tmp.glob(f"build-{proc.pid}-*"))
    assert len(left) == 1 and list(left[0].glob("*.arrow.tmp-*")), "the killed build left no spill folder"
    # a build still running elsewhere (a live process), and things arcforge did not write
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        running = tmp / f"build-{other.pid}-abcd1234"
        running.mkdir()
        (running / "000-synthetic.arrow.tmp-1").write_bytes(b"x")
        mine = tmp / "my-notes"
        mine.mkdir()
        cache = arcforge_home / "build-cache"
        cache.mkdir(exist_ok=True)
        dead_tmp = cache / f"0123.arrow.tmp-{proc.pid}"  # an unfinished cache entry of the killed build
        dead_tmp.write_bytes(b"x")
        live_tmp = cache / f"4567.arrow.tmp-{other.pid}"
        live_tmp.write_bytes(b"x")

        build(tmp_path / "next", local=[task_folder], workers=1)

        assert not left[0].exists()
        assert not dead_tmp.exists()
        assert running.is_dir() and (running / "000-synthetic.arrow.tmp-1").exists()
        assert live_tmp.exists() and mine.is_dir()
        assert not list(tmp.glob(f"build-{os.getpid()}-*"))  # the build removed its own folder too
    finally:
        other.kill()
        other.wait()


def test_card_bytes_are_the_sums_that_cut_the_shards(tmp_path):
    """The build hands its per-split byte counts (``_split_bytes``) to ``write_shards`` instead of letting it
    count again: they must be the very sums ``write_shards`` would compute, on a table whose batches mix
    sources and splits, and give the same files."""
    tasks = list(synthetic.generate(60, seed=5))
    for i, t in enumerate(tasks):
        t.source, t.split = ("a", "b")[i % 2], ("training", "evaluation")[i % 3 == 0]
    table = pa.Table.from_batches(tasks_to_table(tasks).to_batches(max_chunksize=7))
    sums = _split_bytes(table)
    batches = table.to_batches()
    starts = np.cumsum([0, *(b.num_rows for b in batches)])
    for (source, split), n in sums.items():
        mask = np.array(
            [
                (s, sp) == (source, split)
                for s, sp in zip(table["source"].to_pylist(), table["split"].to_pylist(), strict=True)
            ]
        )
        assert n == _rows_nbytes(batches, starts, np.flatnonzero(mask)) > 0
    a = write_shards(table, tmp_path / "a", shard_bytes=5_000, row_group_rows=4)
    b = write_shards(table, tmp_path / "b", shard_bytes=5_000, row_group_rows=4, group_nbytes=sums)
    assert len(a) == len(b) > len(sums)  # several shards per split
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
