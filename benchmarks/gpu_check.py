"""GPU readiness check, one command (< 5 min on one GPU):

    python benchmarks/gpu_check.py                       # CUDA: ~25M model, bf16, compile, flex_attention
    python benchmarks/gpu_check.py --eval-tasks 400      # all of ARC-AGI-1 evaluation
    python benchmarks/gpu_check.py --device cpu --tiny   # the same path in seconds on CPU (CI runs this)
    python benchmarks/gpu_check.py --device cuda --data-value   # the data ablation, arms 1-3, < 12 min

With ``--data-value`` it runs ``bench_data_value.py``'s ``cuda`` profile instead (a larger model on arms
``arc1_training``, ``corpus``, ``corpus_contaminated``; ``benchmarks/results/data_value_cuda.json``).
Otherwise:

1. builds shards of ARC-AGI-1 (training + evaluation) from ../shared/arc-sources into a temporary folder;
2. trains the ~25M-parameter config (d_model 512, 8 layers) for ``--steps`` steps through the real
   trainer (``arcforge.train.loop.train``: shard reader, packing, bf16 autocast and ``torch.compile`` on
   CUDA, flex_attention for the packed rows), and reports tokens/s (measured over the second half of the
   run, after compilation) and MFU against the device's bf16 peak;
3. evaluates the ``--eval-tasks`` smallest ARC-AGI-1 evaluation tasks with voting and test-time training
   (before/after per task);
4. writes everything to ``benchmarks/results/gpu_check.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge.build import shard_writer
from arcforge.task import Task, parse_task_object, tasks_to_table
from arcforge.train.config import DataConfig, EvalConfig, ModelConfig, RunConfig, TrainConfig, TTTConfig
from arcforge.train.device import pick_device
from arcforge.train.evaluate import evaluate_tasks
from arcforge.train.loop import train
from arcforge.train.model import flops_per_token, mfu, n_params
from arcforge.train.runner import load_model
from arcforge.train.tokenize import example_length

ROOT = Path(__file__).resolve().parent.parent
ARC1 = ROOT.parent / "shared" / "arc-sources" / "fchollet" / "ARC-AGI" / "data"
RESULTS = ROOT / "benchmarks" / "results" / "gpu_check.json"
DATA_VALUE = ROOT / "benchmarks" / "results" / "data_value_cuda.json"
# What the check runs by default: config's run with 16 rows a step (one GPU); config's votes, 16 TTT
# steps at lr 1e-4
GPU_RUN = RunConfig(data=DataConfig(batch_size=16))
GPU_EVAL = EvalConfig(ttt=TTTConfig(steps=16, lr=1e-4))
# dense bf16 peaks (FLOP/s) by device name substring; --peak-tflops overrides
PEAKS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "A10G": 125e12, "4090": 165e12}


def load_split(root: Path, split: str) -> list[Task]:
    out = []
    for f in sorted((root / split).glob("*.json")):
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


def task_tokens(t: Task) -> int:
    """Tokens of the task's longest example (all train pairs, one test input and its output)."""
    pairs = [(p.input, p.output) for p in t.train]
    return max(example_length(pairs, p.input, p.output) for p in t.test)


def smallest(tasks: list[Task], n: int) -> list[Task]:
    return sorted(tasks, key=lambda t: (task_tokens(t), t.id))[:n]


def peak_flops(device: torch.device, override: float) -> float | None:
    if override:
        return override * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAKS.items() if k in name), None)


def main(argv: list[str] | None = None) -> dict:
    threads = torch.get_num_threads()
    try:
        return _main(argv)
    finally:
        torch.set_num_threads(threads)


