"""Bad input gets one clear line naming the file, never an internal error, and never fails a whole build:
hostile and corrupt zips, non-UTF-8 file names, markup in paths, damaged Parquet shards, archive bombs."""

from __future__ import annotations

import io
import json
import os
import random
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from arcforge import shards
from arcforge.build.pipeline import build
from arcforge.build.reports import read_report
from arcforge.cli.app import app
from arcforge.errors import FetchError, ShardError, UnsafeArchiveError
from arcforge.sources import archive, fetch
from arcforge.sources.archive import ArchiveLimits
from arcforge.sources.manifest import load_manifests
from tests.test_build import GOOD, GOOD_B, GOOD_C, _local

runner = CliRunner()


# --- zips ---------------------------------------------------------------------------------------------------
def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _patch_member(
    data: bytes, name: str, *, flag: int | None = None, method: int | None = None, size: int | None = None
) -> bytes:
    """Rewrite fields of one member in both its local header and its central directory entry."""
    out = bytearray(data)
    enc = name.encode()
    i = out.find(b"PK\x03\x04" + b"")
    while i != -1:
        n_len = struct.unpack_from("<H", out, i + 26)[0]
        if bytes(out[i + 30 : i + 30 + n_len]) == enc:
            if flag is not None:
                struct.pack_into("<H", out, i + 6, struct.unpack_from("<H", out, i + 6)[0] | flag)
            if method is not None:
                struct.pack_into("<H", out, i + 8, method)
        i = out.find(b"PK\x03\x04", i + 4)
    i = out.find(b"PK\x01\x02")
    while i != -1:
        n_len = struct.unpack_from("<H", out, i + 28)[0]
        if bytes(out[i + 46 : i + 46 + n_len]) == enc:
            if flag is not None:
                struct.pack_into("<H", out, i + 8, struct.unpack_from("<H", out, i + 8)[0] | flag)
            if method is not None:
                struct.pack_into("<H", out, i + 10, method)
            if size is not None:
                struct.pack_into("<I", out, i + 24, size)
        i = out.find(b"PK\x01\x02", i + 4)
    return bytes(out)


def _quarantine(out: Path) -> list[dict]:
    return sorted(read_report(out, "quarantine").to_pylist(), key=lambda r: r["path"])


def test_hostile_and_corrupt_zips_are_quarantined_and_the_build_goes_on(arcforge_home, tmp_path):
    good, other = json.dumps(GOOD).encode(), json.dumps(GOOD_B).encode()
    stored = _zip({"ok.json": good, "crc.json": other}, zipfile.ZIP_STORED)
    crc_bad = stored.replace(other, other.replace(b"4", b"5", 1), 1)  # data changed, CRC not: bad CRC
    # ~80 KB inflating to 80 MiB (over the per-member ratio), next to 400 KB of noise so the archive as a
    # whole stays within its budget and only the member is refused
    bomb = _zip({"bomb.json": b"0" * (80 << 20), "noise.bin": random.Random(1).randbytes(400 << 10)})
    files = {
        "plain.json": json.dumps(GOOD_C).encode(),
        "crc.zip": crc_bad,
        "enc.zip": _patch_member(_zip({"secret.json": good}), "secret.json", flag=0x1),
        "method.zip": _patch_member(_zip({"odd.json": good}), "odd.json", method=99),
        "huge.zip": _patch_member(_zip({"huge.json": good}), "huge.json", size=3 << 30),
        "bomb.zip": bomb,
        "notazip.zip": b"PK\x03\x04 this is not a zip at all",
        "evil.zip": _zip({"../../evil.json": good}),
    }
    folder = _local(tmp_path / "in", files)
    stats = build(tmp_path / "out", local=[folder])
    q = {r["path"]: (r["reason"], r["detail"]) for r in _quarantine(tmp_path / "out")}
    assert q["crc.zip!crc.json"][0] == "bad_archive" and "CRC" in q["crc.zip!crc.json"][1]
    assert q["enc.zip!secret.json"] == ("bad_archive", "secret.json: encrypted (password-protected) member")
    assert q["method.zip!odd.json"] == ("bad_archive", "odd.json: compression method 99 is not supported")
    assert q["huge.zip"][0] == "bad_archive" and "add up to more than" in q["huge.zip"][1]  # declares 3 GiB
    assert (
        q["bomb.zip!bomb.json"][0] == "too_large"
        and "times its compressed size" in q["bomb.zip!bomb.json"][1]
    )
    assert q["notazip.zip"][0] == "bad_archive" and "not a readable zip" in q["notazip.zip"][1]
    assert q["evil.zip"][0] == "bad_archive" and "climbs out" in q["evil.zip"][1]
    assert stats.total_tasks == 2  # plain.json and crc.zip!ok.json: one bad member spoils nothing else


