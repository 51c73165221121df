"""Synthetic generation speed, against parsing real ARC tasks in the same run.

Baseline: turning the 400 ARC-AGI-1 training JSON files (bytes already in memory) into fingerprinted
Task records: json parse + validation + fingerprint, the per-task work the build does for a real source.
Measured: ``generate(N)`` per difficulty and per family. Reports microseconds per task and the ratio to
the baseline. Writes benchmarks/results/synthetic.json. Best of ``--repeat`` runs, CPU time (the machine is
shared).

    python benchmarks/bench_synthetic.py [--n 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import arcforge.synthetic as synthetic
from arcforge.task import Task, loads_json, parse_task_object

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "arc-sources" / "fchollet" / "ARC-AGI" / "data" / "training"


def best(fn, repeat: int) -> float:
    """Best-of-``repeat`` CPU seconds of this process (less noisy than wall time on a shared machine;
    generation is single-threaded, so the two agree on an idle machine)."""
    times = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        times.append(time.process_time() - t)
    return min(times)


def baseline_us(repeat: int) -> float | None:
    files = sorted(SHARED.glob("*.json"))
    if not files:
        return None
    blobs = [(f.stem, f.read_bytes()) for f in files]

    def parse() -> None:
        for key, data in blobs:
            train, test, extra = parse_task_object(loads_json(data, key))
            _ = Task(id=key, source="arc", split="training", train=train, test=test, extra=extra).fingerprint

    return best(parse, repeat) / len(blobs) * 1e6


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--per-family", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    base = baseline_us(args.repeat)
    result: dict = {"n": args.n, "baseline_parse_real_task_us": base, "difficulty": {}, "family_us": {}}
    print(
        f"baseline: parse+validate+fingerprint one real ARC-AGI-1 task: {base:.0f} us"
        if base
        else "baseline: ../shared not found, skipped"
    )
    for d in ("easy", "medium", "hard"):
        secs = best(lambda d=d: list(synthetic.generate(args.n, seed=0, difficulty=d)), args.repeat)
        us = secs / args.n * 1e6
        result["difficulty"][d] = {
            "seconds": secs,
            "us_per_task": us,
            "tasks_per_s": args.n / secs,
            "ratio_to_baseline": us / base if base else None,
        }
        ratio = f", {us / base:.2f}x baseline" if base else ""
        print(f"generate({args.n}, difficulty={d}): {secs:.2f} s, {us:.0f} us/task{ratio}")
    for fam in synthetic.families():
        secs = best(
            lambda f=fam: list(synthetic.generate(args.per_family, seed=0, families=[f])), args.repeat
        )
        result["family_us"][fam] = secs / args.per_family * 1e6
    slow = sorted(result["family_us"].items(), key=lambda kv: -kv[1])
    print("per family (medium), us/task:", ", ".join(f"{k} {v:.0f}" for k, v in slow))
    out = HERE / "results" / "synthetic.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
