"""Trainer throughput and packing utilization on ARC-AGI-1 (CPU; GPU figures when CUDA is present).

    python benchmarks/bench_train.py [--steps 20] [--seq-len 2048] [--batch-size 4] [--rope-compare 0]

Measures, in one run on the same shards (built from ../shared/arc-sources ARC-AGI-1 with
``tasks_to_table`` + ``shard_writer.write_shards``):

1. token utilization of packed rows vs the HRM/TRM scheme (every grid padded to 30x30 = 900 tokens);
2. the loader alone (shards -> tasks -> augmentation -> tokens -> packed batches), tokens/s;
3. one optimizer step alone on pre-loaded batches, tokens/s (and MFU when on CUDA);
4. the whole path (``arcforge.train.loop.train``: shards -> loader -> step), tokens/s;
5. optionally (``--rope-compare N``) the training loss after N steps for each RoPE mode.

Ratios (loader / step) are what matter; absolute numbers depend on the machine and its load.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge.build import shard_writer
from arcforge.task import Task, parse_task_object, tasks_to_table
from arcforge.train.config import AugmentConfig, DataConfig, ModelConfig, RopeMode, RunConfig, TrainConfig
from arcforge.train.data import PackedBatches
from arcforge.train.loop import Trainer, train
from arcforge.train.model import mfu
from arcforge.train.pack import pack
from arcforge.train.tokenize import encode_task, padded_30x30_tokens

ROOT = Path(__file__).resolve().parent.parent
ARC1 = ROOT.parent / "shared" / "arc-sources" / "fchollet" / "ARC-AGI" / "data"
H100_BF16_PEAK = 989e12


def load_tasks() -> list[Task]:
    out = []
    for split in ("training", "evaluation"):
        for f in sorted((ARC1 / split).glob("*.json")):
            train_, test, _ = parse_task_object(json.loads(f.read_text()))
            out.append(
                Task(
                    id=f"arc_agi_1/data/{split}/{f.stem}",
                    source="arc_agi_1",
                    split=split,
                    train=train_,
                    test=test,
                )
            )
    return out


def utilization(tasks: list[Task], seq_len: int) -> dict:
    """Packing of every (task, test input) of a split, no augmentation."""
    exs, dropped, truncated = [], 0, 0
    for t in tasks:
        for k in range(len(t.test)):
            full = encode_task(t, k, loss_on="test")
            ex = encode_task(t, k, max_len=seq_len, loss_on="test")
            if ex is None:
                dropped += 1
                continue
            truncated += ex.n_train < full.n_train
            exs.append(ex)
    rows = pack(exs, seq_len)
    real = sum(r.real_tokens for r in rows)
    cells = sum(int((r.tokens < 10).sum()) for r in rows)
    slots = len(rows) * seq_len
    padded = sum(padded_30x30_tokens(t) for t in tasks)
    all_cells = sum(int(g.size) for t in tasks for g in t.grids())
    return {
        "seq_len": seq_len,
        "examples": len(exs),
        "dropped": dropped,
        "truncated": truncated,
        "rows": len(rows),
        "padding": 1 - real / slots,
        "cell_fraction_packed": cells / slots,
        "cell_fraction_30x30": all_cells / padded,
    }


def bench_loader(cfg: DataConfig, n: int) -> float:
    it = iter(PackedBatches(cfg))
    next(it)  # first chunk (the reader opens its files)
    t0 = time.perf_counter()
    tok = sum(int((next(it)["segments"] > 0).sum()) for _ in range(n))
    return tok / (time.perf_counter() - t0)


# What is timed by default: config's model and context, 4 rows a step, 20 steps
BENCH = RunConfig(data=DataConfig(batch_size=4), train=TrainConfig(max_steps=20))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=BENCH.train.max_steps)
    ap.add_argument("--seq-len", type=int, default=BENCH.data.seq_len)
    ap.add_argument("--batch-size", type=int, default=BENCH.data.batch_size)
    ap.add_argument("--d-model", type=int, default=BENCH.model.d_model)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--rope-compare", type=int, default=0, help="steps per RoPE mode (0 = skip)")
    args = ap.parse_args()
    tasks = load_tasks()
    tmp = Path(tempfile.mkdtemp(prefix="bench_train_"))
    shard_writer.write_shards(tasks_to_table(tasks), tmp / "data")
    report: dict = {
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "threads": torch.get_num_threads(),
    }

    train_tasks = [t for t in tasks if t.split == "training"]
    report["utilization"] = [utilization(train_tasks, L) for L in (2048, 4096, 8192)]

    dcfg = DataConfig(root=str(tmp / "data"), seq_len=args.seq_len, batch_size=args.batch_size)
    report["loader_tokens_per_s"] = bench_loader(dcfg, 4 * args.steps)

    mcfg = ModelConfig(
        d_model=args.d_model,
        n_layers=args.layers,
        n_heads=max(1, args.d_model // 32),
        max_seq_len=args.seq_len,
    )
    tr = Trainer(mcfg, TrainConfig(max_steps=args.steps + 2, warmup_steps=1))
    it = iter(PackedBatches(dcfg))
    batches = [next(it) for _ in range(args.steps + 2)]
    for b in batches[:2]:  # warm-up
        tr.step([b])
    t0 = time.perf_counter()
    tok = 0
    for b in batches[2:]:
        tr.step([b])
        tok += int((b["segments"] > 0).sum())
    report["step_tokens_per_s"] = tok / (time.perf_counter() - t0)
    report["params"] = sum(p.numel() for p in tr.model.parameters())
    if torch.cuda.is_available():
        report["mfu"] = mfu(report["step_tokens_per_s"], mcfg, args.seq_len, H100_BF16_PEAK)

    res = train(
        mcfg,
        dcfg,
        TrainConfig(
            out=str(tmp / "run"),
            max_steps=args.steps,
            warmup_steps=2,
            log_every=args.steps,
            ckpt_every=0,
            tensorboard=False,
            eval_tasks=0,
        ),
    )
    report["whole_path_tokens_per_s"] = res["tokens"] / res["elapsed_s"]
    report["loader_over_step"] = report["loader_tokens_per_s"] / report["step_tokens_per_s"]

    if args.rope_compare:
        report["rope_compare"] = {}
        for mode in (m.value for m in RopeMode):
            m = ModelConfig(
                d_model=args.d_model,
                n_layers=args.layers,
                n_heads=max(1, args.d_model // 32),
                rope_mode=mode,
                max_seq_len=args.seq_len,
            )
            h = train(
                m,
                DataConfig(
                    root=str(tmp / "data"),
                    seq_len=args.seq_len,
                    batch_size=args.batch_size,
                    augment=AugmentConfig(),
                ),
                TrainConfig(
                    out=str(tmp / f"rope-{mode}"),
                    max_steps=args.rope_compare,
                    log_every=10**9,
                    ckpt_every=0,
                    tensorboard=False,
                    eval_tasks=0,
                ),
            )["history"]
            tail = h[-10:]
            report["rope_compare"][mode] = sum(r["loss"] for r in tail) / len(tail)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
