"""What ``--threads 0`` and ``--amp auto`` choose on this machine, against the fixed choices, in one run.

    python benchmarks/bench_machine.py [--seq-len 384] [--batch-size 8] [--repeats 5]

One optimizer step of the default model (``ModelConfig()``) on a packed-like batch of the demo's shape,
for threads in {1, every core} x amp in {off, bf16}, interleaved so that all see the same machine load.
It records the load average, what ``free_cpus()`` and ``--amp auto`` chose, and the step time of that
choice against each fixed one (ratios), in ``benchmarks/results/machine_choice.json``. The baseline is
what the demo did before: one thread per core and bf16 whenever oneDNN reports bf16 support.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_amp import batch, step_time

from arcforge.demo.run import DEMO_RUN
from arcforge.train.config import ModelConfig
from arcforge.train.device import cpu_bf16_auto, free_cpus, native_bf16
from arcforge.train.model import ArcTransformer

OUT = Path(__file__).resolve().parent / "results" / "machine_choice.json"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seq-len", type=int, default=DEMO_RUN.data.seq_len)  # the demo's batch
    ap.add_argument("--batch-size", type=int, default=DEMO_RUN.data.batch_size)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]
    chosen_threads = free_cpus()
    torch.set_num_threads(chosen_threads)
    chosen_amp = "bf16" if cpu_bf16_auto() else "off"
    b = batch(a.batch_size, a.seq_len)
    model = ArcTransformer(ModelConfig(max_seq_len=a.seq_len))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    combos = [(t, amp) for t in sorted({1, cores}) for amp in ("off", "bf16")]
    times: dict[tuple[int, str], list[float]] = {c: [] for c in combos}
    for t, amp in combos:  # warm-up (oneDNN picks its kernels on the first calls)
        torch.set_num_threads(t)
        step_time(model, opt, b, amp)
    for _ in range(a.repeats):
        for t, amp in combos:
            torch.set_num_threads(t)
            times[(t, amp)].append(step_time(model, opt, b, amp))
    med = {c: statistics.median(v) for c, v in times.items()}
    auto = med.get((chosen_threads, chosen_amp))
    baseline_amp = "bf16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "off"
    baseline = med[(cores, baseline_amp)]
    rows = [
        {
            "threads": t,
            "amp": amp,
            "step_s": round(s, 4),
            "auto_speedup_vs_this": round(s / auto, 2) if auto else None,
        }
        for (t, amp), s in med.items()
    ]
    report = {
        "benchmark": "machine_choice",
        "torch": torch.__version__,
        "cores": cores,
        "load_avg_1min_before": round(load_before, 2),
        "load_avg_1min_after": round(os.getloadavg()[0], 2),
        "native_bf16_flags": native_bf16(),
        "auto_threads": chosen_threads,
        "auto_amp": chosen_amp,
        "model": {"d_model": model.cfg.d_model, "n_layers": model.cfg.n_layers, "n_heads": model.cfg.n_heads},
        "seq_len": a.seq_len,
        "batch_size": a.batch_size,
        "repeats": a.repeats,
        "baseline": {"threads": cores, "amp": baseline_amp, "step_s": round(baseline, 4)},
        "auto_step_s": round(auto, 4) if auto else None,
        "auto_speedup_vs_baseline": round(baseline / auto, 2) if auto else None,
        "rows": rows,
    }
    print(json.dumps(report, indent=1))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
