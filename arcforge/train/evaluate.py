"""Evaluation: token accuracy (teacher forcing), exact match, pass@2 with augmentation voting, optional
test-time training, and a Kaggle-style ``submission.json``.

Voting: every test input is decoded under ``votes`` transforms (identity, then the other symmetries, then
symmetries with color permutations; ``augment.voting_transforms``), all as rows of one batch
(``decode.decode_batch``; without TTT, several tasks share a batch). Each prediction is mapped back with
the inverse transform and identical grids are pooled. Ranking (``EvalConfig.rank``):

- ``"poe"`` (default): product of experts -- the ``poe_top`` most voted candidates are re-scored under
  every transform (teacher forcing, ``decode.score_candidates``) and ranked by their log-probability
  summed over all the transforms;
- ``"votes"``: by vote count, ties by mean log-probability.

The two best are the two attempts (pass@2). ``exact_match`` is the identity transform's greedy answer.

With ``ttt.steps > 0`` each task is first predicted by the base model ("before"), then by a copy
fine-tuned on its demonstration pairs (``ttt.fine_tune``; "after"); per-task records carry both. With
``ttt.base_attempt`` (default) the second attempt is the base model's best answer where it differs from
the tuned model's first (``with_base_attempt``). ``ttt.workers`` tasks are fine-tuned and decoded at once,
each in a thread of its own (``ttt_workers``); the records do not depend on it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from itertools import islice

import numpy as np
import torch

from arcforge.grids import Grid, grid_bytes
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.task import Task
from arcforge.train.augment import Transform, voting_transforms
from arcforge.train.config import Amp, DataConfig, EvalConfig, LossOn, Rank, TTTConfig
from arcforge.train.decode import MAX_NEW_TOKENS, MAX_SIDE, Prefix, decode_batch, score_with_prefix
from arcforge.train.model import ArcTransformer
from arcforge.train.pack import pack, stack
from arcforge.train.tokenize import Example, encode, encode_task, grid_length, grid_too_large
from arcforge.train.ttt import fine_tune, strip_test_outputs


@dataclass
class EvalResult:
    metrics: dict[str, float]
    submission: dict[str, list[dict[str, list[list[int]]]]] = field(default_factory=dict)
    per_task: list[dict] = field(default_factory=list)
    left_out: list[dict] = field(default_factory=list)  # {"task", "reason"}: tasks the trainer cannot take


def prompt(task: Task, test_index: int, max_len: int) -> Example:
    """The decoding prompt of one test input; train pairs dropped from the end so that the prompt plus an
    output the size of the test input fits ``max_len`` (at least one pair is kept)."""
    test_in = task.test[test_index].input
    train = [(p.input, p.output) for p in task.train if p.output is not None]
    while len(train) > 1:
        ex = encode(train, test_in, None, loss_on=LossOn.test, task_id=task.id, test_index=test_index)
        if len(ex) + grid_length(test_in) <= max_len:
            return ex
        train.pop()
    return encode(train, test_in, None, loss_on=LossOn.test, task_id=task.id, test_index=test_index)


@torch.no_grad()
def greedy_decode(
    model: ArcTransformer, ex: Example, device: torch.device | None = None, max_new: int = MAX_NEW_TOKENS
) -> tuple[Grid | None, float]:
    """One prompt (a batch of one): the grid and the mean log-probability of its tokens."""
    d = decode_batch(model, [ex], max_new=max_new)[0]
    return d.grid, d.logp / max(1, len(d.tokens) + 1)


@torch.no_grad()
def token_accuracy(
    model: ArcTransformer,
    examples: list[Example],
    seq_len: int,
    device: torch.device,
    batch_size: int = DataConfig.batch_size,
) -> tuple[float, float]:
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
    return [e[0] for e in _pool(candidates)]


def _pool(candidates: list[tuple[Grid, float]]) -> list[list]:
    pool: dict[bytes, list] = {}
    for g, lp in candidates:
        k = grid_bytes(g)
        if k not in pool:
            pool[k] = [g, 0, 0.0]
        pool[k][1] += 1
        pool[k][2] += lp
    return sorted(pool.values(), key=lambda e: (-e[1], -e[2] / e[1]))


def submission_key(task: Task) -> str:
    """Kaggle keys tasks by their upstream file name (``00576224``); ours is the last id component."""
    return task.id.rsplit("/", 1)[-1]


def output_side_limit(task: Task, test_index: int, margin: int = 2) -> int:
    """A generous cap on the test output's side, from the task's demonstrations: the largest train output
    side, or the test input's side times the largest output/input side ratio, plus ``margin``; at most
    ``MAX_SIDE``. Stops a row that would run to 30x30 on a task whose outputs are all small."""
    pairs = [(p.input, p.output) for p in task.train if p.output is not None]
    if not pairs:
        return MAX_SIDE
    ratio = max(max(o.shape) / max(i.shape) for i, o in pairs)
    grown = math.ceil(max(task.test[test_index].input.shape) * ratio)
    return min(MAX_SIDE, max(max(max(o.shape) for _, o in pairs), grown) + margin)


@dataclass
class _Item:
    """One test input under one transform: its prompt and the decoded (inverted) grid."""

    task: int
    test: int
    transform: int
    prompt: Example
    side: int = MAX_SIDE  # output side limit
    grid: Grid | None = None
    logp: float = 0.0


def _items(tasks: list[Task], transforms: list[Transform], cfg: EvalConfig, seq_len: int) -> list[_Item]:
    out = []
    for ti, task in enumerate(tasks):
        visible = strip_test_outputs(task)  # prompts never carry a test output
        for j, t in enumerate(transforms):
            tt = t.task(visible)
            for k in range(len(tt.test)):
                side = output_side_limit(tt, k) if cfg.size_limit else MAX_SIDE
                out.append(_Item(ti, k, j, prompt(tt, k, seq_len), side))
    return out


def _rank(items: list[_Item], cfg: EvalConfig) -> tuple[list[Grid], list[Grid]]:
    """Pool the decoded grids of one test input; returns (ranked by votes, the top ones to re-score)."""
    pooled = [e[0] for e in _pool([(it.grid, it.logp) for it in items if it.grid is not None])]
    if cfg.rank == Rank.votes or len(pooled) < 2:
        return pooled, []
    return pooled, pooled[: cfg.poe_top]


def _batches(groups: list[list[_Item]], batch_rows: int) -> Iterator[list[int]]:
    """The groups in batches of whole groups of similar prompt length (shortest first), each of at most
    ``batch_rows`` rows unless one group alone has more."""
    order = sorted(range(len(groups)), key=lambda g: max(len(it.prompt) for it in groups[g]))
    s = 0
    while s < len(order):
        batch = [order[s]]
        rows = len(groups[order[s]])
        s += 1
        while s < len(order) and rows + len(groups[order[s]]) <= batch_rows:
            rows += len(groups[order[s]])
            batch.append(order[s])
            s += 1
        yield batch


def _decode_items(
    model: ArcTransformer, items: list[_Item], transforms: list[Transform], cfg: EvalConfig, amp: bool
) -> Prefix:
    """Decode ``items`` as one batch; each gets its grid mapped back by its transform's inverse and its
    mean log-probability. Returns the batch's prefilled prompts."""
    decoded, prefix = decode_batch(
        model,
        [it.prompt for it in items],
        max_new=cfg.max_new,
        max_sides=[it.side for it in items],
        keep_prefix=True,
        amp=amp,
    )
    for it, d in zip(items, decoded, strict=True):
        if d.grid is not None:
            it.grid = transforms[it.transform].invert(d.grid)
            it.logp = d.logp / (len(d.tokens) + 1)
    return prefix


