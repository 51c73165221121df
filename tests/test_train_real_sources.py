"""Every shipped source's real tasks train and evaluate: per source and split, its first tasks and its
largest grids (1D-ARC's rows of up to 93 cells, tama's large grids) go through a few training steps and
an evaluation with a tiny model. A task with a grid past the trainer's side is left out and named, up
front, never a crash."""

from __future__ import annotations

from pathlib import Path

import torch

from arcforge.build import shard_writer
from arcforge.shards import list_shards, read_tasks
from arcforge.task import Task, tasks_to_table
from arcforge.train.config import DataConfig, EvalConfig, ModelConfig, TrainConfig
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.loop import train
from arcforge.train.runner import eval_plan, load_model, run_eval
from arcforge.train.tokenize import MAX_GRID_SIDE, grid_too_large


def _pick(tasks: list[Task]) -> list[Task]:
    """The first task and the one with the largest grids."""
    return list({t.id: t for t in [tasks[0], max(tasks, key=lambda t: t.max_side())]}.values())


def test_every_shipped_source_trains_and_evaluates_its_real_tasks(full_build, tmp_path, one_thread):
    built, _ = full_build
    picked: list[Task] = []
    groups = sorted({(s.source, s.split) for s in list_shards(built)})
    for source, split in groups:
        picked += _pick(list(read_tasks(built, sources=[source], splits=[split])))
    big = {t.id for t in picked if grid_too_large(t)}
    assert {t.source for t in picked if t.id in big} >= {"arc_1d", "neoneye_tama"}  # the faults' grids
    assert max(t.max_side() for t in picked) > 64  # past the frame tables' side
    root = tmp_path / "data"
    shard_writer.write_shards(tasks_to_table(picked), root)

    run = tmp_path / "run"
    res = train(
        ModelConfig(d_model=32, n_layers=1, n_heads=2),
        DataConfig(root=str(root), splits=None, seq_len=2048, batch_size=2, chunk_tasks=len(picked)),
        TrainConfig(
            out=str(run),
            max_steps=3,
            warmup_steps=1,
            eval_tasks=0,
            threads=1,
            amp="off",
            tensorboard=False,
            ckpt_every=0,
        ),
    )
    assert res["steps"] == 3 and res["left_out"] >= len(big) > 0  # every task of the chunk was met

    model, _ = load_model(run)
    cfg = EvalConfig(votes=2, max_new=12, amp="off", threads=1)
    for source, split in groups:
        ids = {t.id for t in picked if (t.source, t.split) == (source, split)}
        got = run_eval(run, root, EvalConfig(**{**cfg.to_dict(), "split": split, "sources": [source]}))
        assert {x["task"] for x in got["left_out"]} == ids & big, (source, split)
        assert {r["task"] for r in got["per_task"]} == ids - big, (source, split)
        plan = eval_plan(root, EvalConfig(split=split, sources=[source]))
        assert [x["task"] for x in plan["left_out"]] == [x["task"] for x in got["left_out"]]  # said up front
    # test-time training on the real tasks too, and the reason names the grid
    some = [t for t in picked if t.id in big][:3] + [t for t in picked if t.id not in big][:3]
    res = evaluate_tasks(
        model,
        some,
        seq_len=2048,
        device=torch.device("cpu"),
        cfg=EvalConfig(votes=1, max_new=12, ttt={"steps": 1, "batch_size": 2}),
    )
    assert len(res.left_out) == 3 == res.metrics["left_out"] and len(res.per_task) == 3
    assert all(f"past the trainer's {MAX_GRID_SIDE}-cell side" in x["reason"] for x in res.left_out)
    assert Path(got["submission"]).is_file()
