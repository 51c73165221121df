"""Evaluation with test-time training: tasks fine-tuned one at a time vs several at once, same run.

    python benchmarks/bench_ttt.py --checkpoint RUN [--tasks 40] [--threads 2] [--repeats 2]
    python benchmarks/bench_ttt.py                  # trains a small demo-sized model first

Scores ``--tasks`` held-out synthetic easy tasks with the demo's evaluation settings (8 votes, product of
experts, 8 TTT steps of 4 examples on each task as it is, the base model's answer second), three ways:

- ``one_thread``: every task in turn on one torch thread (the demo's scoring before ``ttt.workers``);
- ``threads``: every task in turn on ``--threads`` torch threads;
- ``workers``: ``--threads`` tasks fine-tuned at once (``TTTConfig.workers``), one torch thread each.

Timed alternately (``--repeats`` rounds, best of each), with the load average; the per-task records of every
way must be identical (``same_records``: each task's TTT is seeded by its id). Results:
``benchmarks/results/ttt_workers.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_inference import held_out_tasks, small_checkpoint

from arcforge.demo.run import DemoConfig
from arcforge.train.demo import eval_config
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.runner import load_model

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "ttt_workers.json"


# What is timed by default: the demo's scoring in bf16 on both cores of the 2-core machine
BENCH = replace(DemoConfig().eval_config("bf16"), threads=2)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", type=Path, default=None, help="a run folder (default: train one)")
    ap.add_argument(
        "--train-steps", type=int, default=300, help="steps of the model trained without --checkpoint"
    )
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--threads", type=int, default=BENCH.threads)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--amp", default=BENCH.amp.value, choices=["bf16", "off"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_ttt_") as tmp:
        ckpt = a.checkpoint or small_checkpoint(Path(tmp), a.train_steps)
        model, config = load_model(ckpt, "cpu")
    tasks = held_out_tasks(a.tasks)
    seq_len = DemoConfig().seq_len
    ways = {"one_thread": (1, 1), "threads": (a.threads, 1), "workers": (a.threads, a.threads)}
    times: dict[str, list[float]] = {k: [] for k in ways}
    records: dict[str, list] = {}
    metrics: dict[str, dict] = {}
    load = [round(os.getloadavg()[0], 2)]
    started = time.perf_counter()
    for _ in range(a.repeats):
        for key, (threads, workers) in ways.items():
            torch.set_num_threads(threads)
            t0 = time.perf_counter()
            res = evaluate_tasks(
                model,
                tasks,
                seq_len=seq_len,
                device=torch.device("cpu"),
                cfg=eval_config(DemoConfig(), a.amp, workers),
            )
            times[key].append(time.perf_counter() - t0)
            records[key], metrics[key] = res.per_task, res.metrics
        load.append(round(os.getloadavg()[0], 2))
    best = {k: min(v) for k, v in times.items()}
    out = {
        "checkpoint_step": config.get("step"),
        "tasks": len(tasks),
        "threads": a.threads,
        "amp": a.amp,
        "repeats": a.repeats,
        "load_average_1min": load,
        "wall_s": round(time.perf_counter() - started, 1),
        "eval_config": eval_config(DemoConfig(), a.amp, a.threads).to_dict(),
        "seconds": times,
        "tasks_per_s": {k: round(len(tasks) / v, 3) for k, v in best.items()},
        "speedup_vs_one_thread": {k: round(best["one_thread"] / v, 2) for k, v in best.items()},
        "pass@2": {k: round(m["pass@2"], 4) for k, m in metrics.items()},
        "pass@2_before": {k: round(m["pass@2_before"], 4) for k, m in metrics.items()},
        "same_records": {k: records[k] == records["one_thread"] for k in records},
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_name(f".{a.out.name}.tmp")
    tmp_out.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp_out, a.out)
    print(json.dumps({k: out[k] for k in ("tasks_per_s", "speedup_vs_one_thread", "pass@2", "same_records")}))
    return out


if __name__ == "__main__":
    main()
