"""Seeded fuzzing that runs on every test run: random mutations of real tasks, hostile zips and tars,
corrupted shards and checkpoints. The rule checked is the same everywhere: a bad input ends as a
quarantined task or ONE typed arcforge error, never an internal error, a traceback or a hang.

Each case derives its own seed from ``ARCFORGE_FUZZ_SEED`` (default 0) and its number, and a failure
names that seed, so it replays exactly. ``ARCFORGE_FUZZ_CASES`` multiplies the case counts for a long run
(``ARCFORGE_FUZZ_CASES=50 ARCFORGE_FUZZ_SEED=$RANDOM make test``); the defaults keep the module within a
few seconds.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import random
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcforge import shards
from arcforge.build.reports import read_report
from arcforge.cli.app import app
from arcforge.errors import FetchError, ShardError
from arcforge.sources import archive
from arcforge.sources.archive import ArchiveLimits
from arcforge.task import QUARANTINE_REASONS
from tests.train_fixtures import TINY_CLI

SEED = int(os.environ.get("ARCFORGE_FUZZ_SEED", "0"))
SCALE = max(1, int(os.environ.get("ARCFORGE_FUZZ_CASES", "1")))
runner = CliRunner()


def _rng(kind: str, case: int) -> random.Random:
    return random.Random(f"{kind}-{SEED}-{case}")


def _real_tasks(shared: Path, n: int) -> list[tuple[str, bytes]]:
    folder = shared / "fchollet" / "ARC-AGI" / "data" / "training"
    return [(f.name, f.read_bytes()) for f in sorted(folder.glob("*.json"))[:n]]


# --- mutations of real tasks --------------------------------------------------------------------------------
_ODD_VALUES = [-1, 10, 99, 2.5, "3", None, True, [], {}, 10**30, float("inf")]


def _grids(obj):
    for part in ("train", "test"):
        for pair in obj.get(part, []) if isinstance(obj, dict) else []:
            if isinstance(pair, dict):
                for side in ("input", "output"):
                    if isinstance(pair.get(side), list):
                        yield pair, side


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One random damage to a task file: structural (JSON level) or raw (byte level)."""
    kind = rng.choice(
        [
            "cell",
            "cell",
            "ragged",
            "empty",
            "drop_key",
            "wrap",
            "nest",
            "type",
            "truncate",
            "flip",
            "bom",
            "dup",
            "none",
        ]
    )
    if kind in ("truncate", "flip", "bom"):
        if kind == "truncate":
            return data[: rng.randrange(len(data))]
        if kind == "bom":
            return b"\xef\xbb\xbf" + data
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        return bytes(b)
    obj = json.loads(data)
    grids = list(_grids(obj))
    pair, side = rng.choice(grids)
    grid = pair[side]
    if kind == "cell" and grid and grid[0]:
        grid[rng.randrange(len(grid))][0] = rng.choice(_ODD_VALUES)
    elif kind == "ragged" and grid:
        grid[rng.randrange(len(grid))].append(1)
    elif kind == "empty":
        pair[side] = rng.choice([[], [[]], None])
    elif kind == "drop_key":
        obj.pop(rng.choice(["train", "test"]), None)
    elif kind == "wrap":
        obj = rng.choice([[obj], "text", 3, {"task": obj}])
    elif kind == "nest":
        if rng.random() < 0.5:  # deeper than any JSON parser's recursion
            return b'{"train": [{"input": ' + b"[" * 5000 + b"]" * 5000 + b', "output": [[1]]}], "test": []}'
        pair[side] = [[grid]]
    elif kind == "type":
        obj[rng.choice(["train", "test"])] = rng.choice([{}, "x", 1, [1, 2]])
    elif kind == "dup":
        return data[:-1] + b', "train": []}'
    return json.dumps(obj).encode()