def test_a_zip_whose_members_inflate_beyond_the_ratio_is_refused_as_a_whole(tmp_path):
    data = _zip({f"m{i}.json": b"0" * (1 << 20) for i in range(80)})  # 80 MiB from ~80 KiB
    path = tmp_path / "many.zip"
    path.write_bytes(data)
    with zipfile.ZipFile(path) as zf, pytest.raises(UnsafeArchiveError, match="times the archive's size"):
        archive.check_zip_members(zf, str(path), ArchiveLimits(ratio_floor=1 << 20))


# --- archive limits -----------------------------------------------------------------------------------------
def _tar_gz(entries: list[tuple[str, bytes]], fmt=tarfile.PAX_FORMAT) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return zlib.compress(buf.getvalue(), 9, wbits=31)  # gzip wrapper


def test_a_gzip_bomb_is_stopped_by_the_ratio_before_inflating_it_all(tmp_path):
    body = _tar_gz([("repo-x/skipped.bin", b"\0" * (40 << 20))])  # ~40 KiB -> 40 MiB, in a file not kept
    limits = ArchiveLimits(ratio_floor=4 << 20)
    gz = archive.GunzipReader(
        io.BytesIO(body),
        name="bomb",
        max_bytes=1 << 40,
        max_ratio=limits.max_ratio,
        ratio_floor=limits.ratio_floor,
    )
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        gz.drain()
    assert gz.decompressed <= limits.max_ratio * len(body) + (1 << 20) < 40 << 20  # at the ratio, not 40 MiB
    with pytest.raises(UnsafeArchiveError, match="decompression bomb"):
        archive.extract_tar_gz(
            io.BytesIO(body), tmp_path / "x", lambda rel: False, archive="bomb", limits=limits
        )


def test_kept_files_beyond_the_pinned_size_are_refused_before_being_written(tmp_path):
    body = _tar_gz([("repo-x/a.json", b"1" * 1000), ("repo-x/b.json", b"2" * 5000)])
    with pytest.raises(archive.OverPinnedSizeError, match="more than the 3000 bytes pinned"):
        archive.extract_tar_gz(
            io.BytesIO(body), tmp_path / "x", lambda rel: True, archive="src", max_kept_bytes=3000
        )
    assert not (tmp_path / "x" / "b.json").exists()
    pins = fetch.lock.read_lock(fetch.lock.repo_lock_path())
    assert pins and all(pin.bytes > 0 for pin in pins.values())  # every shipped pin bounds its download


def test_a_kept_tar_entry_with_a_non_utf8_name_is_a_clear_error(tmp_path):
    name = os.fsdecode(b"repo-x/caf\xe9.json")
    body = _tar_gz([(name, b"{}")], fmt=tarfile.GNU_FORMAT)
    with pytest.raises(UnsafeArchiveError, match="not valid UTF-8"):
        archive.extract_tar_gz(io.BytesIO(body), tmp_path / "x", lambda rel: True, archive="src")


# --- file names ---------------------------------------------------------------------------------------------
def test_non_utf8_file_names_are_quarantined_in_the_build(arcforge_home, tmp_path):
    folder = _local(tmp_path / "in", {"ok.json": json.dumps(GOOD).encode()})
    (folder / os.fsdecode(b"caf\xe9.json")).write_bytes(json.dumps(GOOD_B).encode())
    stats = build(tmp_path / "out", local=[folder])
    assert stats.total_tasks == 1
    [row] = _quarantine(tmp_path / "out")
    assert row["reason"] == "bad_name" and row["path"] == "caf\ufffd.json"


def test_non_utf8_file_names_in_a_folder_mirror_fail_the_fetch_clearly(
    arcforge_home, shared_sources, tmp_path
):
    import shutil

    m = load_manifests()["arc_community"]
    mirror = tmp_path / "mirror"
    shutil.copytree(shared_sources / m.owner / m.repo_name, mirror / m.owner / m.repo_name)
    (mirror / m.owner / m.repo_name / "levels" / "yk" / os.fsdecode(b"\xff\xfe.json")).write_bytes(b"{}")
    r = fetch.fetch_source(m, mirror=fetch.resolve_mirror(mirror))
    assert r.status == "failed" and "not valid UTF-8" in r.error and "\ufffd" in r.error


