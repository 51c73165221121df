"""One CLI vocabulary and what a first session hits: --data/-d everywhere with build's default, Enum
choices, --version, plain text when stdout is not a color terminal, one-line filesystem errors, the
reports folder that keeps the dataset's Parquet files exactly the shards. All on the tiny hand-made
upstream (no real data)."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from arcforge.build import reports
from arcforge.cli.app import app
from arcforge.cli.options import DEFAULT_DATA
from arcforge.shards import list_shards, read_table

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


@pytest.fixture(scope="module")
def tiny_home(tiny, tmp_path_factory):
    """An ARCFORGE_HOME whose cache holds the tiny upstream, and a build of it in ``<cwd>/arc-dataset``."""
    base = tmp_path_factory.mktemp("vocab")
    env = {"ARCFORGE_HOME": str(base / "home"), "ARCFORGE_MANIFESTS": str(tiny.manifests_dir)}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        r = runner.invoke(app, ["fetch", "--all", "--mirror", str(tiny.mirror)])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["build", "--exclude-eval", "--out", str(base / DEFAULT_DATA)])
        assert r.exit_code == 0, r.output
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return base


def test_every_data_command_defaults_to_builds_out(tiny_home, monkeypatch):
    monkeypatch.chdir(tiny_home)
    stats = runner.invoke(app, ["stats", "--json"])
    assert stats.exit_code == 0, stats.output
    assert set(json.loads(stats.stdout)["sources"]) == {"tiny_eval", "tiny_train", "tiny_unknown"}
    ov = runner.invoke(app, ["overlap", "--json"])
    assert ov.exit_code == 0 and json.loads(ov.stdout)["by_level"] == {"exact": 1, "symmetric": 1}
    show = runner.invoke(app, ["show", "tiny_eval/evaluation/e0", "--json"])
    assert show.exit_code == 0 and json.loads(show.stdout)["split"] == "evaluation"
    dry = runner.invoke(app, ["publish", "--repo-id", "org/tiny", "--dry-run", "--allow-unknown-license"])
    assert dry.exit_code == 0 and "reports/excluded.jsonl" in dry.stdout
    for cmd in ("stats", "show", "overlap", "publish"):  # the same option, spelled the same way
        text = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"}).stdout
        assert "--data" in text and "-d" in text and "arc-dataset" in text, cmd
    build_help = runner.invoke(app, ["build", "--help"], env={"COLUMNS": "200"}).stdout
    assert "--out" in build_help and "arc-dataset" in build_help


def test_a_bad_choice_exits_2_and_help_lists_the_choices(tmp_path):
    r = runner.invoke(app, ["build", "-o", str(tmp_path / "x"), "--synthetic-difficulty", "extreme"])
    assert r.exit_code == 2 and "extreme" in r.output
    assert not (tmp_path / "x").exists()
    text = runner.invoke(app, ["build", "--help"], env={"COLUMNS": "200"}).stdout
    assert "easy|medium|hard" in text


def test_version():
    from arcforge import __version__

    r = subprocess.run(
        [sys.executable, "-m", "arcforge", "--version"], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert r.returncode == 0 and r.stdout.strip() == f"arcforge {__version__}"


def test_the_datasets_parquet_files_are_exactly_its_shards(tiny_home):
    ds = tiny_home / DEFAULT_DATA
    lf = pl.scan_parquet(str(ds / "**" / "*.parquet"))
    ids = sorted(lf.select("id").collect()["id"].to_list())
    assert ids == sorted(read_table(ds)["id"].to_pylist())
    assert sorted(p.relative_to(ds) for p in ds.rglob("*.parquet")) == sorted(i.path for i in list_shards(ds))
    assert sorted(p.name for p in (ds / "reports").iterdir()) == sorted(f"{n}.jsonl" for n in reports.SCHEMAS)
    excluded = reports.read_report(ds, "excluded").to_pylist()
    assert excluded == [
        {
            "id": "tiny_train/rotated_eval",
            "source": "tiny_train",
            "split": "training",
            "eval_ids": ["tiny_eval/evaluation/e1"],
            "level": "symmetric",
            "similarity": 1.0,
            "eval_sources": ["tiny_eval"],
        }
    ]
    q = reports.scan_report(ds, "quarantine").collect()
    assert q["reason"].to_list() == ["non_rectangular"] and q["path"].to_list() == ["tasks/ragged.json"]


def test_no_shards_match_names_what_exists(tiny_home):
    r = runner.invoke(app, ["stats", "-d", str(tiny_home / DEFAULT_DATA), "-s", "nope"])
    assert r.exit_code == 0  # stats of nothing is an empty table, not an error
    from arcforge.errors import ShardError
    from arcforge.shards import iter_batches

    with pytest.raises(ShardError) as e:
        next(iter_batches(tiny_home / DEFAULT_DATA, splits=["validation"]))
    assert "splits=['validation']" in e.value.message
    assert e.value.hint == "it has sources: tiny_eval, tiny_train, tiny_unknown; splits: evaluation, training"


def _show_on_a_tty(ds: Path, **env) -> str:
    """Run `arcforge show` with stdout on a pseudo-terminal; what the terminal received."""
    leader, follower = pty.openpty()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120", "TERM": "xterm-256color", **env}
    full_env.pop("NO_COLOR", None) if "NO_COLOR" not in env else None
    p = subprocess.Popen(
        [sys.executable, "-m", "arcforge", "show", "tiny_eval/evaluation/e0", "-d", str(ds)],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=full_env,
        cwd=ROOT,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    p.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_show_writes_colors_only_to_a_color_terminal(tiny_home, tmp_path):
    ds = tiny_home / DEFAULT_DATA
    assert "\x1b[48;2;" in _show_on_a_tty(ds)
    for env in ({"NO_COLOR": "1"}, {"TERM": "dumb"}):
        text = _show_on_a_tty(ds, **env)
        assert "\x1b[" not in text and "train[0]" in text, env
    piped = subprocess.run(
        [sys.executable, "-m", "arcforge", "show", "tiny_eval/evaluation/e0", "-d", str(ds)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert piped.returncode == 0 and "\x1b[" not in piped.stdout
    row = read_table(ds, sources=["tiny_eval"], splits=["evaluation"]).to_pylist()[0]
    first_row = " ".join(str(c) for c in row["train"][0]["input"][0])
    assert first_row in piped.stdout  # the grid as digits


@pytest.mark.parametrize("where", ["/proc/arcforge-ds", "FILE/sub"])
def test_filesystem_errors_are_one_clear_line(where, tmp_path, tiny_home, monkeypatch):
    monkeypatch.setenv("ARCFORGE_HOME", str(tiny_home / "home"))
    if where.startswith("FILE"):
        (tmp_path / "FILE").write_text("a file")
        where = str(tmp_path / where)
    r = runner.invoke(app, ["build", "-s", "synthetic", "--synthetic-tasks", "8", "-o", where])
    assert r.exit_code == 1
    errors = [line for line in r.output.splitlines() if line.startswith("Error")]  # (progress lines aside)
    assert len(errors) == 1 and errors[0].startswith(f"Error: --out {where}:")
    assert "internal error" not in r.output and "Traceback" not in r.output


def test_without_a_terminal_build_and_fetch_log_plain_lines(tiny, tmp_path):
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ARCFORGE_HOME": str(tmp_path / "home"),
        "ARCFORGE_MANIFESTS": str(tiny.manifests_dir),
        "ARCFORGE_LOG_SECONDS": "0.2",
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "arcforge", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=300,
        )

    fetch = run("fetch", "--all", "--mirror", str(tiny.mirror), "--json")
    assert fetch.returncode == 0 and json.loads(fetch.stdout)["ok"]  # stdout stays pure JSON
    assert "done" in fetch.stderr and "\x1b[" not in fetch.stderr
    build = run("build", "--exclude-eval", "-s", "tiny_eval", "-s", "synthetic", "--synthetic-tasks", "400")
    assert build.returncode == 0, build.stderr
    lines = [line for line in build.stderr.splitlines() if "elapsed" in line]
    assert len(lines) >= 3 and any(line.endswith("done") for line in lines)  # start, ticks, end
    assert "\x1b[" not in build.stderr and "━" not in build.stderr  # no progress bar drawing


COMMANDS = (
    "fetch",
    "sources",
    "build",
    "stats",
    "show",
    "overlap",
    "train",
    "eval",
    "export",
    "publish",
    "demo",
    "env",
)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_has_an_example_and_flags_take_no_bool_metavar(command):
    res = CliRunner().invoke(app, [command, "--help"], terminal_width=200)
    assert res.exit_code == 0, res.output
    assert "Example" in res.output or "example" in res.output, f"{command} --help shows no example"
    rows = [line for line in res.output.splitlines() if "<bool>" in line]
    assert all("--help" in line for line in rows), rows  # typer's own --help alone keeps its type column


def test_the_root_help_lists_every_command_and_version_is_a_plain_flag():
    res = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert res.exit_code == 0
    assert all(f" {c} " in res.output for c in COMMANDS)
    assert not [line for line in res.output.splitlines() if "<bool>" in line and "--help" not in line]