def test_fuzz_mutated_real_tasks_are_quarantined_never_an_internal_error(
    shared_sources, arcforge_home, tmp_path
):
    real = _real_tasks(shared_sources, 12)
    for case in range(2 * SCALE):
        rng = _rng("tasks", case)
        folder = tmp_path / f"in{case}"
        folder.mkdir()
        names = []
        for i in range(30):
            name, data = rng.choice(real)
            bad = mutate(data, rng)
            names.append(f"m{i:03d}_{name}")
            (folder / names[-1]).write_bytes(bad)
        with zipfile.ZipFile(folder / "pack.zip", "w") as zf:  # some mutants inside a zip as well
            for i in range(5):
                zf.writestr(f"z{i}.json", mutate(rng.choice(real)[1], rng))
        out = tmp_path / f"out{case}"
        res = runner.invoke(app, ["build", "--local", str(folder), "--out", str(out), "--json"])
        where = f"(ARCFORGE_FUZZ_SEED={SEED}, case {case})"
        assert res.exit_code == 0, f"{where}: {res.output[-2000:]}"
        stats = json.loads(res.stdout)
        assert set(stats["quarantined"]) <= set(QUARANTINE_REASONS), where
        # accounting: every task found is written, quarantined or dropped as a duplicate
        found = sum(sum(v.values()) for v in stats["found"].values())
        dropped = stats["duplicates"] + stats["excluded"]
        assert found == stats["total_tasks"] + stats["total_quarantined"] + dropped, where
        assert stats["files_read"] == 35, where
        # what was written reads back as valid tasks
        if stats["total_tasks"]:  # (every mutant can be bad: then there is no shard to read)
            assert len(list(shards.read_tasks(out))) == stats["total_tasks"], where


# --- hostile archives ---------------------------------------------------------------------------------------
def _hostile_entry(rng: random.Random, top: str) -> tuple[tarfile.TarInfo, bytes]:
    kind = rng.choice(
        [
            "file",
            "dotdot",
            "abs",
            "symlink_out",
            "hardlink_out",
            "fifo",
            "dev",
            "big",
            "dup",
            "nul",
            "outside_top",
            "symlink_in",
        ]
    )
    name = f"{top}/data/x{rng.randrange(5)}.json"
    info = tarfile.TarInfo(name)
    data = b'{"train": [], "test": []}'
    if kind == "dotdot":
        info.name = f"{top}/../../etc/x.json"
    elif kind == "abs":
        info.name = "/etc/passwd"
    elif kind in ("symlink_out", "symlink_in"):
        info.type, info.linkname = (
            tarfile.SYMTYPE,
            "../../../etc/passwd" if kind == "symlink_out" else "x0.json",
        )
        data = b""
    elif kind == "hardlink_out":
        info.type, info.linkname, data = tarfile.LNKTYPE, "/etc/passwd", b""
    elif kind == "fifo":
        info.type, data = tarfile.FIFOTYPE, b""
    elif kind == "dev":
        info.type, data = tarfile.CHRTYPE, b""
    elif kind == "big":
        info.size = 1 << 33  # the header lies: 8 GiB
        return info, b""
    elif kind == "nul":
        info.name = f"{top}/data/a\x00b.json"
    elif kind == "outside_top":
        info.name = "other-top/data/x.json"
    info.size = len(data)
    return info, data


def _tarball(rng: random.Random) -> bytes:
    top = "repo-abc123"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        d = tarfile.TarInfo(top)
        d.type = tarfile.DIRTYPE
        tar.addfile(d)
        for _ in range(rng.randint(1, 6)):
            info, data = _hostile_entry(rng, top)
            if info.size > len(data):  # a lying header: write the raw header block only
                buf.write(info.tobuf(tarfile.GNU_FORMAT, "utf-8", "surrogateescape"))
                continue
            with contextlib.suppress(ValueError, tarfile.HeaderError):
                tar.addfile(info, io.BytesIO(data) if data else None)
    raw = bytearray(buf.getvalue())
    if rng.random() < 0.4:  # and sometimes damage the bytes themselves
        for _ in range(rng.randint(1, 8)):
            raw[rng.randrange(len(raw))] = rng.randrange(256)
    import gzip

    body = gzip.compress(bytes(raw), mtime=0)
    if rng.random() < 0.2:
        body = body[: rng.randrange(len(body))]
    return body


