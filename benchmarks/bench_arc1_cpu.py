"""ARC-AGI-1 on a CPU at the demo's budget: the ``--tasks`` smallest evaluation tasks, scored by a trained run
(default: the one ``make demo`` wrote) with the demo's voting and test-time training settings.

    python benchmarks/bench_arc1_cpu.py [--run demo-output/run] [--tasks 40]

Smallest = by the tokens of a task's longest example (``gpu_check.smallest``). The tasks come from the
ARC-AGI-1 mirror in ``../shared/arc-sources`` (``--arc-dir``). Results:
``benchmarks/results/arc1_smallest40_cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge.demo.run import DemoConfig
from arcforge.train.demo import eval_config
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.runner import load_model
from benchmarks.gpu_check import ARC1, load_split, smallest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "arc1_smallest40_cpu.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run", type=Path, default=ROOT / "demo-output" / "run")
    ap.add_argument("--tasks", type=int, default=40)
    ap.add_argument("--arc-dir", type=Path, default=ARC1)
    ap.add_argument("--out", type=Path, default=RESULTS)
    a = ap.parse_args(argv)
    demo = DemoConfig()
    torch.set_num_threads(demo.eval_threads or torch.get_num_threads())
    model, _ = load_model(a.run, "cpu")
    tasks = smallest(load_split(a.arc_dir, "evaluation"), a.tasks)
    cfg = eval_config(demo, "auto")  # bf16 where the CPU runs it faster
    t0, c0 = time.perf_counter(), time.process_time()
    res = evaluate_tasks(model, tasks, seq_len=model.cfg.max_seq_len, device=torch.device("cpu"), cfg=cfg)
    out = {
        "checkpoint": "the `make demo` model (synthetic easy families only)",
        "model": model.cfg.to_dict(),
        "tasks": len(tasks),
        "selection": "smallest by tokens of the longest example",
        "eval_config": cfg.to_dict(),
        "wall_s": round(time.perf_counter() - t0, 1),
        "cpu_s": round(time.process_time() - c0, 1),
        "threads": torch.get_num_threads(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "metrics": res.metrics,
        "per_task": res.per_task,
    }
    a.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
    m = res.metrics
    print(
        f"{len(tasks)} tasks, {m.get('test_inputs')} test inputs: pass@2 {m.get('pass@2', 0):.1%} with TTT, "
        f"{m.get('pass@2_before', 0):.1%} without; token accuracy {m.get('token_accuracy', 0):.2f} "
        f"({out['wall_s']} s) -> {a.out}"
    )
    return out


if __name__ == "__main__":
    main()
