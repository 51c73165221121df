"""What the corpus is worth on real ARC: the same model, token budget, seed, augmentation and sampling trained
on each arm's data, scored on the same held-out ARC tasks.

    python benchmarks/bench_data_value.py                  # the CPU profile (1 thread), every arm, 2 seeds
    python benchmarks/bench_data_value.py --tiny           # seconds: the same path (CI runs this)
    python benchmarks/bench_data_value.py --profile cuda --device cuda   # arms 1-3 at a larger size

Arms (``data_value_arms.py``): ``arc1_training`` (ARC-AGI-1 training only), ``corpus`` (``build
--exclude-eval`` of every mirrored source), ``corpus_contaminated`` (the same without ``--exclude-eval``,
contaminated on purpose), ``corpus_no_frames`` (``corpus`` with the frame features off) and
``corpus_generated`` (``corpus`` plus the tasks RE-ARC's and BARC's programs generate, the profile's
``generate``); on request, ``corpus_no_tama`` and ``corpus_sample`` (checks of the mix and of repetition).
Each run is scored on:

- all 400 ARC-AGI-1 evaluation tasks: teacher-forced accuracy on the test-output tokens;
- the 100 smallest ARC-AGI-1 evaluation tasks: pass@2 with voting, without and with test-time training;
- the 120 ARC-AGI-2 evaluation tasks: teacher-forced accuracy on the test-output tokens.

Results go to ``benchmarks/results/data_value.json`` after every run (partial results survive); ``--resume``
skips the runs already there.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout

from arcforge.demo.run import DEMO_EVAL
from arcforge.task import Task
from arcforge.train.config import (
    MAX_NEW_TOKENS,
    Amp,
    DataConfig,
    EvalConfig,
    ModelConfig,
    TrainConfig,
    TTTConfig,
)
from arcforge.train.device import pick_device
from arcforge.train.evaluate import evaluate_tasks, token_accuracy
from arcforge.train.loop import train
from arcforge.train.runner import load_model
from arcforge.train.tokenize import encode_task
from benchmarks import data_value_arms as dv
from benchmarks import data_value_tables as dvt
from benchmarks.gpu_check import load_split, smallest

RESULTS = dv.ROOT / "benchmarks" / "results" / "data_value.json"
METRICS = (
    "arc1_eval_token_accuracy",
    "arc1_small100_pass2",
    "arc1_small100_pass2_ttt",
    "arc2_eval_token_accuracy",
)


@dataclass(frozen=True)
class Profile:
    """Model, budget and scoring of one profile; every arm of a profile gets exactly these."""

    d_model: int
    n_layers: int
    n_heads: int
    seq_len: int
    batch_size: int  # packed rows per step
    steps: int
    lr: float
    seeds: tuple[int, ...]
    arms: tuple[str, ...]  # run in this order, seed by seed; corpus_no_frames after the others
    arc1_tasks: int = 400  # ARC-AGI-1 evaluation tasks scored teacher-forced (0: all)
    small_tasks: int = 100  # smallest ARC-AGI-1 evaluation tasks scored by pass@2
    arc2_tasks: int = 120
    votes: int = EvalConfig.votes
    ttt_steps: int = DEMO_EVAL.ttt.steps  # the demo's test-time training
    ttt_lr: float = DEMO_EVAL.ttt.lr
    ttt_batch_size: int = DEMO_EVAL.ttt.batch_size
    max_new: int = MAX_NEW_TOKENS
    generate: tuple[tuple[str, int], ...] = ()  # ``build --generate SOURCE=N`` for corpus_generated
    build_workers: int | None = 1  # build processes (None: every CPU; the shards are the same)
    amp: Amp = Amp.off  # fp32 on the CPU for every arm (``auto`` lets a load-dependent probe pick bf16)


# Where the arms train by default: config's run on the CPU, one thread
BENCH = TrainConfig(device="cpu", threads=1)
FIRST3 = ("arc1_training", "corpus", "corpus_contaminated")
PROFILES = {
    "tiny": Profile(
        d_model=32,
        n_layers=1,
        n_heads=2,
        seq_len=512,
        batch_size=2,
        steps=2,
        lr=1e-3,
        seeds=(0,),
        arms=dv.ARMS,
        arc1_tasks=6,
        small_tasks=3,
        arc2_tasks=3,
        votes=2,
        ttt_steps=1,
        max_new=64,
    ),
    # one CPU thread, a few minutes per arm: far below a useful budget, see docs/data_value.md
    "cpu": Profile(
        d_model=64,
        n_layers=2,
        n_heads=2,
        seq_len=2048,
        batch_size=2,
        steps=200,
        lr=2e-3,
        seeds=(0, 1),
        arms=(*FIRST3, "corpus_no_frames", "corpus_generated"),
        votes=2,
        ttt_steps=2,
        # 2 tasks per RE-ARC generator (400), 5 per BARC seed (162): about as many tasks of each
        generate=(("re_arc", 8), ("barc", 20)),
    ),
    # one H100, arms 1-3 within 12 minutes (`benchmarks/gpu_check.py --device cuda --data-value`; not yet run)
    "cuda": Profile(
        d_model=256,
        n_layers=6,
        n_heads=8,
        seq_len=2048,
        batch_size=16,
        steps=400,
        lr=1e-3,
        seeds=(0,),
        arms=FIRST3,
        votes=8,
        ttt_steps=8,
        build_workers=None,
        amp=Amp.auto,
    ),
}


def held_out(p: Profile, mirror: Path) -> dict[str, list[Task]]:
    e1 = load_split(mirror / dv.ARC1, "evaluation")
    return {
        "arc1": e1[: p.arc1_tasks or None],
        "small": smallest(e1, p.small_tasks),
        "arc2": load_split(mirror / dv.ARC2, "evaluation")[: p.arc2_tasks or None],
    }


def teacher_forced(model, tasks: list[Task], seq_len: int, device: torch.device) -> dict:
    """Accuracy on the test-output tokens of every test pair that fits ``seq_len`` (train pairs are dropped
    from the end until it does); the pairs that cannot fit are counted."""
    exs = [encode_task(t, k, max_len=seq_len, loss_on="test") for t in tasks for k in range(len(t.test))]
    fit = [e for e in exs if e is not None]
    acc, loss = token_accuracy(model, fit, seq_len, device, batch_size=4) if fit else (0.0, 0.0)
    return {
        "accuracy": round(acc, 4),
        "loss": round(loss, 4),
        "scored": len(fit),
        "too_long": len(exs) - len(fit),
    }


def score(model, p: Profile, sets: dict, device: torch.device, bf16: bool) -> dict:
    t0 = time.perf_counter()
    a1 = teacher_forced(model, sets["arc1"], p.seq_len, device)
    a2 = teacher_forced(model, sets["arc2"], p.seq_len, device)
    # the demo's recipe: TTT on the task as it is, the base model's answer as the second attempt
    ecfg = EvalConfig(
        votes=p.votes,
        max_new=p.max_new,
        amp="bf16" if bf16 else "off",
        ttt=TTTConfig(
            steps=p.ttt_steps,
            lr=p.ttt_lr,
            batch_size=p.ttt_batch_size,
            symmetries=False,
            colors=False,
            workers=1,
        ),
    )
    ev = evaluate_tasks(model, sets["small"], seq_len=p.seq_len, device=device, cfg=ecfg).metrics
    return {
        "arc1_eval_token_accuracy": a1["accuracy"],
        "arc1_small100_pass2": round(ev["pass@2_before"], 4),
        "arc1_small100_pass2_ttt": round(ev["pass@2"], 4),
        "arc2_eval_token_accuracy": a2["accuracy"],
        "arc1_eval": a1,
        "arc2_eval": a2,
        "small": {
            "test_inputs": ev["test_inputs"],
            "scored": ev["scored"],
            "exact_ttt": round(ev["exact_match"], 4),
        },
        "score_s": round(time.perf_counter() - t0, 1),
    }


def run_one(
    arm: dv.Arm, seed: int, p: Profile, built: dict, sets: dict, device: torch.device, work: Path
) -> dict:
    run_dir = work / f"run-{arm.name}-{seed}"
    mcfg = ModelConfig(
        d_model=p.d_model, n_layers=p.n_layers, n_heads=p.n_heads, max_seq_len=p.seq_len, **arm.model
    )
    dcfg = DataConfig(
        root=str(built[arm.build]["path"]),
        sources=arm.sources,
        splits=arm.splits,
        seq_len=p.seq_len,
        batch_size=p.batch_size,
        loss_on="outputs",
        seed=seed,
    )
    tcfg = TrainConfig(
        out=str(run_dir),
        max_steps=p.steps,
        lr=p.lr,
        warmup_steps=max(1, p.steps // 20),
        log_every=max(1, p.steps // 10),
        ckpt_every=p.steps,
        eval_every=0,
        eval_tasks=0,
        device=str(device),
        threads=torch.get_num_threads() if device.type == "cpu" else 0,
        seed=seed,
        tensorboard=False,
        compile=device.type == "cuda",
        amp=p.amp,
    )
    res = train(
        mcfg,
        dcfg,
        tcfg,
        overwrite=True,
        on_log=lambda r: print(
            f"  {arm.name} seed {seed}: step {r['step']}/{p.steps} loss {r.get('loss', 0):.3f} "
            f"{r.get('tokens_per_s', 0):,.0f} tokens/s",
            flush=True,
        ),
    )
    print(f"  {arm.name} seed {seed}: scoring", flush=True)
    losses = [h["loss"] for h in res["history"]]
    model, _ = load_model(run_dir, str(device))
    rec = {
        "seed": seed,
        "train_tokens": res["tokens"],
        "steps": res["steps"],
        "train_s": round(res["elapsed_s"], 1),
        "s_per_step": round(res["elapsed_s"] / max(1, res["steps"]), 3),
        "bf16": res["bf16"],
        "threads": res["threads"],
        "loss_first": round(losses[0], 4),
        "loss_last10": round(statistics.fmean(losses[-10:]), 4),
        "train_examples": {"seen": res["examples"], "truncated": res["truncated"], "dropped": res["dropped"]},
    }
    rec.update(score(model, p, sets, device, res["bf16"]))
    return rec


def summary(arms: dict[str, list[dict]]) -> dict:
    """Per arm and metric: mean over seeds and spread (max - min)."""
    out = {}
    for name, runs in arms.items():
        out[name] = {
            m: {
                "mean": round(statistics.fmean(r[m] for r in runs), 4),
                "spread": round(max(r[m] for r in runs) - min(r[m] for r in runs), 4),
            }
            for m in METRICS
        }
        out[name]["seeds"] = len(runs)
    return out


def write(out: Path, doc: dict) -> None:
    """The results and their plot (``data_value_tables.plot``, beside them), each atomically replaced."""
    doc["summary"] = summary(doc["arms"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str) + "\n")
    os.replace(tmp, out)
    png = out.with_suffix(".png")
    os.replace(dvt.plot(doc, png.with_name(f".{png.stem}.tmp.png")), png)


def plan(p: Profile, names: set[str]) -> list[tuple[str, int]]:
    """(arm, seed) of the arms in ``names``: the first three arms seed by seed, then the rest seed by seed."""
    order = [*p.arms, *(a for a in dv.EXTRA_ARMS if a not in p.arms)]
    first = [a for a in order if a in FIRST3 and a in names]
    rest = [a for a in order if a not in FIRST3 and a in names]
    return [(a, s) for s in p.seeds for a in first] + [(a, s) for a in rest for s in p.seeds]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="cpu")
    ap.add_argument("--tiny", action="store_true", help="= --profile tiny")
    ap.add_argument("--device", default=BENCH.device, help="cpu | cuda | cuda:N")
    ap.add_argument("--threads", type=int, default=BENCH.threads, help="torch CPU threads")
    ap.add_argument("--steps", type=int, default=None, help="override the profile's training steps")
    ap.add_argument("--seeds", default="", help="comma list: run these seeds instead of the profile's")
    ap.add_argument(
        "--arms",
        default="",
        help=f"comma list: run these arms instead of the profile's ({', '.join(dv.ARMS + dv.EXTRA_ARMS)})",
    )
    ap.add_argument("--mirror", type=Path, default=dv.MIRROR, help="the offline mirror of every source")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--resume", action="store_true", help="keep the runs already in --out, run the rest")
    a = ap.parse_args(argv)
    p = PROFILES["tiny" if a.tiny else a.profile]
    if a.steps:
        p = replace(p, steps=a.steps)
    if a.seeds:
        p = replace(p, seeds=tuple(int(x) for x in a.seeds.split(",") if x))
    a.arms = tuple(x for x in a.arms.split(",") if x) or p.arms
    if bad := [x for x in a.arms if x not in dv.ARMS + dv.EXTRA_ARMS]:
        ap.error(f"unknown arm(s) {', '.join(bad)}")
    threads = torch.get_num_threads()
    torch.set_num_threads(a.threads)
    try:
        with tempfile.TemporaryDirectory(prefix="data_value_") as tmp:
            return _run(p, "tiny" if a.tiny else a.profile, pick_device(a.device), a, Path(tmp))
    finally:
        torch.set_num_threads(threads)


def _resume(doc: dict, old: dict) -> float:
    """Keep ``old``'s runs, and the data of the arms they trained on (the builds may have changed since)."""
    doc["arms"] = old.get("arms", {})
    for name in doc["arms"]:
        if name in old.get("arm_data", {}):
            doc["arm_data"][name] = old["arm_data"][name]
        doc["not_run"].pop(name, None)
    for key in ("generated", "sample"):
        if key in old and key not in doc:
            doc[key] = old[key]
    return old.get("wall_s", 0.0)


