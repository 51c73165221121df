"""Every option of train, eval and the experiments is bounded by a validated range (some from the machine: CPU
threads and loader workers), and a user's mistake is one clear line before any work starts: too many
votes, workers or threads, a device this torch lacks, a Parquet file as --config, an --eval-split or
--split that does not exist, a --seq-len no prompt fits, a --submission that is not a file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.train.device import machine_cpus
from arcforge.train.loop import train
from tests import train_fixtures
from tests.test_train_faults import TINY, _cfgs

arc_shards = train_fixtures.arc_shards
runner = CliRunner()


def _one_line(r, code: int, *want: str) -> None:
    assert r.exit_code == code, r.output
    flat = " ".join(r.output.replace("│", " ").split())  # typer's usage box wraps its lines
    assert all(w in flat for w in want), r.output
    assert "Traceback" not in r.output and "internal error" not in r.output


@pytest.fixture(scope="module")
def run(arc_shards, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("bounds") / "run"
    train(*_cfgs(arc_shards, run, max_steps=1))
    return run


@pytest.mark.parametrize("option", ["--workers", "--threads"])
def test_train_workers_and_threads_past_the_machines_cpus(arc_shards, tmp_path, option):
    n = str(max(1000, 10 * machine_cpus()))
    r = runner.invoke(app, ["train", "-d", str(arc_shards), "--out", str(tmp_path / "r"), *TINY, option, n])
    _one_line(r, 1, f"Error: {option} {n}: this machine has {machine_cpus()} CPU")
    assert not (tmp_path / "r").exists()


def test_train_device_mps_without_it_and_a_parquet_config(arc_shards, tmp_path):
    import torch

    if not torch.backends.mps.is_available():
        r = runner.invoke(
            app, ["train", "-d", str(arc_shards), "--out", str(tmp_path / "r"), *TINY, "--device", "mps"]
        )
        _one_line(r, 1, "Error: --device mps: this torch", "no usable MPS")
    shard = next(arc_shards.rglob("*.parquet"))
    r = runner.invoke(
        app, ["train", "-d", str(arc_shards), "--out", str(tmp_path / "r"), "--config", str(shard)]
    )
    _one_line(r, 2, "binary content")


def test_train_eval_split_that_does_not_exist(arc_shards, tmp_path):
    r = runner.invoke(
        app,
        [
            "train",
            "-d",
            str(arc_shards),
            "--out",
            str(tmp_path / "r"),
            *TINY[:-5],
            "--amp",
            "off",
            "--threads",
            "1",
            "--eval-split",
            "valid",
            "--eval-tasks",
            "2",
        ],
    )
    _one_line(r, 1, "Error: --eval-split valid:", "has no such split", "evaluation, training")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_eval_votes_seq_len_and_split_out_of_range(arc_shards, run):
    base = ["eval", "-c", str(run), "-d", str(arc_shards), "--threads", "1"]
    _one_line(runner.invoke(app, [*base, "--votes", "100000"]), 2, "from 1 to 64")
    _one_line(runner.invoke(app, [*base, "--seq-len", "10"]), 2, "at least 16 tokens")
    _one_line(
        runner.invoke(app, [*base, "--split", "nosuch"]),
        1,
        "no tasks of split 'nosuch'",
        "evaluation, training",
    )
    n = str(10 * machine_cpus())
    _one_line(runner.invoke(app, [*base, "--ttt-workers", n, "--ttt-steps", "1"]), 1, f"--ttt-workers {n}")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("target", ["/dev/full", "/", "folder"])
def test_eval_submission_that_is_not_a_file_is_refused_and_left_alone(arc_shards, run, tmp_path, target):
    path = tmp_path if target == "folder" else Path(target)
    before = os.stat(path)
    r = runner.invoke(
        app,
        [
            "eval",
            "-c",
            str(run),
            "-d",
            str(arc_shards),
            "--limit",
            "1",
            "--votes",
            "1",
            "--threads",
            "1",
            "--submission",
            str(path),
        ],
    )
    _one_line(r, 1, f"Error: --submission {path}:", "written in its place")
    after = os.stat(path)
    assert stat.S_IFMT(after.st_mode) == stat.S_IFMT(before.st_mode) and after.st_ino == before.st_ino


def test_experiment_options_are_bounded():
    from experiments.cli import experiment_app

    _one_line(runner.invoke(experiment_app, ["grokfast", "--steps", "0"]), 2, "--steps")
    _one_line(runner.invoke(experiment_app, ["grokfast", "--seeds", str(2**70)]), 1, "2^63-1")
    _one_line(runner.invoke(experiment_app, ["rope", "--steps", "0", "--tiny"]), 2, "--steps")


def test_a_grokfast_window_past_the_memory_is_refused_up_front(arc_shards, tmp_path):
    r = runner.invoke(
        app,
        [
            "train",
            "-d",
            str(arc_shards),
            "--out",
            str(tmp_path / "r"),
            *TINY,
            "--grokfast",
            "ma",
            "--grokfast-window",
            str(10**9),
        ],
    )
    _one_line(r, 1, f"Error: --grokfast-window {10**9} keeps", "GiB")
    assert not (tmp_path / "r" / "checkpoints").exists()
