"""The demo's torch half: train a small model on the built synthetic tasks, then score held-out tasks
with voting, without and with test-time training (``arcforge.demo.run`` orchestrates and never imports torch).

Returns plain Python (per-task records, first attempts for the gallery, timings) so that the caller stays
torch-free.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.task import Task
from arcforge.train.config import EvalConfig, TTTConfig
from arcforge.train.device import check_cpus
from arcforge.train.evaluate import evaluate_tasks, submission_key
from arcforge.train.loop import train
from arcforge.train.runner import load_model


def eval_config(cfg: Any, amp: str, workers: int = TTTConfig.workers) -> EvalConfig:
    """How the demo (``cfg``: an ``arcforge.demo.run.DemoConfig``) scores its held-out tasks: its votes and
    test-time training, decoding under ``amp``, ``workers`` tasks fine-tuned at once (0: auto)."""
    return cfg.eval_config(amp, workers)


def train_and_score(
    cfg: Any,
    data_dir: Path,
    run_dir: Path,
    held: list[Task],
    *,
    source: str,
    progress: Progress | None = None,
    on_step: Callable[[dict], None] | None = None,
) -> dict[str, Any]:
    """Train on ``source``'s training split of ``data_dir`` into ``run_dir`` (``cfg``: an
    ``arcforge.demo.run.DemoConfig``; the model and batch are ``arcforge.train.config``'s defaults), then
    evaluate ``held`` with ``cfg.votes`` votes, before and after ``cfg.ttt_steps`` of test-time training."""
    progress = progress or NULL_PROGRESS
    run = cfg.run_config(data_dir, run_dir, source)
    trained = train(run.model, run.data, run.train, overwrite=True, progress=progress, on_step=on_step)
    model, _ = load_model(run_dir, run.train.device)
    # decode in the precision the model trained in (bf16 where the trainer's amp probe chose it)
    ecfg = eval_config(cfg, "bf16" if trained["bf16"] else "off")
    res, eval_s = _evaluate(cfg, model, held, ecfg, progress, run.data.seq_len, run.train.device)
    attempts = {t.id: res.submission.get(submission_key(t), [{}])[0].get("attempt_1") for t in held}
    return {
        "train": {k: v for k, v in trained.items() if k != "history"},
        "per_task": res.per_task,
        "metrics": res.metrics,
        "attempts": attempts,
        "eval_seconds": round(eval_s, 1),
        "eval_config": ecfg.to_dict(),
        "model": run.model.to_dict(),
        "batch_size": run.data.batch_size,
        "bf16": trained["bf16"],
        "threads": trained["threads"],
        "s_per_step": trained["elapsed_s"] / max(1, trained["steps"]),
    }


def _evaluate(
    cfg: Any, model: Any, tasks: list[Task], ecfg: EvalConfig, progress: Progress, seq_len: int, device: str
) -> tuple[Any, float]:
    """``evaluate_tasks`` with the demo's eval threads; the result and its seconds."""
    threads = torch.get_num_threads()
    if cfg.eval_threads > 0:  # else the training's; TTT then fine-tunes one task per thread at once
        torch.set_num_threads(check_cpus("eval_threads", cfg.eval_threads))
    t0 = time.perf_counter()
    try:
        res = evaluate_tasks(
            model,
            tasks,
            seq_len=seq_len,
            device=torch.device(device),
            cfg=ecfg,
            progress=progress,
            total=len(tasks),
        )
    finally:
        torch.set_num_threads(threads)
    return res, time.perf_counter() - t0


def score_real(
    cfg: Any, run_dir: Path, tasks: list[Task], *, bf16: bool, progress: Progress | None = None
) -> tuple[dict[str, Any], float]:
    """Score real ``tasks`` (``arcforge.demo.real``) with the demo's recipe on the trained run in ``run_dir``:
    the metrics (pass@2 and exact match before and after test-time training, token accuracy) and seconds."""
    model, _ = load_model(run_dir, "cpu")  # the demo trains and scores on the CPU (``DemoConfig.run_config``)
    res, seconds = _evaluate(
        cfg,
        model,
        tasks,
        eval_config(cfg, "bf16" if bf16 else "off"),
        progress or NULL_PROGRESS,
        cfg.seq_len,
        "cpu",
    )
    return res.metrics, seconds
