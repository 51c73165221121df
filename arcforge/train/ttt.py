"""Test-time training (TTT): fine-tune a copy of the model on one task's demonstration pairs, then predict.

Recipe (Akyuerek et al. 2024, "The Surprising Effectiveness of Test-Time Training for Abstract Reasoning";
the ARChitects): from the task's *train* pairs only, build leave-one-out examples -- each train pair in
turn is the target, the others are its context -- under a random D8 symmetry, color permutation and
context order each; fine-tune a copy of the model on them for ``steps`` AdamW steps (full fine-tuning, or
LoRA adapters with ``lora_rank > 0``); predict; throw the copy away. Every task thus starts from the same
weights, and the result of a task does not depend on the others.

The test outputs are never read: ``strip_test_outputs`` removes them before anything else sees the task
(tests give tasks with poisoned or absent test outputs and check that the predictions are identical).
Deterministic: the draws are seeded by ``(seed, crc32(task id))``, and torch's generator is not used.
"""

from __future__ import annotations

import copy
import zlib

import numpy as np
import torch
import torch.nn.functional as F

from arcforge.task import Pair, Task
from arcforge.train.augment import random_transform
from arcforge.train.config import (
    AugmentConfig,
    TTTConfig,  # the settings live with all the others
)
from arcforge.train.lora import add_lora
from arcforge.train.model import ArcTransformer
from arcforge.train.pack import pack, stack
from arcforge.train.tokenize import Example, encode, example_length


def strip_test_outputs(task: Task) -> Task:
    """The task as TTT may see it: train pairs with outputs, test inputs only."""
    return Task(
        task.id,
        task.source,
        task.split,
        [Pair(p.input, p.output) for p in task.train if p.output is not None],
        [Pair(p.input, None) for p in task.test],
    )


def task_rng(cfg: TTTConfig, task_id: str) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, zlib.crc32(task_id.encode())])


def lora_seed(cfg: TTTConfig, task_id: str) -> int:
    """The seed of a task's LoRA adapters: from the TTT seed and the task, apart from ``task_rng``'s draws."""
    return zlib.crc32(f"{cfg.seed}/{task_id}/lora".encode())


def leave_one_out(
    task: Task, n: int, rng: np.random.Generator, cfg: TTTConfig, max_len: int
) -> list[Example]:
    """``n`` examples from the train pairs of ``task``: target pair ``j`` (cycling through them in a random
    order), the other pairs as context, each example under its own random transform. Context pairs are
    dropped from the end until the example fits ``max_len``. Empty when the task has fewer than 2 pairs."""
    pairs = [(p.input, p.output) for p in task.train if p.output is not None]
    if len(pairs) < 2:
        return []
    aug = AugmentConfig(
        symmetries=cfg.symmetries, colors=cfg.colors, keep_zero=cfg.keep_zero, shuffle_train=cfg.shuffle_train
    )
    out: list[Example] = []
    order = rng.permutation(len(pairs))
    for i in range(n):
        j = int(order[i % len(pairs)])
        rest = [pairs[k] for k in range(len(pairs)) if k != j]
        t = random_transform(rng, len(rest), aug)
        ctx = [(t.grid(a), t.grid(b)) for a, b in rest]
        if t.order is not None:
            ctx = [ctx[k] for k in t.order]
        tin, tout = t.grid(pairs[j][0]), t.grid(pairs[j][1])
        while len(ctx) > 1 and example_length(ctx, tin, tout) > max_len:
            ctx.pop()
        if example_length(ctx, tin, tout) <= max_len:
            out.append(encode(ctx, tin, tout, loss_on=str(cfg.loss_on), task_id=task.id))
    return out


def fine_tune(model: ArcTransformer, task: Task, cfg: TTTConfig, max_len: int) -> tuple[ArcTransformer, dict]:
    """A fine-tuned copy of ``model`` for ``task`` (``model`` itself is untouched) and a report
    ``{"steps", "examples", "loss_first", "loss_last"}``. With fewer than 2 train pairs (no leave-one-out
    possible) or ``steps == 0`` the copy is the model's."""
    task = strip_test_outputs(task)
    rng = task_rng(cfg, task.id)
    tuned = copy.deepcopy(model)
    report = {"steps": 0, "examples": 0, "loss_first": None, "loss_last": None}
    if cfg.steps <= 0:
        return tuned.eval(), report
    device = next(model.parameters()).device
    if cfg.lora_rank > 0:
        params = add_lora(tuned, cfg.lora_rank, cfg.lora_alpha or None, seed=lora_seed(cfg, task.id))
    else:
        params = [p for p in tuned.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.99))
    tuned.train()
    losses = []
    for _ in range(cfg.steps):
        exs = leave_one_out(task, cfg.batch_size, rng, cfg, max_len)
        if not exs:
            break
        longest = max(len(e) for e in exs)
        b = stack(pack(exs, max(longest, min(max_len, 2 * longest))))  # rows of ~2 examples
        tok = torch.from_numpy(b.tokens).to(device)
        logits = tuned(tok, torch.from_numpy(b.positions).to(device), torch.from_numpy(b.segments).to(device))
        mask = torch.from_numpy(b.targets[:, 1:]).to(device)
        loss = F.cross_entropy(logits[:, :-1][mask], tok[:, 1:][mask])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.detach())
        report["examples"] += len(exs)
    if losses:
        report.update(
            steps=len(losses), loss_first=round(float(losses[0]), 4), loss_last=round(float(losses[-1]), 4)
        )
    return tuned.eval(), report


__all__ = ["TTTConfig", "fine_tune", "leave_one_out", "strip_test_outputs"]