def _poe_queue(
    batch: list[int],
    groups: list[list[_Item]],
    transforms: list[Transform],
    cfg: EvalConfig,
    ranked: list[list[Grid]],
) -> tuple[list[int], list[Grid], list[tuple[int, list[Grid], int]]]:
    """Rank each group of ``batch`` by votes into ``ranked``, and queue its top candidates under every
    transform for re-scoring: the decoder rows, the (transformed) grids, and per group re-scored its
    (group, candidates, first entry in the queue)."""
    rows_q: list[int] = []
    grids_q: list[Grid] = []
    plan = []
    at = 0
    for g in batch:
        pooled, top = _rank(groups[g], cfg)
        ranked[g] = pooled
        if top:
            plan.append((g, top, len(rows_q)))
            for c in top:
                for j, it in enumerate(groups[g]):
                    rows_q.append(at + j)
                    grids_q.append(transforms[it.transform].grid(c))
        at += len(groups[g])
    return rows_q, grids_q, plan


def _rerank(
    plan: list[tuple[int, list[Grid], int]],
    scores: list[float],
    groups: list[list[_Item]],
    ranked: list[list[Grid]],
) -> None:
    """Put each planned group's top candidates first in ``ranked``, by their log-probability summed over
    every transform (product of experts)."""
    for g, top, first in plan:
        n = len(groups[g])
        total = [sum(scores[first + c * n : first + (c + 1) * n]) for c in range(len(top))]
        best = [top[c] for c in sorted(range(len(top)), key=lambda c: -total[c])]
        ranked[g] = best + ranked[g][len(top) :]