def _run(p: Profile, profile: str, device: torch.device, a: argparse.Namespace, work: Path) -> dict:
    t0, out = time.perf_counter(), a.out
    built = dv.fetch_and_build(
        work, a.mirror, dict(p.generate) if "corpus_generated" in a.arms else None, p.build_workers
    )
    arms, not_run = dv.arms(built, work if "corpus_sample" in a.arms else None)
    by_name = {arm.name: arm for arm in arms}
    for arm in arms:
        arm.length = dv.length_limits(built[arm.build]["path"], arm.sources, arm.splits, p.seq_len)
    sets = held_out(p, a.mirror)
    doc = {
        "profile": profile,
        "config": asdict(p),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "mirror_sources": built["fetched"],
        "contamination_check": dv.contamination_check(built),
        "arm_data": {arm.name: arm.summary() for arm in arms},
        "not_run": not_run,
        "held_out": {k: len(v) for k, v in sets.items()},
        "arms": {},
    }
    doc.update(
        {k: {x: y for x, y in built[k].items() if x != "path"} for k in ("generated", "sample") if k in built}
    )
    doc["shift"] = dv.shift(arms, built, sets)
    wall0 = 0.0
    if a.resume and out.is_file():
        wall0 = _resume(doc, json.loads(out.read_text()))
    doc["wall_s"] = wall0
    for name, seed in plan(p, set(by_name) & set(a.arms)):
        if any(r["seed"] == seed for r in doc["arms"].get(name, [])):
            continue
        rec = run_one(by_name[name], seed, p, built, sets, device, work)
        rec["load_average_1min"] = round(os.getloadavg()[0], 2)
        doc["arms"].setdefault(name, []).append(rec)
        doc["wall_s"] = round(wall0 + time.perf_counter() - t0, 1)
        write(out, doc)
        print(
            f"{name} seed {seed}: {rec['train_tokens']:,} tokens in {rec['train_s']} s; arc1 eval tok acc "
            f"{rec['arc1_eval_token_accuracy']:.4f}, small100 pass@2 {rec['arc1_small100_pass2']:.3f} / TTT "
            f"{rec['arc1_small100_pass2_ttt']:.3f}, arc2 tok acc {rec['arc2_eval_token_accuracy']:.4f} "
            f"(scored in {rec['score_s']} s)",
            flush=True,
        )
    write(out, doc)
    return doc


if __name__ == "__main__":
    main()
