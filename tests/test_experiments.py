"""Fast variants of the paper-reproduction experiments: the Grokfast filter changes training
(deterministically), the grid-task generator is right, and both CLI commands run end to end on tiny
settings."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from arcforge.train.config import GrokfastConfig
from arcforge.train.model import ArcTransformer
from arcforge.train.rope import RopeConfig
from arcforge.train.tokenize import EOS, GRID_END, GRID_START, INPUT, OUTPUT, ROW, decode
from experiments.cli import experiment_app
from experiments.grokfast_modarith import GrokRun, P, make_data, run_one
from experiments.plot import Panel, draw_panels
from experiments.rope_extension import (
    RECOLOR,
    RopeStudy,
    example_tokens,
    extension_factor,
    make_example,
    model_config,
    sample_examples,
)

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_thread")


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
    kw = {"steps": 20, "seed": 3, "eval_every": 10, "keep_params": True}
    base = run_one(_small("baseline"), **kw)
    again = run_one(_small("baseline"), **kw)
    ema = run_one(_small("ema", GrokfastConfig("ema", alpha=0.98, lamb=2.0)), **kw)
    ma = run_one(_small("ma", GrokfastConfig("ma", window=5, lamb=5.0)), **kw)
    losses = [[c["train_loss"] for c in r["curve"]] for r in (base, again, ema, ma)]
    assert losses[0] == losses[1]  # same seed -> identical run
    assert all(torch.equal(base["params"][k], again["params"][k]) for k in base["params"])
    for filtered in (ema, ma):  # the filter changed the updates, hence the weights and the curve
        assert any(not torch.allclose(base["params"][k], filtered["params"][k]) for k in base["params"])
    assert losses[0] != losses[2] and losses[0] != losses[3]
    assert [c["step"] for c in ema["curve"]] == [10, 20]
    assert all(0.0 <= c["val_acc"] <= 1.0 for c in ema["curve"])


def test_grokfast_uses_the_trainers_model():
    from experiments.grokfast_modarith import model_config

    cfg = model_config(GrokRun("baseline"))
    assert (cfg.vocab_size, cfg.d_model, cfg.n_layers, cfg.n_heads, cfg.rope_mode) == (P + 2, 128, 2, 4, "1d")
    assert isinstance(ArcTransformer(cfg), torch.nn.Module)


def test_grokfast_init_option():
    trainer = run_one(_small("baseline"), steps=1, seed=0, eval_every=1, keep_params=True)["params"]
    run = _small("baseline")
    run.init = "torch_default"
    torch_init = run_one(run, steps=1, seed=0, eval_every=1, keep_params=True)["params"]
    # one Adam step at lr 1e-4 (warmup) barely moves the weights: the init scale is what shows
    assert float(trainer["embed.weight"].std()) < 0.1 < 0.5 < float(torch_init["embed.weight"].std())
    res = runner.invoke(experiment_app, ["grokfast", "--init", "xavier", "--out", "/nonexistent"])
    assert res.exit_code == 1 and "unknown --init" in res.output


def test_grid_example_uses_the_trainers_tokenizer():
    rng = np.random.default_rng(0)
    ex = make_example(2, 3, rng)
    assert len(ex) == 2 * 2 * 4 + 8  # 2 h (w + 1) + 8
    got = decode(ex.tokens)
    assert got["train"] == [] and np.array_equal(got["test"][1], RECOLOR[got["test"][0]])
    t = ex.tokens.tolist()
    o = t.index(OUTPUT)
    assert t[1:3] == [INPUT, GRID_START] and t[o + 1] == GRID_START and t[-2:] == [GRID_END, EOS]
    assert t[o + 2 : o + 6] == [*RECOLOR[got["test"][0][0]].tolist(), ROW]
    # targets: the output grid with its markers and EOS; positions (seq, row, col)
    assert ex.targets.tolist() == [False] * (o + 1) + [True] * (len(t) - o - 1)
    # (seq, row, col, h, w, pair): one pair, the test pair, index 0
    assert ex.positions[o + 2, :6].tolist() == [o + 2, 1, 1, 0, 0, 0]
    assert ex.positions[o + 5, :6].tolist() == [o + 5, 1, 4, 0, 0, 0]
    assert ex.positions[3, :6].tolist() == [3, 1, 1, 2, 3, 0]  # an input cell carries its grid size (2 x 3)
    assert example_tokens(15) == 488 and len(make_example(15, 15, rng)) == 488
    exs = sample_examples(1000, (2, 4), rng)
    assert sum(len(e) for e in exs) >= 1000 and all(max(decode(e.tokens)["test"][0].shape) <= 4 for e in exs)
    assert sorted(RECOLOR.tolist()) == list(range(10)) and not (np.arange(10) == RECOLOR).any()


def test_rope_study_model_and_factors():
    study = RopeStudy()
    for mode in ("1d", "2d", "2d+1d"):
        cfg = RopeConfig.from_model(model_config(study, mode))
        assert (cfg.original_max_len, cfg.original_max_side, cfg.axis_base) == (488, 17, 100.0)
    assert extension_factor(study, "1d", 30) == pytest.approx(1868 / 488)
    assert extension_factor(study, "2d", 30) == pytest.approx(32 / 17)
    assert extension_factor(study, "2d+1d", 30) == extension_factor(study, "1d", 30)
    assert extension_factor(study, "2d", 10) == 1.0


def test_rope_cli_runs_tiny(tmp_path):
    res = runner.invoke(
        experiment_app,
        ["rope", "--tiny", "--modes", "1d,2d", "--out", str(tmp_path), "--threads", "1", "--json"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    report = json.loads((tmp_path / "rope_extension.json").read_text())
    assert report["results"] == out["results"]
    trained = {(r["mode"], r["bucket"], r["scaling"]) for r in report["results"] if r["stage"] == "trained"}
    assert len(trained) == 2 * 2 * 5  # modes x buckets x methods
    ft = {(r["mode"], r["scaling"]) for r in report["results"] if r["stage"].startswith("finetuned")}
    assert ft == {("1d", s) for s in ("none", "linear", "ntk", "dynamic_ntk", "yarn")}
    assert all(0 <= r["exact"] <= 1 and 0 <= r["token_acc"] <= 1 and r["loss"] > 0 for r in report["results"])
    by = {(r["mode"], r["bucket"], r["scaling"]): r for r in report["results"] if r["stage"] == "trained"}
    # inside the training range every method is plain RoPE (factor 1), so the numbers agree
    assert by[("1d", "train", "none")]["loss"] == by[("1d", "train", "yarn")]["loss"]
    assert by[("1d", "4-5", "yarn")]["factor"] > 1
    assert report["model"]["2d"]["rope_mode"] == "2d" and report["model"]["1d"]["vocab_size"] == 18
    assert Image.open(tmp_path / "rope_extension.png").size[0] > 0


def test_rope_cli_rejects_unknown_mode(tmp_path):
    res = runner.invoke(experiment_app, ["rope", "--tiny", "--modes", "3d", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "unknown --modes" in res.output


def test_grokfast_cli_runs_a_few_steps(tmp_path):
    res = runner.invoke(
        experiment_app,
        [
            "grokfast",
            "--steps",
            "2",
            "--eval-every",
            "1",
            "--seeds",
            "0",
            "--runs",
            "grokfast_ma",
            "--out",
            str(tmp_path),
            "--threads",
            "1",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)["summary"]
    assert [s["name"] for s in summary] == ["grokfast_ma"]
    report = json.loads((tmp_path / "grokfast_modarith.json").read_text())
    assert report["runs"][0]["config"]["grokfast"]["window"] == 100
    assert [c["step"] for c in report["runs"][0]["curve"]] == [1, 2]
    res = runner.invoke(experiment_app, ["grokfast", "--runs", "sgd", "--out", str(tmp_path)])
    assert res.exit_code == 1 and "unknown --runs" in res.output


def test_plot_draws_series(tmp_path):
    p = Panel("t", "x", "y", series={"a": ([0, 1, 2], [0.0, 0.5, 1.0])}, y_range=(0, 1))
    img = Image.open(draw_panels([p, p], tmp_path / "p.png", width=300, height=200)).convert("RGB")
    assert img.size == (600, 200)
    assert (31, 119, 180) in {img.getpixel((x, y)) for x in range(300) for y in range(200)}