def _main(argv: list[str] | None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default=GPU_RUN.train.device, help="auto | cpu | cuda | cuda:N")
    ap.add_argument("--tiny", action="store_true", help="a tiny model and a few steps (CPU smoke run)")
    ap.add_argument("--steps", type=int, default=GPU_RUN.train.max_steps)
    ap.add_argument("--seq-len", type=int, default=GPU_RUN.data.seq_len)
    ap.add_argument("--batch-size", type=int, default=GPU_RUN.data.batch_size, help="packed rows per step")
    ap.add_argument("--eval-tasks", type=int, default=20, help="smallest ARC-AGI-1 evaluation tasks scored")
    ap.add_argument("--votes", type=int, default=GPU_EVAL.votes)
    ap.add_argument("--ttt-steps", type=int, default=GPU_EVAL.ttt.steps)
    ap.add_argument("--ttt-lr", type=float, default=GPU_EVAL.ttt.lr)
    ap.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="torch.compile the model (default: on CUDA)",
    )
    ap.add_argument(
        "--peak-tflops", type=float, default=0.0, help="device bf16 peak for MFU (default: known GPUs)"
    )
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--arc-dir", type=Path, default=ARC1)
    ap.add_argument(
        "--out", type=Path, default=None, help=f"default {RESULTS.name} (--data-value: {DATA_VALUE.name})"
    )
    ap.add_argument("--data-value", action="store_true", help="the data ablation's cuda profile (arms 1-3)")
    a = ap.parse_args(argv)
    if a.data_value:
        from benchmarks import bench_data_value  # imports this module

        return bench_data_value.main(
            [
                "--profile",
                "tiny" if a.tiny else "cuda",
                "--device",
                a.device,
                "--mirror",
                str(a.arc_dir.parents[2]),
                "--out",
                str(a.out or DATA_VALUE),
            ]
        )
    a.out = a.out or RESULTS

    device = pick_device(a.device)
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.tiny:
        mcfg = ModelConfig(d_model=32, n_layers=1, n_heads=2, max_seq_len=512)
        a.steps, a.seq_len, a.batch_size = min(a.steps, 4), 512, 2
        a.eval_tasks, a.votes, a.ttt_steps = min(a.eval_tasks, 2), min(a.votes, 2), min(a.ttt_steps, 1)
    else:
        mcfg = ModelConfig(d_model=512, n_layers=8, n_heads=8, max_seq_len=a.seq_len)
    compile_ = device.type == "cuda" if a.compile is None else a.compile
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        data = Path(tmp) / "data"
        tasks = load_split(a.arc_dir, "training") + load_split(a.arc_dir, "evaluation")
        shard_writer.write_shards(tasks_to_table(tasks), data)
        dcfg = DataConfig(
            root=str(data), splits=["training"], seq_len=a.seq_len, batch_size=a.batch_size, loss_on="outputs"
        )
        log_every = max(1, a.steps // 10)
        tcfg = TrainConfig(
            out=str(Path(tmp) / "run"),
            max_steps=a.steps,
            lr=3e-4,
            warmup_steps=max(1, a.steps // 10),
            log_every=log_every,
            ckpt_every=a.steps,
            eval_every=0,
            eval_tasks=0,
            device=str(device),
            compile=compile_,
            amp="auto",
            tensorboard=False,
        )
        logs: list[dict] = []
        res = train(mcfg, dcfg, tcfg, on_log=logs.append)
        steps_logged = [r for r in logs if "tokens_per_s" in r]
        mid = steps_logged[len(steps_logged) // 2 - 1] if len(steps_logged) >= 2 else None
        end = steps_logged[-1]
        if mid is not None and end["elapsed_s"] > mid["elapsed_s"]:
            tok_s = (end["tokens"] - mid["tokens"]) / (end["elapsed_s"] - mid["elapsed_s"])
            s_step = (end["elapsed_s"] - mid["elapsed_s"]) / (end["step"] - mid["step"])
        else:
            tok_s, s_step = end["tokens_per_s"], end["elapsed_s"] / max(1, end["step"])
        peak = peak_flops(device, a.peak_tflops)
        model, _ = load_model(Path(tmp) / "run", str(device))
        evals = smallest(load_split(a.arc_dir, "evaluation"), a.eval_tasks)
        ecfg = EvalConfig(
            votes=a.votes,
            ttt=TTTConfig(steps=a.ttt_steps, lr=a.ttt_lr),
            **({"max_new": 64} if a.tiny else {}),
        )  # an untrained tiny model rarely stops
        t0 = time.perf_counter()
        ev = evaluate_tasks(model, evals, seq_len=a.seq_len, device=device, cfg=ecfg)
        eval_s = time.perf_counter() - t0
    out = {
        "device": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or "cpu",
        "device_type": device.type,
        "torch": torch.__version__,
        "tiny": a.tiny,
        "compile": compile_,
        "flex_attention": device.type == "cuda" and os.environ.get("ARCFORGE_FLEX") != "0",
        "amp": "bf16" if device.type == "cuda" else "off",
        "model": mcfg.to_dict(),
        "params": n_params(mcfg),
        "steps": res["steps"],
        "seq_len": a.seq_len,
        "batch_size": a.batch_size,
        "train_s": round(res["elapsed_s"], 2),
        "tokens_per_s": round(tok_s, 1),
        "s_per_step": round(s_step, 4),
        "flops_per_token": flops_per_token(mcfg, a.seq_len),
        "peak_flops": peak,
        "mfu": round(mfu(tok_s, mcfg, a.seq_len, peak), 4) if peak else None,
        "loss_first": logs[0].get("loss") if logs else None,
        "loss_last": end.get("loss"),
        "eval": {
            "tasks": len(evals),
            "config": ecfg.to_dict(),
            "seconds": round(eval_s, 2),
            "test_inputs_per_s": round(ev.metrics["test_inputs"] / max(eval_s, 1e-9), 3),
            **ev.metrics,
        },
        "per_task": ev.per_task,
        "total_s": round(time.perf_counter() - t_start, 2),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = a.out.with_name(f".{a.out.name}.tmp")
    tmp_out.write_text(json.dumps(out, indent=1) + "\n")
    os.replace(tmp_out, a.out)
    m = out["eval"]
    print(
        f"{out['device']}: {out['params']:,} params, {tok_s:,.0f} tokens/s, {s_step * 1e3:.1f} ms/step, "
        f"MFU {out['mfu'] if out['mfu'] is not None else 'n/a'}; eval {m['tasks']} tasks "
        f"pass@2 {m['pass@2']:.3f} (before TTT {m.get('pass@2_before', m['pass@2']):.3f}) in {eval_s:.0f}s "
        f"-> {a.out}"
    )
    return out


if __name__ == "__main__":
    main()
