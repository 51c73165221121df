"""CPU bf16 autocast (``arcforge train --amp bf16``) vs fp32: one optimizer step of the trainer's model.

    python benchmarks/bench_amp.py [--threads 1] [--seq-len 384] [--batch-size 8] [--repeats 5]

For each d_model (128, 256) the two modes alternate (fp32, bf16, fp32, bf16, ...) on the same packed-like
batch, so both see the same machine load; the median step time of each and their ratio go to
``benchmarks/results/amp_cpu.json``. Worth it only on CPUs with AMX or AVX512-BF16 (the script records
whether oneDNN reports bf16 support).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge.demo.run import DEMO_RUN
from arcforge.train.config import ModelConfig
from arcforge.train.device import autocast_for
from arcforge.train.loop import token_loss_sum
from arcforge.train.model import ArcTransformer

OUT = Path(__file__).resolve().parent / "results" / "amp_cpu.json"


def batch(b: int, t: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    seg = (torch.arange(t) >= t // 2).long().expand(b, t).contiguous()  # two packed examples per row
    seq = torch.where(seg == 0, torch.arange(t), torch.arange(t) - t // 2).expand(b, t)
    rc = torch.randint(0, 7, (b, t, 2), generator=g)
    return {
        "tokens": torch.randint(0, 18, (b, t), generator=g),
        "positions": torch.cat([seq[..., None], rc], -1),
        "segments": seg,
        "targets": torch.ones(b, t, dtype=torch.bool),
    }


# What is timed by default: the demo's training batch (config's batch size, the demo's seq_len) on one thread
BENCH = DEMO_RUN.with_values({"train.threads": 1})


def step_time(model: ArcTransformer, opt: torch.optim.Optimizer, b: dict, amp: str) -> float:
    t0 = time.perf_counter()
    with autocast_for(torch.device("cpu"), amp):
        loss, n = token_loss_sum(model, b, torch.device("cpu"))
    opt.zero_grad(set_to_none=True)
    (loss / n).backward()
    opt.step()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=BENCH.train.threads)
    ap.add_argument("--seq-len", type=int, default=BENCH.data.seq_len)
    ap.add_argument("--batch-size", type=int, default=BENCH.data.batch_size)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    b = batch(a.batch_size, a.seq_len)
    rows = []
    for d in (128, 256):
        model = ArcTransformer(ModelConfig(d_model=d, n_layers=3, n_heads=4, max_seq_len=a.seq_len))
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        times: dict[str, list[float]] = {"off": [], "bf16": []}
        for amp in ("off", "bf16"):  # warm-up (oneDNN picks its kernels on the first calls)
            step_time(model, opt, b, amp)
        for _ in range(a.repeats):
            for amp in ("off", "bf16"):
                times[amp].append(step_time(model, opt, b, amp))
        fp32, bf16 = statistics.median(times["off"]), statistics.median(times["bf16"])
        rows.append(
            {
                "d_model": d,
                "fp32_step_s": round(fp32, 4),
                "bf16_step_s": round(bf16, 4),
                "speedup": round(fp32 / bf16, 2),
            }
        )
        print(rows[-1], flush=True)
    report = {
        "benchmark": "amp_cpu",
        "threads": a.threads,
        "seq_len": a.seq_len,
        "batch_size": a.batch_size,
        "layers": 3,
        "repeats": a.repeats,
        "cpu_bf16_supported": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "torch": torch.__version__,
        "rows": rows,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
