"""The demo's torch half: train a small model on the built synthetic tasks, then score held-out tasks
without and with test-time training (``arcforge.demo`` orchestrates, and never imports torch).

Returns plain Python (per-task records, attempts for the gallery, timings) so that the caller stays
torch-free.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import torch

from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.task import Task
from arcforge.train.data import DataConfig
from arcforge.train.evaluate import EvalConfig, evaluate_tasks
from arcforge.train.loop import TrainConfig, train
from arcforge.train.model import ModelConfig
from arcforge.train.runner import load_model
from arcforge.train.ttt import TTTConfig


def train_and_score(cfg: Any, data_dir: Path, run_dir: Path, held: list[Task], *, source: str,
                    progress: Progress | None = None) -> dict[str, Any]:
    """Train on ``source``'s training split of ``data_dir`` into ``run_dir`` (``cfg``: an
    ``arcforge.demo.DemoConfig``), then evaluate ``held`` with voting, before and after test-time training.

    Returns ``{"train": {...}, "per_task": [...], "metrics": {...}, "attempts": {task id: grid}, ...}``.
    """
    progress = progress or NULL_PROGRESS
    threads = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    try:
        data_cfg = DataConfig(root=str(data_dir), sources=[source], splits=["training"], seq_len=cfg.seq_len,
                              batch_size=cfg.batch_size, loss_on=cfg.loss_on, seed=cfg.seed)
        model_cfg = ModelConfig(d_model=cfg.d_model, n_layers=cfg.n_layers, n_heads=cfg.n_heads,
                                max_seq_len=cfg.seq_len, grid_pos=cfg.grid_pos,
                                extra={"trained_on": f"arcforge demo: synthetic {cfg.difficulty}, "
                                                     f"{len(cfg.families)} families"})
        train_cfg = TrainConfig(out=str(run_dir), max_steps=cfg.steps, lr=cfg.lr,
                                warmup_steps=max(1, cfg.steps // 20), log_every=max(1, cfg.steps // 100),
                                ckpt_every=cfg.steps, eval_every=0, eval_tasks=0, device="cpu", amp=cfg.amp,
                                seed=cfg.seed, tensorboard=False)
        trained = train(model_cfg, data_cfg, train_cfg, progress=progress)
        model, _ = load_model(run_dir, "cpu")
        if cfg.eval_threads > 0:  # decoding and TTT run small ops, where fewer threads win
            torch.set_num_threads(cfg.eval_threads)
        ecfg = EvalConfig(votes=cfg.votes, seed=cfg.seed,
                          ttt=TTTConfig(steps=cfg.ttt_steps, lr=cfg.ttt_lr, batch_size=cfg.ttt_batch_size,
                                        seed=cfg.seed))
        t0 = time.perf_counter()
        res = evaluate_tasks(model, held, seq_len=cfg.seq_len, device=torch.device("cpu"), cfg=ecfg,
                             progress=progress, total=len(held))
        eval_s = time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)
    attempts = {}
    for t in held:
        key = t.id.rsplit("/", 1)[-1]
        attempts[t.id] = res.submission.get(key, [{}])[0].get("attempt_1")
    return {"train": {k: v for k, v in trained.items() if k != "history"}, "per_task": res.per_task,
            "metrics": res.metrics, "attempts": attempts, "eval_seconds": round(eval_s, 1),
            "eval_config": ecfg.to_dict(), "model": model_cfg.to_dict(), "train_amp": train_cfg.amp,
            "torch_threads": cfg.threads or threads, "s_per_step": trained["elapsed_s"] / max(1, trained["steps"])}
