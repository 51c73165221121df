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

from arcforge.errors import TrainError
from arcforge.progress import Progress
from arcforge.shards import list_shards, read_tasks
from arcforge.train import checkpoint as ckpt
from arcforge.train.config import EvalConfig, ModelConfig
from arcforge.train.device import check_cpus, choose_threads, pick_device
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.model import ArcTransformer, n_params
from arcforge.train.tokenize import grid_too_large


def load_model(path: Path, device: str = EvalConfig.device) -> tuple[ArcTransformer, dict]:
    """The model of a checkpoint (run folder: its newest intact checkpoint) in eval mode, and its config
    (with ``checkpoint``: the folder used, and ``skipped``: damaged newer checkpoints)."""
    got = ckpt.load_latest_intact(path, with_state=False)
    try:
        model_cfg = ModelConfig.from_checkpoint(got.config["model"])
        have = sum(v.numel() for v in got.weights.values())
        if n_params(model_cfg) > 2 * have + 4096:  # before the model is made: a garbage size could be huge
            raise TrainError(
                f"it describes a model of {n_params(model_cfg):,} parameters, {ckpt.WEIGHTS} holds {have:,}"
            )
        model = ArcTransformer(model_cfg)
    except TrainError as e:
        raise TrainError(f"{got.path / ckpt.CONFIG}: damaged checkpoint file ({e.message})") from None
    except (TypeError, ValueError):
        raise TrainError(
            f"{got.path / ckpt.CONFIG}: damaged checkpoint file (its [model] table is not a model config)"
        ) from None
    ckpt.fit_weights(model, got.weights, got.path)
    config = {**got.config, "checkpoint": str(got.path), "skipped": got.skipped}
    return model.to(pick_device(device)).eval(), config


def default_submission(checkpoint_dir: Path, split: str) -> Path:
    """``RUN/eval/<split>/<step-N>/submission.json`` for ``RUN/checkpoints/step-N`` (else beside it)."""
    ck = Path(checkpoint_dir)
    run = ck.parent.parent if ck.parent.name == "checkpoints" else ck.parent
    return run / "eval" / split / ck.name / "submission.json"


def eval_plan(data: Path, cfg: EvalConfig) -> dict:
    """What an eval will do, before it starts: tasks, and decodes (test inputs x votes, estimated)."""
    shards = list_shards(data, cfg.sources, [cfg.split])
    if not shards:
        raise TrainError(
            f"{data}: no tasks of split {cfg.split!r}"
            + (f" in source(s) {', '.join(cfg.sources)}" if cfg.sources else ""),
            hint=f"the splits there: {', '.join(_splits(data, cfg.sources)) or 'none'}",
        )
    n = sum(s.rows for s in shards)
    tasks = min(n, cfg.limit) if cfg.limit else n
    selected = read_tasks(data, sources=cfg.sources, splits=[cfg.split])
    left_out = [
        {"task": t.id, "reason": why}
        for t in islice(selected, tasks)
        if (why := grid_too_large(t)) is not None
    ]
    return {
        "tasks": tasks,
        "votes": cfg.votes,
        "decodes_estimate": (tasks - len(left_out)) * cfg.votes,
        "ttt_steps": cfg.ttt.steps,
        "left_out": left_out,
    }


def _splits(data: Path, sources: list[str] | None) -> list[str]:
    return sorted({s.split for s in list_shards(data, sources, None)})


def check_submission(out: Path) -> None:
    """Refuse, before an eval starts, a submission path that is not a file: a folder (``/``), a device
    (``/dev/full``), a pipe; its replacement would take its place."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        kind = "a folder" if out.is_dir() else "a symbolic link" if out.is_symlink() else "not a regular file"
        raise TrainError(
            f"--submission {out}: {kind}; a submission is a JSON file written in its place",
            hint="pass a file path, e.g. submission.json",
        )
    if out.name in ("", ".", ".."):
        raise TrainError(
            f"--submission {out}: not a file name", hint="pass a file path, e.g. submission.json"
        )


def write_submission(out: Path, submission: dict) -> None:
    """``submission.json`` written atomically (a temporary file beside it, then renamed into place)."""
    check_submission(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(submission))
        os.replace(tmp, out)
    except OSError as e:
        raise TrainError(
            f"--submission {out}: cannot write it ({e.strerror or e})",
            hint="pass a path in a writable folder",
        ) from None


def run_eval(
    checkpoint: Path,
    data: Path,
    cfg: EvalConfig | None = None,
    *,
    submission: Path | None = None,
    progress: Progress | None = None,
) -> dict:
    """Evaluate ``checkpoint`` on ``cfg.split`` of ``data``; returns metrics and the submission path."""
    cfg = cfg or EvalConfig()
    if submission is not None:
        check_submission(Path(submission))
    check_cpus("--ttt-workers", cfg.ttt.workers)
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
        res = evaluate_tasks(
            model,
            tasks,
            seq_len=cfg.seq_len or config["data"]["seq_len"],
            device=device,
            progress=progress,
            total=plan["tasks"],
            cfg=cfg,
        )
    finally:
        torch.set_num_threads(threads_before)
    ck = Path(config["checkpoint"])
    out = Path(submission) if submission else default_submission(ck, cfg.split)
    write_submission(out, res.submission)
    return {
        "metrics": res.metrics,
        "tasks": len(res.submission),
        "submission": str(out),
        "checkpoint": str(ck),
        "step": config.get("step"),
        "per_task": res.per_task,
        "skipped_checkpoints": config["skipped"],
        "eval_config": cfg.to_dict(),
        "left_out": res.left_out,
    }
