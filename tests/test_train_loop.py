"""The loop: exact resume after Ctrl-C, 2-process DDP (gloo) == 1 process, eval and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from typer.testing import CliRunner

from arcforge.cli.app import app
from arcforge.shards import read_tasks
from arcforge.train.config import AugmentConfig, DataConfig, TrainConfig
from arcforge.train.data import iter_rows, to_torch
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.loop import Trainer, train
from arcforge.train.pack import stack
from arcforge.train.runner import load_model
from tests import train_fixtures

arc_shards = train_fixtures.arc_shards  # the shared fixture

TINY = {"d_model": 32, "n_layers": 2, "n_heads": 2}


def _cfgs(root: Path, out: Path, **train_kw):
    from arcforge.train.config import ModelConfig

    data = DataConfig(root=str(root), seq_len=512, batch_size=2, chunk_tasks=16, seed=5)
    train_kw = {"threads": 1, "amp": "off", **train_kw}  # exact comparisons: no machine-dependent choice
    tcfg = TrainConfig(
        out=str(out),
        max_steps=6,
        warmup_steps=2,
        log_every=1,
        ckpt_every=0,
        tensorboard=False,
        eval_tasks=0,
        **train_kw,
    )
    return ModelConfig(**TINY, max_seq_len=512), data, tcfg


def test_resume_after_interrupt_reproduces_the_loss_curve(arc_shards, tmp_path):
    from arcforge.train.config import GrokfastConfig

    gf = GrokfastConfig(kind="ema", alpha=0.9, lamb=1.0)
    m, d, t = _cfgs(arc_shards, tmp_path / "a", grokfast=gf)
    full = [r["loss"] for r in train(m, d, t)["history"]]

    m, d, t = _cfgs(arc_shards, tmp_path / "b", grokfast=gf)

    def interrupt(rec):
        if rec.get("step") == 2 and "loss" in rec:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(m, d, t, on_log=interrupt)  # Ctrl-C after step 2 saves a checkpoint
    assert (tmp_path / "b" / "latest").read_text().strip() == "step-000002"
    rest = train(m, d, t, resume=True)["history"]
    assert [r["step"] for r in rest] == [3, 4, 5, 6]
    assert [r["loss"] for r in rest] == full[2:]  # exact on CPU
    lines = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == list(range(1, 7))


def _fixed_batches(root: Path, steps: int, rows_per_step: int) -> list[list[dict]]:
    cfg = DataConfig(
        root=str(root), seq_len=512, batch_size=1, chunk_tasks=16, seed=0, augment=AugmentConfig.none()
    )
    it = iter_rows(cfg, 0, 1)
    return [[next(it)[0] for _ in range(rows_per_step)] for _ in range(steps)]


def _ddp_worker(rank: int, world: int, init: str, root: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=world)
    try:
        from arcforge.train.config import ModelConfig

        tr = Trainer(
            ModelConfig(**TINY, max_seq_len=512),
            TrainConfig(max_steps=4, warmup_steps=1, seed=11, amp="off"),
            device=torch.device("cpu"),
        )
        for rows in _fixed_batches(Path(root), 2, 4):
            tr.step([to_torch(stack(rows[rank::world]))])
        if rank == 0:
            torch.save(tr.model.state_dict(), out)
        dist.barrier()  # no rank tears gloo down while its peer is still working (that aborts the peer)
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_equals_one_process(arc_shards, tmp_path):
    from arcforge.train.config import ModelConfig

    init = f"file://{tmp_path / 'rdzv'}"
    mp.spawn(_ddp_worker, args=(2, init, str(arc_shards), str(tmp_path / "ddp.pt")), nprocs=2, join=True)
    ddp = torch.load(tmp_path / "ddp.pt")
    single = Trainer(
        ModelConfig(**TINY, max_seq_len=512),
        TrainConfig(max_steps=4, warmup_steps=1, seed=11, amp="off"),
        device=torch.device("cpu"),
    )
    accum = Trainer(
        ModelConfig(**TINY, max_seq_len=512),
        TrainConfig(max_steps=4, warmup_steps=1, seed=11, amp="off"),
        device=torch.device("cpu"),
    )
    init_state = {k: v.clone() for k, v in single.model.state_dict().items()}
    for rows in _fixed_batches(arc_shards, 2, 4):
        single.step([to_torch(stack(rows))])
        accum.step([to_torch(stack(rows[:1])), to_torch(stack(rows[1:]))])  # uneven micro-batches
    moved = False
    for k, v in single.model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(accum.model.state_dict()[k], v, rtol=1e-4, atol=1e-5)
        moved |= not torch.equal(v, init_state[k])
    assert moved


def test_eval_metrics_and_submission_format(arc_shards, tmp_path):
    m, d, t = _cfgs(arc_shards, tmp_path / "run", eval_every=0)
    t.max_steps = 2
    train(m, d, t)
    model, config = load_model(tmp_path / "run")
    assert config["model"]["d_model"] == 32 and config["step"] == 2
    tasks = list(read_tasks(arc_shards, splits=["evaluation"]))[:2]
    res = evaluate_tasks(model, tasks, seq_len=512, device=torch.device("cpu"), votes=2)
    m = res.metrics
    assert m["scored"] == sum(len(x.test) for x in tasks) and m["votes"] == 2
    assert 0 <= m["exact_match"] <= m["pass@2"] <= 1 and 0 <= m["token_accuracy"] <= 1
    assert set(res.submission) == {x.id.rsplit("/", 1)[-1] for x in tasks}
    for x in tasks:
        atts = res.submission[x.id.rsplit("/", 1)[-1]]
        assert len(atts) == len(x.test)
        for a in atts:
            assert set(a) == {"attempt_1", "attempt_2"}
            for g in a.values():
                arr = np.asarray(g)
                assert arr.ndim == 2 and arr.min() >= 0 and arr.max() <= 9


def test_cli_train_then_eval(arc_shards, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli"
    r = runner.invoke(
        app,
        [
            "train",
            "--data",
            str(arc_shards),
            "--out",
            str(out),
            "--max-steps",
            "4",
            "--amp",
            "off",
            *train_fixtures.TINY_MODEL_CLI,
            "--eval-tasks",
            "1",
            "--log-every",
            "2",
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["steps"] == 4 and rep["checkpoint"].endswith("step-000004") and rep["loss_first"] > 0
    assert rep["eval"]["eval/scored"] >= 1
    assert (out / "metrics.jsonl").is_file() and (out / "tb").is_dir()
    sub = tmp_path / "sub.json"
    r = runner.invoke(
        app,
        [
            "eval",
            "--checkpoint",
            str(out),
            "--data",
            str(arc_shards),
            "--limit",
            "2",
            "--votes",
            "2",
            "--submission",
            str(sub),
            "--json",
        ],
    )
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["tasks"] == 2 and "exact_match" in rep["metrics"]
    assert len(json.loads(sub.read_text())) == 2
    r = runner.invoke(app, ["eval", "--checkpoint", str(tmp_path / "nope"), "--data", str(arc_shards)])
    assert r.exit_code == 1 and "no checkpoint found" in r.output


def test_cpu_bf16_autocast_trains_close_to_fp32(arc_shards, tmp_path):
    from arcforge.errors import TrainError
    from arcforge.train.device import autocast_for

    fp32 = train(*_cfgs(arc_shards, tmp_path / "fp32"))["history"]
    bf16 = train(*_cfgs(arc_shards, tmp_path / "bf16", amp="bf16"))["history"]
    a, b = [r["loss"] for r in fp32], [r["loss"] for r in bf16]
    assert all(np.isfinite(b)) and a != b  # autocast really ran (bf16 rounding changes the losses) ...
    assert np.allclose(a, b, rtol=0.05)  # ... and trains the same model to within bf16 precision
    cfg = json.loads((tmp_path / "bf16" / "checkpoints" / "step-000006" / "config.json").read_text())
    assert cfg["train"]["amp"] == "bf16"
    with torch.no_grad(), autocast_for(torch.device("cpu"), "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with autocast_for(torch.device("cpu"), "off"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with pytest.raises(TrainError, match="unknown amp mode 'fp8'"):
        autocast_for(torch.device("cpu"), "fp8")
