"""Evaluation: token accuracy (teacher forcing), greedy exact-match, pass@2 with augmentation voting,
and a Kaggle-style ``submission.json``.

pass@2 with voting: every test input is decoded under ``votes`` transforms (identity, then the other
symmetries, then symmetries with color permutations; ``augment.voting_transforms``), each prediction is
mapped back with the inverse transform, identical grids pool their votes, and the two most voted grids
(ties: higher mean log-probability) are the two attempts. ``exact_match`` is the identity transform's
greedy answer alone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import torch

from arcforge.grids import Grid, grid_bytes
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.task import Task
from arcforge.train.augment import Transform, voting_transforms
from arcforge.train.model import ArcTransformer, KVCache
from arcforge.train.pack import pack, stack
from arcforge.train.tokenize import (
    GRID_END,
    N_COLORS,
    ROW,
    Example,
    encode,
    encode_task,
    grid_length,
    parse_grid_tokens,
)

MAX_SIDE = 30
MAX_NEW_TOKENS = MAX_SIDE * (MAX_SIDE + 1) + 1


@dataclass
class EvalResult:
    metrics: dict[str, float]
    submission: dict[str, list[dict[str, list[list[int]]]]] = field(default_factory=dict)
    per_task: list[dict] = field(default_factory=list)


def prompt(task: Task, test_index: int, max_len: int) -> Example:
    """The decoding prompt of one test input; train pairs dropped from the end so that the prompt plus an
    output the size of the test input fits ``max_len`` (at least one pair is kept)."""
    test_in = task.test[test_index].input
    train = [(p.input, p.output) for p in task.train if p.output is not None]
    while len(train) > 1:
        ex = encode(train, test_in, None, task_id=task.id, test_index=test_index)
        if len(ex) + grid_length(test_in) <= max_len:
            return ex
        train.pop()
    return encode(train, test_in, None, task_id=task.id, test_index=test_index)


@torch.no_grad()
def greedy_decode(model: ArcTransformer, ex: Example, device: torch.device,
                  max_new: int = MAX_NEW_TOKENS) -> tuple[Grid | None, float]:
    """Greedy continuation of a prompt (ending in ``OUTPUT GRID_START``) until GRID_END; returns the grid
    (None when malformed) and the mean log-probability of the chosen tokens. Uses a KV cache."""
    cache = KVCache(model.cfg.n_layers)
    tokens = torch.from_numpy(ex.tokens)[None].to(device)
    positions = torch.from_numpy(ex.positions)[None].to(device)
    logits = model(tokens, positions, cache=cache)[0, -1]
    allowed = torch.full_like(logits, float("-inf"))
    allowed[:N_COLORS] = 0
    allowed[ROW] = 0
    allowed[GRID_END] = 0
    seq, row, col = len(ex), 1, 1
    out: list[int] = []
    logp = 0.0
    for _ in range(max_new):
        lp = torch.log_softmax(logits + allowed, dim=-1)
        nxt = int(lp.argmax())
        logp += float(lp[nxt])
        if nxt == GRID_END:
            break
        out.append(nxt)
        pos = torch.tensor([[[seq, row, col]]], device=device)
        if nxt == ROW:
            row, col = row + 1, 1
        else:
            col += 1
        if row > MAX_SIDE + 1 or col > MAX_SIDE + 1:
            return None, logp / max(1, len(out))
        seq += 1
        logits = model(torch.tensor([[nxt]], device=device), pos, cache=cache)[0, -1]
    return parse_grid_tokens(out), logp / max(1, len(out) + 1)


@torch.no_grad()
def token_accuracy(model: ArcTransformer, examples: list[Example], seq_len: int, device: torch.device,
                   batch_size: int = 8) -> tuple[float, float]:
    """Teacher-forced (accuracy, mean loss) over the target tokens of ``examples`` (packed rows)."""
    rows = pack(examples, max(seq_len, max((len(e) for e in examples), default=1)))
    correct = total = 0
    loss_sum = 0.0
    for i in range(0, len(rows), batch_size):
        b = stack(rows[i : i + batch_size])
        tok = torch.from_numpy(b.tokens).to(device)
        logits = model(tok, torch.from_numpy(b.positions).to(device), torch.from_numpy(b.segments).to(device))
        mask = torch.from_numpy(b.targets[:, 1:]).to(device)
        tgt = tok[:, 1:][mask]
        lg = logits[:, :-1][mask]
        correct += int((lg.argmax(-1) == tgt).sum())
        total += int(mask.sum())
        loss_sum += float(torch.nn.functional.cross_entropy(lg, tgt, reduction="sum"))
    return correct / max(1, total), loss_sum / max(1, total)


def vote(candidates: list[tuple[Grid, float]]) -> list[Grid]:
    """Pool identical grids; order by (votes, mean log-prob); return the grids."""
    pool: dict[bytes, list] = {}
    for g, lp in candidates:
        k = grid_bytes(g)
        if k not in pool:
            pool[k] = [g, 0, 0.0]
        pool[k][1] += 1
        pool[k][2] += lp
    ranked = sorted(pool.values(), key=lambda e: (-e[1], -e[2] / e[1]))
    return [e[0] for e in ranked]


def submission_key(task: Task) -> str:
    """Kaggle keys tasks by their upstream file name (``00576224``); ours is the last id component."""
    return task.id.rsplit("/", 1)[-1]


@torch.no_grad()
def evaluate_tasks(model: ArcTransformer, tasks: Iterable[Task], *, seq_len: int, device: torch.device,
                   votes: int = 8, seed: int = 0, progress: Progress | None = None,
                   total: int | None = None) -> EvalResult:
    """Token accuracy, exact-match and pass@2 over every test input of ``tasks``, plus the submission."""
    progress = progress or NULL_PROGRESS
    was_training = model.training
    model.eval()
    transforms = voting_transforms(max(1, votes), seed)
    examples: list[Example] = []
    submission: dict[str, list] = {}
    per_task = []
    n = exact = pass2 = scored = 0
    progress.start("eval", "eval", total=total)
    for task in tasks:
        attempts = []
        for k, pair in enumerate(task.test):
            cands: list[tuple[Grid, float]] = []
            first: Grid | None = None
            for j, t in enumerate(transforms):
                tt: Task = t.task(task)
                g, lp = greedy_decode(model, prompt(tt, k, seq_len), device)
                if g is not None:
                    inv = t.invert(g)
                    cands.append((inv, lp))
                    if j == 0:
                        first = inv
            ranked = vote(cands)[:2]
            a1 = ranked[0] if ranked else np.zeros((1, 1), np.int8)
            a2 = ranked[1] if len(ranked) > 1 else a1
            attempts.append({"attempt_1": a1.tolist(), "attempt_2": a2.tolist()})
            n += 1
            rec = {"task": task.id, "test_index": k, "decoded": first is not None}
            if pair.output is not None:
                scored += 1
                em = first is not None and np.array_equal(first, pair.output)
                p2 = any(np.array_equal(g, pair.output) for g in ranked)
                exact += em
                pass2 += p2
                rec.update(exact=bool(em), pass2=bool(p2))
                ex = encode_task(task, k, max_len=seq_len)
                if ex is not None:
                    examples.append(ex)
            per_task.append(rec)
        submission[submission_key(task)] = attempts
        progress.advance("eval")
    progress.finish("eval")
    acc, loss = token_accuracy(model, examples, seq_len, device) if examples else (0.0, 0.0)
    model.train(was_training)
    metrics = {"test_inputs": n, "scored": scored, "exact_match": exact / max(1, scored),
               "pass@2": pass2 / max(1, scored), "token_accuracy": acc, "loss": loss, "votes": len(transforms)}
    return EvalResult(metrics, submission, per_task)


__all__ = ["EvalResult", "Transform", "evaluate_tasks", "greedy_decode", "prompt", "token_accuracy", "vote"]