def _decode_groups(
    model: ArcTransformer, groups: list[list[_Item]], transforms: list[Transform], cfg: EvalConfig, amp: bool
) -> list[list[Grid]]:
    """Decode the groups (all transforms of one test input each) in batches of whole groups of similar
    prompt length, and rank each group's candidates (product of experts: every top candidate scored under
    every transform, reusing the batch's prefilled prompts)."""
    ranked: list[list[Grid]] = [[] for _ in groups]
    for batch in _batches(groups, cfg.batch_rows):
        prefix = _decode_items(model, [it for g in batch for it in groups[g]], transforms, cfg, amp)
        rows_q, grids_q, plan = _poe_queue(batch, groups, transforms, cfg, ranked)
        scores = score_with_prefix(model, prefix, rows_q, grids_q) if rows_q else []
        _rerank(plan, scores, groups, ranked)
    return ranked


def predict(model: ArcTransformer, tasks: list[Task], *, seq_len: int, cfg: EvalConfig) -> list[list[dict]]:
    """Per task, per test input: ``{"ranked": [grids, best first], "first": identity-transform grid}``.
    All tasks' prompts are decoded together (in batches of about ``cfg.batch_rows`` rows)."""
    transforms = voting_transforms(max(1, cfg.votes), cfg.seed, symmetries=cfg.vote_symmetries)
    items = _items(tasks, transforms, cfg, seq_len)
    by_input: dict[tuple[int, int], list[_Item]] = {}
    for it in items:
        by_input.setdefault((it.task, it.test), []).append(it)
    keys = list(by_input)
    groups = [sorted(by_input[k], key=lambda it: it.transform) for k in keys]
    from arcforge.train.device import use_bf16

    ranked = _decode_groups(
        model, groups, transforms, cfg, use_bf16(next(model.parameters()).device, cfg.amp)
    )
    out: list[list[dict]] = [[{} for _ in t.test] for t in tasks]
    for (ti, k), its, r in zip(keys, groups, ranked, strict=True):
        out[ti][k] = {"ranked": r, "first": its[0].grid}
    return out


def with_base_attempt(tuned: dict, base: dict) -> dict:
    """One test input's prediction after TTT, with the base model's best answer moved up to second place
    (unless it is the tuned model's first): attempts from two models that fail differently."""
    out: list[Grid] = []
    seen: set[bytes] = set()
    for g in [*tuned["ranked"][:1], *base["ranked"][:1], *tuned["ranked"][1:], *base["ranked"][1:]]:
        key = grid_bytes(g)
        if key not in seen:
            seen.add(key)
            out.append(g)
    return {**tuned, "ranked": out}


def _score(pred: dict, truth: Grid | None) -> dict:
    ranked, first = pred["ranked"][:2], pred["first"]
    rec = {"decoded": first is not None}
    if truth is not None:
        rec["exact"] = bool(first is not None and np.array_equal(first, truth))
        rec["pass2"] = bool(any(np.array_equal(g, truth) for g in ranked))
    return rec


def _attempts(pred: dict) -> dict:
    ranked = pred["ranked"][:2]
    a1 = ranked[0] if ranked else np.zeros((1, 1), np.int8)
    a2 = ranked[1] if len(ranked) > 1 else a1
    return {"attempt_1": a1.tolist(), "attempt_2": a2.tolist()}