@pytest.mark.parametrize("weird", ["[/x]", "[red]dir", "[bold]"])
def test_error_text_is_printed_literally_not_as_markup(tmp_path, arcforge_home, weird):
    missing = tmp_path / weird / "tasks"
    res = runner.invoke(app, ["build", "--local", str(missing), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert f"{missing}: local folder not found" in res.output.replace("\n", "")
    assert "internal error" not in res.output and "MarkupError" not in res.output


# --- damaged shards -----------------------------------------------------------------------------------------
@pytest.fixture()
def built(arcforge_home, tmp_path) -> Path:
    folder = _local(
        tmp_path / "in", {"a.json": json.dumps(GOOD).encode(), "b.json": json.dumps(GOOD_B).encode()}
    )
    build(tmp_path / "out", local=[folder])
    return tmp_path / "out"


def _shard(out: Path) -> Path:
    return out / "in" / "training-00000-of-00001.parquet"


def _rewrite(path: Path, fn) -> None:
    t = pq.read_table(path)
    rows = t.to_pylist()
    fn(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=t.schema), path)


DAMAGES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "not_parquet": lambda p: p.write_bytes(b"hello, not parquet"),
    "empty": lambda p: p.write_bytes(b""),
    "footer_flip": lambda p: p.write_bytes(p.read_bytes()[:-12] + bytes(8) + p.read_bytes()[-4:]),
    "cell_99": lambda p: _rewrite(p, lambda rows: rows[0]["test"][0]["input"][0].__setitem__(0, 99)),
    "ragged": lambda p: _rewrite(p, lambda rows: rows[0]["train"][0]["input"].append([1])),
    "wrong_type": lambda p: pq.write_table(
        pa.table({c: pa.array(["x"]) for c in shards.TASK_SCHEMA.names}), p
    ),
    "bad_extra": lambda p: _rewrite(p, lambda rows: rows[0].__setitem__("extra", "{not json")),
}


@pytest.mark.parametrize("damage", sorted(DAMAGES))
def test_a_damaged_shard_is_a_shard_error_naming_the_file_everywhere(built, damage):
    path = _shard(built)
    DAMAGES[damage](path)
    with pytest.raises(ShardError) as e:
        list(shards.read_tasks(built))
    assert str(path) in e.value.message
    commands = [["show", "in/a", "--data", str(built)]]
    if damage != "bad_extra":  # stats never parses `extra`
        commands.append(["stats", "-d", str(built)])
    for args in commands:
        res = runner.invoke(app, args)
        assert res.exit_code == 1, (args, res.output)
        assert "Error:" in res.output and path.name in res.output.replace("\n", "")
        assert ("internal error" not in res.output and res.exception is None) or isinstance(
            res.exception, SystemExit
        )


def test_a_corrupt_page_in_the_middle_is_named(built):
    path = _shard(built)
    data = bytearray(path.read_bytes())
    for i in range(8, len(data) // 2):  # scribble over the data pages, keep the footer
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(ShardError, match=str(path).replace("[", r"\[")):
        list(shards.read_tasks(built))


def test_reading_a_good_shard_is_unchanged(built):
    assert [t.id for t in shards.read_tasks(built)] == ["in/a", "in/b"]
    assert shards.find_task(built, "in/b").train[0].input.tolist() == GOOD_B["train"][0]["input"]


def test_fetch_errors_never_leak_as_other_exceptions(arcforge_home, tmp_path):
    with pytest.raises(FetchError, match="does not exist"):
        fetch.resolve_mirror(tmp_path / "nope")


def test_a_non_utf8_path_in_an_error_prints_as_one_clean_line(tmp_path, arcforge_home):
    missing = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9"))
    res = runner.invoke(app, ["build", "--local", str(missing), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and "caf\ufffd: local folder not found" in res.output
    assert "internal error" not in res.output


def test_an_error_re_raised_from_a_data_loader_worker_is_still_one_line():
    text = (
        "Caught ShardError in DataLoader worker process 0.\nOriginal Traceback (most recent call last):\n"
        '  File "x.py", line 1, in f\n    raise ShardError(...)\n'
        "arcforge.errors.ShardError: /data/in/training-00000-of-00001.parquet: a test input grid has the "
        "cell value 99 (colors are 0-9)\n"
    )
    assert ShardError(text).message == (
        "/data/in/training-00000-of-00001.parquet: a test input grid has the cell value 99 (colors are 0-9)"
    )
    assert ShardError("plain: message").message == "plain: message"


@pytest.mark.parametrize("workers", ["0", "1"])
def test_train_on_a_shard_with_a_bad_cell_is_one_line_naming_the_file(built, tmp_path, workers):
    pytest.importorskip("torch")  # the [train] extra
    DAMAGES["cell_99"](_shard(built))
    res = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(built),
            "--out",
            str(tmp_path / "run"),
            "--max-steps",
            "2",
            "--d-model",
            "32",
            "--layers",
            "1",
            "--heads",
            "2",
            "--seq-len",
            "256",
            "--batch-size",
            "2",
            "--eval-every",
            "0",
            "--workers",
            workers,
        ],
    )
    assert res.exit_code == 1
    [line] = [x for x in res.output.splitlines() if x.startswith("Error:")]
    assert line == f"Error: {_shard(built)}: a test input grid has the cell value 99 (colors are 0-9)"
    assert "Traceback" not in res.output and "IndexError" not in res.output
