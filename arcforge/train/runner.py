"""Library side of ``arcforge eval``: load a checkpoint, evaluate a split, write submission.json.

The submission is written next to the run, never inside ``checkpoints/step-N/`` (checkpoint rotation
deletes those folders): ``RUN/eval/<split>/step-N/submission.json`` unless a path is given.
"""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

import torch

from arcforge.progress import Progress
from arcforge.shards import list_shards, read_tasks
from arcforge.train import checkpoint as ckpt
from arcforge.train.config import EvalConfig
from arcforge.train.device import choose_threads, pick_device
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.model import ArcTransformer, ModelConfig


def load_model(path: Path, device: str = "cpu") -> tuple[ArcTransformer, dict]:
    """The model of a checkpoint (run folder: its newest intact checkpoint) in eval mode, and its config
    (with ``checkpoint``: the folder used, and ``skipped``: damaged newer checkpoints)."""
    got = ckpt.load_latest_intact(path, with_state=False)
    model = ArcTransformer(ModelConfig.from_checkpoint(got.config["model"]))
    model.load_state_dict(got.weights)
    config = {**got.config, "checkpoint": str(got.path), "skipped": got.skipped}
    return model.to(pick_device(device)).eval(), config


def default_submission(checkpoint_dir: Path, split: str) -> Path:
    """``RUN/eval/<split>/<step-N>/submission.json`` for ``RUN/checkpoints/step-N`` (else beside it)."""
    ck = Path(checkpoint_dir)
    run = ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent
    return run / "eval" / split / ck.name / "submission.json"


def eval_plan(data: Path, cfg: EvalConfig) -> dict:
    """What an eval will do, before it starts: tasks, and decodes (test inputs x votes, estimated)."""
    n = sum(s.rows for s in list_shards(data, cfg.sources, [cfg.split]))
    tasks = min(n, cfg.limit) if cfg.limit else n
    return {"tasks": tasks, "votes": cfg.votes, "decodes_estimate": tasks * cfg.votes,
            "ttt_steps": cfg.ttt.steps}


def run_eval(checkpoint: Path, data: Path, cfg: EvalConfig | None = None, *, submission: Path | None = None,
             progress: Progress | None = None) -> dict:
    """Evaluate ``checkpoint`` on ``cfg.split`` of ``data``; returns metrics and the submission path."""
    cfg = cfg or EvalConfig()
    threads_before = torch.get_num_threads()
    model, config = load_model(checkpoint, cfg.device)
    device = next(model.parameters()).device
    if device.type == "cpu":
        torch.set_num_threads(choose_threads(cfg.threads))
    try:
        if cfg.rope_scaling:
            model.set_rope_scaling(cfg.rope_scaling.value, cfg.rope_factor)
        plan = eval_plan(data, cfg)
        tasks = read_tasks(data, sources=cfg.sources, splits=[cfg.split])
        if cfg.limit:
            tasks = islice(tasks, cfg.limit)
        res = evaluate_tasks(model, tasks, seq_len=cfg.seq_len or config["data"]["seq_len"], device=device,
                             progress=progress, total=plan["tasks"], cfg=cfg)
    finally:
        torch.set_num_threads(threads_before)
    ck = Path(config["checkpoint"])
    out = Path(submission) if submission else default_submission(ck, cfg.split)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(res.submission))
    os.replace(tmp, out)
    return {"metrics": res.metrics, "tasks": len(res.submission), "submission": str(out),
            "checkpoint": str(ck), "step": config.get("step"), "per_task": res.per_task,
            "skipped_checkpoints": config["skipped"], "eval_config": cfg.to_dict()}
