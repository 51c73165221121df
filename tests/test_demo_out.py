"""The demo writes only where it may: a new or empty --out, or an earlier demo's, where it replaces only
what it wrote (``/`` and a folder of the user's own files are refused before anything is written), and
its options are bounded (``--tasks 0`` is not "the default"). ``train --overwrite`` keeps the user's files
inside a run's checkpoints/ and tb/ too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.demo.out import DemoError
from arcforge.demo.run import DemoConfig
from arcforge.train.loop import train
from tests import train_fixtures
from tests.test_train_faults import _cfgs

arc_shards = train_fixtures.arc_shards
runner = CliRunner()


def _demo(out: Path, mirror: Path, *extra: str):
    return runner.invoke(
        app,
        [
            "demo",
            "--out",
            str(out),
            "--steps",
            "2",
            "--tasks",
            "16",
            "--eval-tasks",
            "2",
            "--families",
            "flip",
            "--votes",
            "1",
            "--ttt-steps",
            "0",
            "--threads",
            "1",
            "--mirror",
            str(mirror),
            "--json",
            *extra,
        ],
    )


@pytest.fixture()
def empty_mirror(tmp_path) -> Path:
    m = tmp_path / "mirror"
    m.mkdir()
    return m


def test_demo_out_root_is_refused_before_anything_is_written(arcforge_home, empty_mirror):
    before = {p.name for p in Path("/").iterdir()}
    r = _demo(Path("/"), empty_mirror)
    assert r.exit_code == 1 and "Error: /: holds files the demo did not write" in r.output, r.output
    assert {p.name for p in Path("/").iterdir()} == before  # no /data, /demo.json, /loss.png, /run files
    assert "Traceback" not in r.output


def test_demo_never_touches_the_users_own_files(tmp_path, arcforge_home, empty_mirror):
    mine = tmp_path / "mydir"
    files = {
        "loss.png": b"my plot",
        "demo.json": b'{"mine": 1}',
        "run/metrics.jsonl": b'{"step": 1}\n',
        "run/checkpoints/important.txt": b"keep",
        "run/tb/events.mine": b"keep too",
    }
    for rel, data in files.items():
        (mine / rel).parent.mkdir(parents=True, exist_ok=True)
        (mine / rel).write_bytes(data)
    r = _demo(mine, empty_mirror)
    assert r.exit_code == 1 and "holds files the demo did not write" in r.output, r.output
    assert {rel: (mine / rel).read_bytes() for rel in files} == files
    assert sorted(p.name for p in mine.iterdir()) == ["demo.json", "loss.png", "run"]


def test_a_second_demo_replaces_its_own_outputs_and_keeps_what_the_user_added(
    tmp_path, arcforge_home, empty_mirror
):
    out = tmp_path / "demo"
    assert _demo(out, empty_mirror).exit_code == 0
    first = json.loads((out / "demo.json").read_text())
    added = {"notes.txt": b"mine", "run/checkpoints/important.txt": b"keep", "run/tb/events.mine": b"keep"}
    for rel, data in added.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    r = _demo(out, empty_mirror)
    assert r.exit_code == 0, r.output
    assert {rel: (out / rel).read_bytes() for rel in added} == added
    again = json.loads((out / "demo.json").read_text())
    assert again["per_family"] == first["per_family"]  # the same seed: the same scores
    # a user's own file where the demo writes one is never replaced, even in an earlier demo's folder
    (out / "run" / "latest").unlink()
    (out / "run" / "run.toml").unlink()
    r = _demo(out, empty_mirror)
    assert r.exit_code == 1 and "run/ (not a training run)" in r.output, r.output


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--tasks", "0"),
        ("--steps", "0"),
        ("--eval-tasks", "0"),
        ("--votes", "100000"),
        ("--threads", "100000"),
    ],
)
def test_demo_options_out_of_range_are_one_line_and_quick(
    tmp_path, arcforge_home, empty_mirror, option, value
):
    r = _demo(tmp_path / "demo", empty_mirror, option, value)
    assert r.exit_code == 1 and f"{option} {value}" in r.output, r.output
    assert "Traceback" not in r.output and not (tmp_path / "demo").exists()


def test_demo_config_checks_its_fields():
    with pytest.raises(DemoError, match="--tasks 0: must be an integer from 1"):
        DemoConfig(tasks=0)
    with pytest.raises(DemoError, match="lr"):
        DemoConfig(lr=float("inf"))


def test_train_overwrite_keeps_the_users_files_inside_checkpoints_and_tb(arc_shards, tmp_path):
    run = tmp_path / "run"
    train(*_cfgs(arc_shards, run, max_steps=1, tensorboard=True))
    assert any(p.name.startswith("events.out.tfevents.") for p in (run / "tb").iterdir())
    (run / "checkpoints" / "important.txt").write_text("keep")
    (run / "tb" / "events.mine").write_text("keep too")
    train(*_cfgs(arc_shards, run, max_steps=1, seed=1), overwrite=True)
    assert (run / "checkpoints" / "important.txt").read_text() == "keep"
    assert (run / "tb" / "events.mine").read_text() == "keep too"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["important.txt", "step-000001"]