def test_fuzz_hostile_tarballs_end_in_a_fetch_error_or_a_safe_tree(tmp_path):
    limits = ArchiveLimits(max_file_bytes=1 << 20, max_total_bytes=8 << 20)
    outcomes = set()
    for case in range(60 * SCALE):
        rng = _rng("tar", case)
        dest = tmp_path / f"x{case}"
        dest.mkdir()
        try:
            hashes = archive.extract_tar_gz(
                io.BytesIO(_tarball(rng)),
                dest,
                lambda rel: rel.endswith(".json"),
                archive=f"case{case}",
                limits=limits,
            )
            outcomes.add("ok")
        except FetchError as e:
            outcomes.add(type(e).__name__)
            assert f"case{case}" in e.message, e.message
            continue
        except Exception as e:
            pytest.fail(f"ARCFORGE_FUZZ_SEED={SEED} case {case}: {type(e).__name__}: {e}")
        for rel in hashes:  # whatever was kept is a regular file inside dest
            p = dest / rel
            assert p.is_file() and not p.is_symlink() and dest.resolve() in p.resolve().parents
    assert "UnsafeArchiveError" in outcomes  # the generator does produce hostile archives


def _hostile_zip(rng: random.Random, real: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    method = rng.choice([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA])
    with zipfile.ZipFile(buf, "w", method) as zf:
        for i in range(rng.randint(1, 4)):
            name = rng.choice(
                [f"t{i}.json", f"../t{i}.json", f"/abs{i}.json", f"d/t{i}.json", f"__MACOSX/._t{i}.json"]
            )
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            if rng.random() < 0.1:
                info.external_attr = 0o120777 << 16  # a symlink
            zf.writestr(info, rng.choice(real)[1])
    raw = bytearray(buf.getvalue())
    for _ in range(rng.choice([0, 0, 1, 3, 10])):
        raw[rng.randrange(len(raw))] = rng.randrange(256)
    if rng.random() < 0.15:
        raw = raw[: rng.randrange(len(raw))]
    return bytes(raw)


def test_fuzz_hostile_zips_never_fail_the_build(shared_sources, arcforge_home, tmp_path):
    real = _real_tasks(shared_sources, 5)
    rng = _rng("zip", 0)
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.json").write_bytes(real[0][1])
    for i in range(25 * SCALE):
        (folder / f"z{i:03d}.zip").write_bytes(_hostile_zip(rng, real))
    res = runner.invoke(app, ["build", "--local", str(folder), "--out", str(tmp_path / "out"), "--json"])
    assert res.exit_code == 0, f"ARCFORGE_FUZZ_SEED={SEED}: {res.output[-2000:]}"
    stats = json.loads(res.stdout)
    assert stats["total_tasks"] >= 1 and set(stats["quarantined"]) <= set(QUARANTINE_REASONS)
    q = read_report(tmp_path / "out", "quarantine").to_pylist()
    assert any(r["reason"] == "bad_archive" for r in q)


# --- corrupted shards ---------------------------------------------------------------------------------------
@pytest.fixture()
def small_build(shared_sources, arcforge_home, tmp_path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in _real_tasks(shared_sources, 8):
        (folder / name).write_bytes(data)
    out = tmp_path / "out"
    res = runner.invoke(app, ["build", "--local", str(folder), "--out", str(out), "--row-group-rows", "2"])
    assert res.exit_code == 0, res.output
    return out


def test_fuzz_corrupted_shards_give_a_shard_error_naming_the_file(small_build):
    [shard] = [small_build / i.path for i in shards.list_shards(small_build)]
    pristine = shard.read_bytes()
    seen = set()
    for case in range(40 * SCALE):
        rng = _rng("shard", case)
        b = bytearray(pristine)
        how = rng.choice(["flip", "flip", "truncate", "zero_run", "swap"])
        if how == "flip":
            for _ in range(rng.randint(1, 20)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif how == "truncate":
            b = b[: rng.randrange(len(b))]
        elif how == "zero_run":
            i = rng.randrange(len(b))
            b[i : i + rng.randint(1, 200)] = bytes(min(len(b) - i, 200))[: len(b[i : i + 200])]
        else:
            i, j = sorted(rng.sample(range(len(b)), 2))
            b[i:j] = b[i:j][::-1]
        shard.write_bytes(bytes(b))
        try:
            tasks = list(shards.read_tasks(small_build))
            seen.add("ok")
            assert all(t.train for t in tasks)
            from arcforge.inspect.stats import dataset_stats

            dataset_stats(small_build)
        except ShardError as e:
            seen.add("error")
            assert str(shard) in e.message, e.message
        except Exception as e:
            pytest.fail(f"ARCFORGE_FUZZ_SEED={SEED} case {case} ({how}): {type(e).__name__}: {e}")
    assert "error" in seen


# --- corrupted checkpoints ----------------------------------------------------------------------------------
def test_fuzz_corrupted_checkpoints_give_a_typed_error_or_an_older_intact_one(tmp_path):
    torch = pytest.importorskip("torch")  # the [train] extra
    from arcforge.errors import ArcforgeError
    from arcforge.train.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    for step in (1, 2):
        weights = {"w": torch.full((8, 8), float(step))}
        save_checkpoint(run, step, weights, {"step": step, "rng": torch.get_rng_state()}, {"model": {"d": 8}})
    ck = run / "checkpoints" / "step-000002"
    pristine = {p.name: p.read_bytes() for p in ck.iterdir()}
    outcomes = set()
    for case in range(12 * SCALE):
        rng = _rng("ckpt", case)
        name = rng.choice(sorted(pristine))
        b = bytearray(pristine[name])
        if rng.random() < 0.5:
            b = b[: rng.randrange(len(b) + 1)]
        else:
            for _ in range(rng.randint(1, 10)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        (ck / name).write_bytes(bytes(b))
        try:
            _, weights, _ = load_checkpoint(run)
            # the newest intact one: step 2 (or its bytes, scribbled inside the tensor data), or step 1
            outcomes.add(1 if torch.equal(weights["w"], torch.full((8, 8), 1.0)) else 2)
        except ArcforgeError:
            outcomes.add("error")
        except Exception as e:
            pytest.fail(f"ARCFORGE_FUZZ_SEED={SEED} case {case} ({name}): {type(e).__name__}: {e}")
        finally:
            (ck / name).write_bytes(pristine[name])
    assert 1 in outcomes  # damage to the newest checkpoint falls back to the older one


# --- checkpoints of a real run: byte flips, truncation, foreign tensors -------------------------------------
def test_fuzz_damaged_checkpoints_of_a_run_never_run_code_nor_load_bad_weights(tmp_path):
    torch = pytest.importorskip("torch")  # the [train] extra
    from safetensors.torch import save_file

    from arcforge.errors import ArcforgeError
    from arcforge.train.checkpoint import load_latest_intact, read_checkpoint, save_checkpoint

    run = tmp_path / "run"
    opt_state = {
        "state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.ones(4, 4)}},
        "param_groups": [{"params": [0], "betas": (0.9, 0.95), "lr": 1e-3}],
    }
    rng_state = {"torch": torch.get_rng_state(), "python": random.Random(1).getstate()}
    for step in (1, 2):
        state = {
            "step": step,
            "optimizer": opt_state,
            "rng": rng_state,
            "data": {"positions": [{0: (0, step, 0)}]},
        }
        save_checkpoint(run, step, {"w": torch.full((8, 8), float(step))}, state, {"model": {"d": 8}})
    ck = run / "checkpoints" / "step-000002"
    got = read_checkpoint(ck)[2]  # the state comes back with its types (int keys, tuples)
    assert got["optimizer"]["param_groups"][0]["betas"] == (0.9, 0.95) and 0 in got["optimizer"]["state"]
    assert (
        got["data"]["positions"] == [{0: (0, 2, 0)}] and got["rng"]["python"] == random.Random(1).getstate()
    )
    pristine = {p.name: p.read_bytes() for p in ck.iterdir()}
    outcomes = set()
    for case in range(16 * SCALE):
        rng = _rng("ckpt-run", case)
        name = rng.choice(sorted(pristine))
        how = rng.choice(["flip", "truncate", "foreign", "json"])
        b = bytearray(pristine[name])
        if how == "flip":
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif how == "truncate":
            b = b[: rng.randrange(len(b))]
        elif how == "foreign":  # a well-formed file of other tensors (the checksum no longer matches)
            buf = tmp_path / "foreign.safetensors"
            save_file({"evil": torch.full((rng.randint(1, 9),), float("nan"))}, str(buf))
            b = bytearray(buf.read_bytes())
        else:  # JSON with tags that are not ours
            b = bytearray(json.dumps({"$t": "999", "step": {"$a": "object", "v": [1]}}).encode())
        (ck / name).write_bytes(bytes(b))
        try:
            loaded = load_latest_intact(run)
            w = loaded.weights["w"]
            assert torch.isfinite(w).all() and loaded.state["step"] in (1, 2)
            outcomes.add(loaded.state["step"])
        except ArcforgeError as e:
            assert "Traceback" not in e.message
            outcomes.add("error")
        except Exception as e:
            pytest.fail(f"ARCFORGE_FUZZ_SEED={SEED} case {case} ({name}, {how}): {type(e).__name__}: {e}")
        finally:
            (ck / name).write_bytes(pristine[name])
    assert 1 in outcomes  # every damage to the newest checkpoint is seen: the older one is used


# --- concurrent writers of one run folder -------------------------------------------------------------------
_TINY_RUN = [*TINY_CLI, "--log-every", "1"]


def _tiny_dataset(root: Path) -> Path:
    from arcforge.build import shard_writer
    from arcforge.task import tasks_to_table
    from tests.train_fixtures import small_tasks

    shard_writer.write_shards(tasks_to_table(small_tasks("training", 24)), root)
    return root


def _arcforge(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "arcforge", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )


def test_fuzz_a_second_writer_of_a_run_folder_is_refused_while_one_holds_it(tmp_path):
    pytest.importorskip("torch")
    data = _tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    r = runner.invoke(app, ["train", "-d", str(data), "--out", str(run), "--max-steps", "1", *_TINY_RUN])
    assert r.exit_code == 0, r.output
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    holder = subprocess.Popen(  # another process: holds the run folder's lock until its stdin closes
        [
            sys.executable,
            "-c",
            "import sys; from arcforge.train.checkpoint import run_lock\n"
            f"with run_lock({str(run)!r}):\n    print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        modes = [["--resume", "--max-steps", "3"], ["--overwrite", "--max-steps", "2"], ["--max-steps", "2"]]
        for case in range(3 * SCALE):
            mode = modes[case % 3] if case < 3 else _rng("writers", case).choice(modes)
            r = runner.invoke(app, ["train", "-d", str(data), "--out", str(run), *mode, *_TINY_RUN])
            assert r.exit_code == 1, (mode, r.output)
            assert "another arcforge process is training into this run folder" in r.output, (mode, r.output)
            assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before, mode  # untouched
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)


def test_two_trainings_started_at_once_into_one_folder_one_wins_and_nothing_mixes(tmp_path):
    pytest.importorskip("torch")
    data = _tiny_dataset(tmp_path / "data")
    run = tmp_path / "run"
    procs = [
        _arcforge(
            "train", "-d", str(data), "--out", str(run), "--max-steps", "30", "--seed", str(i), *_TINY_RUN
        )
        for i in range(2)
    ]
    outs = [(p.wait(timeout=300), p.stdout.read()) for p in procs]
    codes = sorted(rc for rc, _ in outs)
    assert codes == [0, 1], outs
    loser = next(out for rc, out in outs if rc == 1)
    assert (
        "another arcforge process is training into this run folder" in loser
        or "already holds an earlier run" in loser
    ), loser  # refused while or after the winner trained
    assert "Traceback" not in loser
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 31))  # one run's lines, not two interleaved


# --- HTTP framing -------------------------------------------------------------------------------------------
_CONTROL = bytes([0x1B, 0x07, 0x08, 0x0D, 0x9B, 0x00, 0x7F]) + b"]0;t\x1b[2J"


def _framing(rng: random.Random) -> tuple[bytes, int, float]:
    """(raw response, bytes per send, pause between sends): a status line, headers and a body that may
    be malformed, carry terminal control bytes, lie about their length, or drip."""
    status = rng.choice([b"200", b"503", b"404", b"999", b"20", b"abc", b"301"])
    reason = rng.choice([b"OK", b"Bad" + bytes(rng.sample(_CONTROL, 4)), b"", b"x" * rng.randrange(1, 3000)])
    lines = [
        rng.choice([b"HTTP/1.1 ", b"HTTP/1.0 ", b"HTTP/9 ", b"", b"\x1b[31mHTTP/1.1 "])
        + status
        + b" "
        + reason
    ]
    body = gzip.compress(rng.randbytes(rng.randrange(0, 4000)), mtime=0)[: rng.randrange(1, 5000)]
    framing = rng.choice(["length", "short-length", "chunked", "bad-chunk", "close", "huge-length"])
    if framing in ("length", "short-length", "huge-length"):
        n = {"length": len(body), "short-length": len(body) // 2, "huge-length": 1 << 40}[framing]
        lines.append(b"Content-Length: %d" % n)
    elif framing in ("chunked", "bad-chunk"):
        lines.append(b"Transfer-Encoding: chunked")
        size = (
            b"%x" % len(body) if framing == "chunked" else rng.choice([b"zz", b"-1", b"f" * 40, b"0" * 5000])
        )
        body = size + b"\r\n" + body + b"\r\n0\r\n\r\n"
    for _ in range(rng.randrange(0, 4)):
        lines.append(
            rng.choice(
                [
                    b"X-A: " + bytes(rng.sample(_CONTROL, 3)),
                    b"X-Long: " + b"a" * rng.randrange(9000),
                    b"no colon here",
                    b"Location: \x1b]8;;http://evil\x07",
                ]
            )
        )
    raw = b"\r\n".join(lines) + b"\r\n\r\n" + body
    step, pause = rng.choice([(0, 0.0), (0, 0.0), (1, 0.002), (7, 0.01)])
    return raw, step, pause


def test_fuzz_http_framing_faults_end_in_one_clear_line_within_the_deadline(arcforge_home, monkeypatch):
    import time

    from arcforge.sources import fetch
    from arcforge.sources.download import RetryPolicy
    from arcforge.sources.manifest import load_manifests
    from tests.fetch_server import RawServer

    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    m = load_manifests()["arc_community"]
    policy = RetryPolicy(attempts=1, base_delay=0.01, timeout=0.3, deadline=1.0, min_rate=0)
    for case in range(12 * SCALE):
        raw, step, pause = _framing(_rng("http", case))
        with RawServer(raw, step=step, pause=pause) as srv:
            t0 = time.monotonic()
            try:
                [r] = fetch.fetch_sources([m], mirror=srv.url, retry=policy)
            except Exception as e:
                pytest.fail(f"ARCFORGE_FUZZ_SEED={SEED} case {case}: {type(e).__name__}: {e}")
            took = time.monotonic() - t0
        where = f"ARCFORGE_FUZZ_SEED={SEED} case {case}"
        assert r.status in ("failed", "unavailable"), (where, r)  # never a digest-matching fetch
        assert took < policy.deadline + policy.timeout + 5, (where, took, r.error)
        text = f"{r.error} {r.hint}"
        assert not any(chr(c) in text for c in (0x1B, 0x07, 0x08, 0x0D, 0x9B, 0x00, 0x7F)), (where, text)
        assert not fetch.cache_dir(m).exists(), where
