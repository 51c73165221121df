"""Voting inference throughput: batched decoding vs one sequence at a time, same checkpoint, same run.

    python benchmarks/bench_inference.py --checkpoint RUN [--tasks 32] [--votes 8] [--threads 1]
                                         [--batched-threads 2] [--also-sequential-threads 2]
    python benchmarks/bench_inference.py                  # trains a small demo-sized model first

Both paths decode every test input of ``--tasks`` held-out synthetic easy tasks under ``--votes`` transforms
and vote; they differ only in how:

- ``sequential`` (the previous evaluator): one prompt at a time, a token per forward, the next token read
  back to the host (``int(argmax)``) at every step, and its KV cache growing by concatenation (each
  token's forward copies the cache); ``sequential_preallocated`` is the same loop over the current
  preallocated ``KVCache`` (what the cache alone is worth to it);
- ``batched`` (``arcforge.train.evaluate.predict``): all transforms of many test inputs as one batch,
  prompts prefilled per exact length, preallocated KV cache, grammar-constrained, no per-token host sync;
  ranked by votes (``batched_votes``), and with product-of-experts re-scoring (``batched_poe``); both in
  fp32 and under bf16 autocast (``*_bf16``, ``--amp bf16``; skipped with ``--no-bf16``).

All are timed alternately (``--repeats`` rounds, best of each) and reported as test inputs per second and
ratios, by wall time and by process CPU time (the machine may be busy: only the ratios are comparable;
the load average is recorded), with
pass@2 and how many test inputs get the same two attempts as the sequential evaluator.
Results: ``benchmarks/results/inference.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge import synthetic
from arcforge.build import shard_writer
from arcforge.grids import Grid
from arcforge.task import Task, tasks_to_table
from arcforge.train.augment import voting_transforms
from arcforge.train.config import DataConfig, EvalConfig, Rank, RunConfig, TrainConfig
from arcforge.train.evaluate import predict, prompt, vote
from arcforge.train.loop import train
from arcforge.train.model import ArcTransformer, KVCache
from arcforge.train.runner import load_model
from arcforge.train.tokenize import (
    EVIDENCE,
    GRID_END,
    N_COLORS,
    ROW,
    Example,
    frame_lookups,
    input_table,
    parse_grid_tokens,
)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "inference.json"
MAX_SIDE = 30


class GrowingCache:
    """The previous evaluator's KV cache: per layer, every forward's keys/values are concatenated onto the
    ones before (a copy of the whole cache per token), behind the interface the model calls."""

    def __init__(self, n_layers: int) -> None:
        self.k: list[torch.Tensor | None] = [None] * n_layers
        self.v: list[torch.Tensor | None] = [None] * n_layers
        self.length = 0

    def reserve(self, n: int) -> None:  # nothing is preallocated
        pass

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.k[layer] is not None:
            k = torch.cat([self.k[layer], k], dim=2)
            v = torch.cat([self.v[layer], v], dim=2)
        self.k[layer], self.v[layer] = k, v
        return k, v

    def advance(self, t: int) -> None:
        self.length += t


@torch.no_grad()
def sequential_decode(
    model: ArcTransformer,
    ex: Example,
    max_new: int = MAX_SIDE * (MAX_SIDE + 1) + 1,
    preallocated: bool = False,
) -> tuple[Grid | None, float]:
    """The previous evaluator's decoder: one prompt, one token per forward, a host sync per token, and its
    growing KV cache (``preallocated``: the current ``KVCache`` instead)."""
    cache = KVCache.for_model(model, 1, len(ex) + 64) if preallocated else GrowingCache(model.cfg.n_layers)
    tokens = torch.from_numpy(ex.tokens)[None]
    positions = torch.from_numpy(ex.positions)[None]
    logits = model(tokens, positions, cache=cache)[0, -1]
    allowed = torch.full_like(logits, float("-inf"))
    allowed[:N_COLORS] = 0
    allowed[ROW] = 0
    allowed[GRID_END] = 0
    seq, row, col = len(ex), 1, 1
    extra = ex.positions[
        -1, 3:6
    ].tolist()  # (h, w, pair): what a generated token takes from the output's <grid>
    evidence = ex.positions[-1, EVIDENCE].tolist()  # and the frame evidence
    table = input_table(ex)  # the test input's frame lookups
    out: list[int] = []
    logp = 0.0
    for _ in range(max_new):
        lp = torch.log_softmax(logits + allowed, dim=-1)
        nxt = int(lp.argmax())
        logp += float(lp[nxt])
        if nxt == GRID_END:
            break
        out.append(nxt)
        here = (seq, row, col)
        if nxt == ROW:
            row, col = row + 1, 1
        else:
            col += 1
        looks = frame_lookups(table, np.array([here[1:]]), np.array([(row, col)]))[0].tolist()
        pos = torch.tensor([[[*here, *extra, *looks, *evidence]]])
        if row > MAX_SIDE + 1 or col > MAX_SIDE + 1:
            return None, logp / max(1, len(out))
        seq += 1
        logits = model(torch.tensor([[nxt]]), pos, cache=cache)[0, -1]
    return parse_grid_tokens(out), logp / max(1, len(out) + 1)


def sequential_predict(
    model: ArcTransformer, tasks: list[Task], seq_len: int, votes: int, preallocated: bool = False
) -> list[list[Grid]]:
    transforms = voting_transforms(votes, 0)
    out = []
    for task in tasks:
        for k in range(len(task.test)):
            cands = []
            for t in transforms:
                g, lp = sequential_decode(model, prompt(t.task(task), k, seq_len), preallocated=preallocated)
                if g is not None:
                    cands.append((t.invert(g), lp))
            out.append(vote(cands)[:2])
    return out


# The small checkpoint timed without --checkpoint: config's model, the demo's stream in rows of 512 tokens
SMALL_RUN = RunConfig(
    data=DataConfig(seq_len=512, batch_size=6, loss_on="outputs"),
    train=TrainConfig(lr=2e-3, device="cpu", amp="off", tensorboard=False, eval_tasks=0),
)
# What is timed by default: config's votes, the sequential evaluator on one thread (its fastest setting)
BENCH = EvalConfig(threads=1)


def held_out_tasks(n: int) -> list[Task]:
    fams = synthetic.families(easy_only=True)
    return list(synthetic.generate(n, seed=1_000_003, families=fams, difficulty="easy"))


def small_checkpoint(tmp: Path, steps: int) -> Path:
    fams = synthetic.families(easy_only=True)
    data = tmp / "data"
    shard_writer.write_shards(
        tasks_to_table(synthetic.generate(2000, seed=0, families=fams, difficulty="easy")), data
    )
    run = SMALL_RUN.with_values(
        {
            "data.root": str(data),
            "train.out": str(tmp / "run"),
            "train.max_steps": steps,
            "train.warmup_steps": max(1, steps // 20),
            "train.ckpt_every": steps,
        }
    )
    train(run.model, run.data, run.train)
    return Path(run.train.out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="a run folder (default: train one)")
    ap.add_argument(
        "--train-steps", type=int, default=300, help="steps of the model trained without --checkpoint"
    )
    ap.add_argument("--tasks", type=int, default=32)
    ap.add_argument("--votes", type=int, default=BENCH.votes)
    ap.add_argument("--seq-len", type=int, default=SMALL_RUN.data.seq_len)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=BENCH.threads)
    ap.add_argument(
        "--batched-threads",
        type=int,
        default=0,
        help="torch threads of the batched decoders (default: --threads; the sequential one keeps "
        "--threads, its fastest setting being one thread)",
    )
    ap.add_argument(
        "--also-sequential-threads",
        type=int,
        default=0,
        help="also time the sequential evaluator on this many threads (``sequential_N_threads``: "
        "whether it gains from more cores, as the batched path does)",
    )
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="skip the bf16 autocast variants")
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as tmp:
        ckpt = a.checkpoint or small_checkpoint(Path(tmp), a.train_steps)
        model, config = load_model(ckpt, "cpu")
    tasks = held_out_tasks(a.tasks)
    inputs = sum(len(t.test) for t in tasks)
    variants = [
        (f"batched_{rank}{'_bf16' if amp == 'bf16' else ''}", rank, amp)
        for amp in (("off", "bf16") if a.bf16 else ("off",))
        for rank in (Rank.votes.value, Rank.poe.value)
    ]
    extra_seq = f"sequential_{a.also_sequential_threads}_threads" if a.also_sequential_threads else None
    times: dict[str, list[float]] = {
        "sequential": [],
        "sequential_preallocated": [],
        **({extra_seq: []} if extra_seq else {}),
        **{v[0]: [] for v in variants},
    }
    cpu: dict[str, list[float]] = {
        k: [] for k in times
    }  # process CPU seconds: less sensitive to others' load
    answers: dict[str, list] = {}
    load = [round(os.getloadavg()[0], 2)]
    started = time.perf_counter()
    for _ in range(a.repeats):
        torch.set_num_threads(a.threads)
        t0, c0 = time.perf_counter(), time.process_time()
        answers["sequential"] = sequential_predict(model, tasks, a.seq_len, a.votes)
        times["sequential"].append(time.perf_counter() - t0)
        cpu["sequential"].append(time.process_time() - c0)
        t0, c0 = time.perf_counter(), time.process_time()
        answers["sequential_preallocated"] = sequential_predict(
            model, tasks, a.seq_len, a.votes, preallocated=True
        )
        times["sequential_preallocated"].append(time.perf_counter() - t0)
        cpu["sequential_preallocated"].append(time.process_time() - c0)
        if extra_seq:
            torch.set_num_threads(a.also_sequential_threads)
            t0, c0 = time.perf_counter(), time.process_time()
            answers[extra_seq] = sequential_predict(model, tasks, a.seq_len, a.votes)
            times[extra_seq].append(time.perf_counter() - t0)
            cpu[extra_seq].append(time.process_time() - c0)
        torch.set_num_threads(a.batched_threads or a.threads)
        for key, rank, amp in variants:
            t0, c0 = time.perf_counter(), time.process_time()
            preds = predict(
                model, tasks, seq_len=a.seq_len, cfg=EvalConfig(votes=a.votes, rank=rank, amp=amp)
            )
            times[key].append(time.perf_counter() - t0)
            cpu[key].append(time.process_time() - c0)
            answers[key] = [p["ranked"][:2] for ps in preds for p in ps]
        load.append(round(os.getloadavg()[0], 2))
    truth = [p.output for t in tasks for p in t.test]

    def correct(key: str) -> int:
        return sum(any(np.array_equal(g, y) for g in att) for att, y in zip(answers[key], truth, strict=True))

    def same(x: list[Grid], y: list[Grid]) -> bool:
        return len(x) == len(y) and all(np.array_equal(g, h) for g, h in zip(x, y, strict=True))

    best = {k: min(v) for k, v in times.items()}
    out = {
        "checkpoint_params": sum(p.numel() for p in model.parameters()),
        "model": config["model"],
        "checkpoint_step": config.get("step"),
        "tasks": len(tasks),
        "test_inputs": inputs,
        "votes": a.votes,
        "threads": a.threads,
        "batched_threads": a.batched_threads or a.threads,
        "repeats": a.repeats,
        "load_average_1min": load,
        "wall_s": round(time.perf_counter() - started, 1),
        "seconds": times,
        "test_inputs_per_s": {k: round(inputs / v, 3) for k, v in best.items()},
        "speedup_vs_sequential": {k: round(best["sequential"] / v, 2) for k, v in best.items()},
        "cpu_seconds": cpu,
        "speedup_vs_sequential_cpu": {k: round(min(cpu["sequential"]) / min(v), 2) for k, v in cpu.items()},
        "pass@2": {k: round(correct(k) / inputs, 4) for k in answers},
        # test inputs whose two attempts are those of the sequential evaluator (votes ranking: the same
        # greedy decodes and the same vote; poe: re-ranked on purpose)
        "same_attempts_as_sequential": {
            k: round(
                sum(same(x, y) for x, y in zip(answers[k], answers["sequential"], strict=True)) / inputs, 4
            )
            for k in answers
        },
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_name(f".{a.out.name}.tmp")
    tmp_out.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp_out, a.out)
    print(json.dumps({k: out[k] for k in ("test_inputs_per_s", "speedup_vs_sequential", "pass@2")}))
    return out


if __name__ == "__main__":
    main()
