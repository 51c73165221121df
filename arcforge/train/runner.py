"""Library side of ``arcforge eval``: load a checkpoint, evaluate a split, write submission.json."""

from __future__ import annotations

import json
import os
from itertools import islice
from pathlib import Path

from arcforge.progress import Progress
from arcforge.shards import list_shards, read_tasks
from arcforge.train import checkpoint as ckpt
from arcforge.train.evaluate import EvalConfig, evaluate_tasks
from arcforge.train.loop import pick_device
from arcforge.train.model import ArcTransformer, ModelConfig


def load_model(path: Path, device: str = "cpu") -> tuple[ArcTransformer, dict]:
    """The model of a checkpoint (run folder or checkpoint folder) in eval mode, and its config."""
    config, weights, _ = ckpt.load_checkpoint(path, with_state=False)
    model = ArcTransformer(ModelConfig.from_dict(config["model"]))
    model.load_state_dict(weights)
    return model.to(pick_device(device)).eval(), config


def run_eval(checkpoint: Path, data: Path, *, split: str = "evaluation", sources: list[str] | None = None,
             limit: int = 0, votes: int = 8, submission: Path | None = None, rope_scaling: str | None = None,
             rope_factor: float = 1.0, seq_len: int = 0, device: str = "auto",
             progress: Progress | None = None, eval_cfg: EvalConfig | None = None) -> dict:
    """Evaluate ``checkpoint`` on ``split`` of ``data``; returns metrics and the submission path.
    ``eval_cfg`` carries ranking, batching and test-time training (``votes`` here overrides its own)."""
    model, config = load_model(checkpoint, device)
    if rope_scaling:
        model.set_rope_scaling(rope_scaling, rope_factor)
    n = sum(s.rows for s in list_shards(data, sources, [split]))
    total = min(n, limit) if limit else n
    tasks = read_tasks(data, sources=sources, splits=[split])
    if limit:
        tasks = islice(tasks, limit)
    res = evaluate_tasks(model, tasks, seq_len=seq_len or config["data"]["seq_len"],
                         device=next(model.parameters()).device, votes=votes, progress=progress, total=total,
                         cfg=eval_cfg)
    ck = ckpt.resolve(checkpoint)
    out = Path(submission) if submission else ck / "submission.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(res.submission))
    os.replace(tmp, out)
    return {"metrics": res.metrics, "tasks": len(res.submission), "submission": str(out),
            "checkpoint": str(ck), "step": config.get("step"), "per_task": res.per_task,
            "eval_config": (eval_cfg or EvalConfig(votes=votes)).to_dict()}