def _groups(tasks: Iterable[Task], n: int) -> Iterator[list[Task]]:
    it = iter(tasks)
    while chunk := list(islice(it, n)):
        yield chunk


@torch.no_grad()
def _fitting(tasks: Iterable[Task], left_out: list[dict], progress: Progress) -> Iterator[Task]:
    """``tasks`` whose grids the trainer takes; the others are appended to ``left_out`` with their reason
    (a grid past the frame tables: named, never decoded)."""
    for t in tasks:
        why = grid_too_large(t)
        if why is None:
            yield t
        else:
            left_out.append({"task": t.id, "reason": why})
            progress.advance("eval")


@dataclass
class _Records:
    """The running records of an evaluation: counts for the metrics, the examples of the scored test inputs
    (for token accuracy), the per-task records, the submission and the tasks left out."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("n", "scored", "exact", "pass2", "exact_before", "pass2_before"), 0
        )
    )
    examples: list[Example] = field(default_factory=list)
    per_task: list[dict] = field(default_factory=list)
    submission: dict[str, list] = field(default_factory=dict)
    left_out: list[dict] = field(default_factory=list)


def _settled(cfg: EvalConfig, model: ArcTransformer, workers: int) -> EvalConfig:
    """``cfg`` with ``amp auto`` settled once when several threads tune at once: its CPU probe, cached per
    thread count, must not differ by thread."""
    if workers <= 1:
        return cfg
    from arcforge.train.device import use_bf16

    return replace(cfg, amp=Amp.bf16 if use_bf16(next(model.parameters()).device, cfg.amp) else Amp.off)


def _tune_group(
    model: ArcTransformer,
    tasks_g: list[Task],
    before: list[list[dict]],
    cfg: EvalConfig,
    seq_len: int,
    pool: ThreadPoolExecutor | None,
    workers: int,
) -> Iterable:
    """Each task's (predictions after test-time training, report), or without TTT (its predictions, None).
    With a ``pool``, the tasks of the group at once, each thread with its share of the torch threads."""
    if cfg.ttt.steps <= 0:
        return ((preds, None) for preds in before)
    if pool is None:
        return (_tuned(model, task, preds, cfg, seq_len) for task, preds in zip(tasks_g, before, strict=True))
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, threads // workers))
    try:
        return list(pool.map(lambda tp: _tuned(model, *tp, cfg, seq_len), zip(tasks_g, before, strict=True)))
    finally:
        torch.set_num_threads(threads)


def _metrics(rec: _Records, cfg: EvalConfig, acc: float, loss: float) -> dict[str, float]:
    counts, s = rec.counts, max(1, rec.counts["scored"])
    metrics = {
        "test_inputs": counts["n"],
        "scored": counts["scored"],
        "exact_match": counts["exact"] / s,
        "pass@2": counts["pass2"] / s,
        "token_accuracy": acc,
        "loss": loss,
        "votes": max(1, cfg.votes),
        "ttt_steps": cfg.ttt.steps,
        "left_out": len(rec.left_out),
    }
    if cfg.ttt.steps > 0:
        metrics.update(
            {"exact_match_before": counts["exact_before"] / s, "pass@2_before": counts["pass2_before"] / s}
        )
    return metrics


def evaluate_tasks(
    model: ArcTransformer,
    tasks: Iterable[Task],
    *,
    seq_len: int,
    device: torch.device,
    votes: int | None = None,
    progress: Progress | None = None,
    total: int | None = None,
    cfg: EvalConfig | None = None,
) -> EvalResult:
    """Token accuracy, exact match and pass@2 over every test input of ``tasks``, plus the submission.
    ``votes`` overrides ``cfg``'s. With ``cfg.ttt.steps > 0``: test-time training per task, and the
    per-task records and metrics say before (``*_before``) and after."""
    cfg = cfg or EvalConfig()
    if votes is not None:
        cfg = replace(cfg, votes=votes)
    progress = progress or NULL_PROGRESS
    was_training = model.training
    model.eval()
    rec = _Records()
    progress.start("eval", "eval", total=total)
    # without TTT a group of tasks decodes as one batch; with TTT each task has its own weights
    group = max(1, cfg.batch_rows // max(1, cfg.votes))
    workers = ttt_workers(cfg.ttt, device) if cfg.ttt.steps > 0 else 1
    cfg = _settled(cfg, model, workers)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="arcforge-ttt") if workers > 1 else None
    try:
        for tasks_g in _groups(_fitting(tasks, rec.left_out, progress), group):
            before = predict(model, tasks_g, seq_len=seq_len, cfg=cfg)
            tuned_g = _tune_group(model, tasks_g, before, cfg, seq_len, pool, workers)
            _collect(tasks_g, before, tuned_g, cfg.ttt.steps > 0, seq_len, rec, progress)
    finally:  # on an error or Ctrl-C, the tasks not yet started are dropped, not run
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    progress.finish("eval")
    acc, loss = token_accuracy(model, rec.examples, seq_len, device) if rec.examples else (0.0, 0.0)
    model.train(was_training)
    return EvalResult(_metrics(rec, cfg, acc, loss), rec.submission, rec.per_task, rec.left_out)


def ttt_workers(cfg: TTTConfig, device: torch.device) -> int:
    """How many tasks are fine-tuned at once: ``cfg.workers``, or on a CPU one per torch thread up to 4
    (a small model's fine-tuning and decoding run many small ops, which one thread each runs better than
    all threads one task at a time), on an accelerator 1."""
    if cfg.workers:
        return cfg.workers
    return min(4, torch.get_num_threads()) if device.type == "cpu" else 1


@torch.no_grad()
def _tuned(
    model: ArcTransformer, task: Task, preds: list[dict], cfg: EvalConfig, seq_len: int
) -> tuple[list[dict], dict]:
    """One task's predictions after test-time training (``preds``: the base model's) and the TTT report.
    Thread-safe: the base model is only read (``fine_tune`` tunes a copy)."""
    with torch.enable_grad():
        tuned, report = fine_tune(model, task, cfg.ttt, seq_len)
    after = predict(tuned, [task], seq_len=seq_len, cfg=cfg)[0]
    del tuned
    if cfg.ttt.base_attempt:
        after = [with_base_attempt(a, b) for a, b in zip(after, preds, strict=True)]
    return after, report


def _record(
    task: Task, k: int, after: dict, before: dict, report: dict | None, ttt: bool, rec: _Records, seq_len: int
) -> dict:
    """Score test input ``k`` of ``task`` (``after``: its prediction; ``before``: the base model's) into the
    counts and, when it has an output, its example into ``rec``; returns its per-task record."""
    pair = task.test[k]
    out = {"task": task.id, "test_index": k, **_score(after, pair.output)}
    if ttt:
        b = _score(before, pair.output)
        out.update({f"{key}_before": v for key, v in b.items() if key != "decoded"})
        out["ttt"] = report
    counts = rec.counts
    counts["n"] += 1
    if pair.output is not None:
        counts["scored"] += 1
        counts["exact"] += out["exact"]
        counts["pass2"] += out["pass2"]
        if ttt:
            counts["exact_before"] += out["exact_before"]
            counts["pass2_before"] += out["pass2_before"]
        ex = encode_task(task, k, loss_on=LossOn.test, max_len=seq_len)  # accuracy on the test output
        if ex is not None:
            rec.examples.append(ex)
    return out


def _collect(
    tasks_g: list[Task],
    before: list[list[dict]],
    tuned_g: Iterable[tuple[list[dict], dict | None]],
    ttt: bool,
    seq_len: int,
    rec: _Records,
    progress: Progress,
) -> None:
    """Score one group of tasks into the running records: ``tuned_g`` holds each task's (predictions after
    TTT, report), or without TTT (its predictions, None)."""
    for task, preds, (after, report) in zip(tasks_g, before, tuned_g, strict=True):
        attempts = []
        for k in range(len(task.test)):
            rec.per_task.append(_record(task, k, after[k], preds[k], report, ttt, rec, seq_len))
            attempts.append(_attempts(after[k]))
        rec.submission[submission_key(task)] = attempts
        progress.advance("eval")


__all__ = [
    "EvalConfig",
    "EvalResult",
    "Transform",
    "evaluate_tasks",
    "greedy_decode",
    "predict",
    "prompt",
    "token_accuracy",
    "ttt_workers",
    "vote",
    "with_base_attempt",
]
