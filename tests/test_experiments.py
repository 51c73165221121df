"""Fast variants of the issue-7 experiments: the Grokfast filter changes training (deterministically), the
grid-task generator is right, and both CLI commands run end to end on tiny settings."""

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.experiments.grokfast_modarith import GrokRun, P, make_data, run_one
from arcforge.experiments.plot import Panel, draw_panels
from arcforge.experiments.rope_extension import (
    FAM0,
    IN,
    NL,
    OUT,
    RECOLOR,
    make_batch,
    make_example,
    positions_for,
)
from arcforge.train.grokfast import GrokfastConfig

runner = CliRunner()


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny models: one intra-op thread is fastest and avoids oversubscribing a shared CPU
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _small(name, gf=None, wd=0.0):
    return GrokRun(name, gf or GrokfastConfig(), weight_decay=wd, d_model=32, batch_size=64)


def test_modular_data_is_the_papers_split():
    xtr, ytr, xva, yva = make_data(seed=0)
    assert len(xtr) == len(xva) == P * (P - 1) // 2  # 9312 equations, 50/50
    both = torch.cat([xtr, xva])
    assert len({tuple(r) for r in both.tolist()}) == P * (P - 1)
    assert bool((both[:, 2] >= 1).all()) and bool((both[:, 0] < P).all())
    assert torch.equal(torch.cat([ytr, yva]), (both[:, 0] * both[:, 2]) % P)


def test_grokfast_filter_changes_training_deterministically():
    base = run_one(_small("baseline"), steps=20, seed=3, eval_every=10)
    again = run_one(_small("baseline"), steps=20, seed=3, eval_every=10)
    ema = run_one(_small("ema", GrokfastConfig("ema", alpha=0.98, lamb=2.0)), steps=20, seed=3, eval_every=10)
    losses = [[c["train_loss"] for c in r["curve"]] for r in (base, again, ema)]
    assert losses[0] == losses[1]  # same seed -> identical run
    assert losses[0] != losses[2]  # the filter changed the updates
    assert [c["step"] for c in ema["curve"]] == [10, 20]
    assert all(0.0 <= c["val_acc"] <= 1.0 for c in ema["curve"])


def test_grid_example_layout():
    gen = torch.Generator().manual_seed(0)
    toks, pos, out_idx = make_example(2, 3, 1, gen)  # recolor
    assert len(toks) == 3 + 2 * 2 * 4 and toks[0] == FAM0 + 1 and toks[1] == IN and toks[out_idx] == OUT
    inp, out = toks[2:out_idx].view(2, 4), toks[out_idx + 1:].view(2, 4)
    assert bool((inp[:, 3] == NL).all()) and bool((out[:, 3] == NL).all())
    assert torch.equal(out[:, :3], RECOLOR[inp[:, :3]])
    # (row+1, col+1) per grid cell, (row+1, w+1) per row end, markers at (0, 0); index = token index
    assert pos[2].tolist() == [2, 1, 1] and pos[5].tolist() == [5, 1, 4] and pos[out_idx].tolist()[1:] == [0, 0]
    assert pos[-1].tolist() == [len(toks) - 1, 2, 4]
    b = make_batch(4, (2, 3), gen)
    assert positions_for(b, "1d").shape == b["tokens"].shape
    assert positions_for(b, "2d").shape[-1] == 2 and positions_for(b, "2d+1d").shape[-1] == 3
    # the loss mask marks exactly the positions that predict an output token
    assert int(b["mask"].sum()) == sum(int((b["grid"][i] == 1).sum()) - 1 for i in range(4))


def test_rope_cli_runs_tiny(tmp_path):
    res = runner.invoke(app, ["experiment", "rope", "--tiny", "--modes", "1d,2d", "--out", str(tmp_path),
                              "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    report = json.loads((tmp_path / "rope_extension.json").read_text())
    assert report["results"] == out["results"]
    trained = {(r["mode"], r["bucket"], r["scaling"]) for r in report["results"] if r["stage"] == "trained"}
    assert len(trained) == 2 * 2 * 5  # modes x buckets x methods
    assert any(r["stage"].startswith("finetuned") for r in report["results"])
    assert all(0 <= r["exact"] <= 1 and r["loss"] > 0 for r in report["results"])
    assert Image.open(tmp_path / "rope_extension.png").size[0] > 0


def test_rope_cli_rejects_unknown_mode(tmp_path):
    res = runner.invoke(app, ["experiment", "rope", "--tiny", "--modes", "3d", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "unknown --modes" in res.output


def test_grokfast_cli_runs_a_few_steps(tmp_path):
    res = runner.invoke(app, ["experiment", "grokfast", "--steps", "2", "--eval-every", "1", "--seeds", "0",
                              "--runs", "grokfast_ma", "--out", str(tmp_path), "--threads", "1", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["summary"]
    assert [s["name"] for s in summary] == ["grokfast_ma"]
    report = json.loads((tmp_path / "grokfast_modarith.json").read_text())
    assert report["runs"][0]["config"]["grokfast"]["window"] == 100
    assert [c["step"] for c in report["runs"][0]["curve"]] == [1, 2]
    res = runner.invoke(app, ["experiment", "grokfast", "--runs", "sgd", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "unknown --runs" in res.output


def test_plot_draws_series(tmp_path):
    p = Panel("t", "x", "y", series={"a": ([0, 1, 2], [0.0, 0.5, 1.0])}, y_range=(0, 1))
    img = Image.open(draw_panels([p, p], tmp_path / "p.png", width=300, height=200)).convert("RGB")
    assert img.size == (600, 200)
    assert (31, 119, 180) in {img.getpixel((x, y)) for x in range(300) for y in range(200)}
