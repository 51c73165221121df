"""Grokfast's modular-arithmetic experiment (Lee et al. 2024, arXiv 2405.20233, after Power et al. 2022).

Setup (the paper's code): ``x * y mod 97`` with x in [0, 97), y in [1, 97); a 50/50 train/val split of the
9,312 equations; sequences ``x op y =`` with the loss on the answer predicted at ``=``; Adam lr 1e-3, betas
(0.9, 0.98), 10-step linear warmup, batch 512 (the paper's Adam ``weight_decay`` is the coupled L2 of
``torch.optim.Adam``).

Model: the trainer's ``arcforge.train.model.ArcTransformer`` (2 layers, width 128, 4 heads) rather than the
paper's post-norm GELU decoder with learned positions: pre-norm RMSNorm, SwiGLU (hidden 384), no biases,
1-D RoPE over the 4 token positions, GPT-2 init, and an untied output head (``tie_embeddings=False``, as
the paper's code: the answer head and the input embedding are separate matrices). Vocab P + 2.

Runs (``default_runs``): baseline (no filter, wd 0), Grokfast-EMA (alpha 0.98, lamb 2, wd 0.005),
Grokfast-MA (window 100, lamb 5, wd 0.01, warmup as in the paper's code), and a control: AdamW with strong
decoupled weight decay (1.0) and no filter. Accuracy on the whole train and val sets every ``eval_every``
steps; steps to 95% / 99% val accuracy are the first eval step at or above the threshold.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from arcforge.errors import TrainError
from arcforge.train.config import GrokfastConfig, ModelConfig
from arcforge.train.grokfast import Grokfast
from arcforge.train.model import ArcTransformer
from experiments.plot import Panel, draw_panels

P = 97


@dataclass
class GrokRun:
    """One training run of the modular-arithmetic benchmark."""

    name: str
    grokfast: GrokfastConfig = field(default_factory=GrokfastConfig)
    optimizer: str = "adam"  # "adam" (coupled L2 wd, as the paper) | "adamw" (decoupled wd)
    weight_decay: float = 0.0
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.98)
    warmup_steps: int = 10
    batch_size: int = 512
    train_frac: float = 0.5
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    init: str = "trainer"  # "trainer": the model's GPT-2 init (N(0, 0.02)); "torch_default": torch's layer
    # defaults as in the paper's code (embeddings N(0, 1), Linear kaiming-uniform)


@dataclass(frozen=True)
class GrokStudy:
    """The benchmark's budget (``python -m experiments grokfast`` defaults to these)."""

    steps: int = 2000  # max optimizer steps per run
    eval_every: int = 50  # train/val accuracy every N steps
    seeds: tuple[int, ...] = (0, 1, 2)


def default_runs(init: str = "trainer") -> list[GrokRun]:
    """The four runs (paper settings for the three Grokfast-paper runs, plus the control)."""
    return [
        GrokRun("baseline", init=init),
        GrokRun("grokfast_ema", GrokfastConfig("ema", alpha=0.98, lamb=2.0), weight_decay=0.005, init=init),
        GrokRun(
            "grokfast_ma",
            GrokfastConfig("ma", window=100, lamb=5.0, warmup=True),
            weight_decay=0.01,
            init=init,
        ),
        GrokRun("control_adamw_wd1", optimizer="adamw", weight_decay=1.0, init=init),
    ]


def make_data(
    seed: int, train_frac: float = 0.5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """All equations ``x * y mod P``: inputs ``[N, 4]`` = (x, op, y, eq) and answers ``[N]``, split by seed.

    Tokens 0..P-1 are numbers, P is the operator, P+1 the ``=`` sign (vocab P+2, as the paper's code).
    """
    x, y = torch.meshgrid(torch.arange(P), torch.arange(1, P), indexing="ij")
    x, y = x.flatten(), y.flatten()
    inputs = torch.stack([x, torch.full_like(x, P), y, torch.full_like(x, P + 1)], dim=1)
    answers = (x * y) % P
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    n = int(len(x) * train_frac)
    tr, va = perm[:n], perm[n:]
    return inputs[tr], answers[tr], inputs[va], answers[va]


def model_config(run: GrokRun) -> ModelConfig:
    """The trainer's model at the paper's size: 1-D RoPE over the 4 positions, untied head, vocab P + 2."""
    return ModelConfig(
        vocab_size=P + 2,
        d_model=run.d_model,
        n_layers=run.layers,
        n_heads=run.heads,
        rope_mode="1d",
        max_seq_len=4,
        tie_embeddings=False,
        extra={"experiment": "grokfast_modarith"},
    )


def _positions(x: torch.Tensor) -> torch.Tensor:
    # [N, 4] tokens -> [N, 4, 3] (seq, row, col) positions; rope_mode "1d" reads the seq component only
    return torch.arange(x.shape[1])[None, :, None].expand(x.shape[0], -1, 3)


def _logits(model: ArcTransformer, x: torch.Tensor) -> torch.Tensor:
    return model(x, _positions(x))[:, -1]  # [N, vocab] at the '=' token


@torch.no_grad()
def _accuracy(model: ArcTransformer, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    logits = _logits(model, x)
    return float((logits.argmax(-1) == y).float().mean()), float(F.cross_entropy(logits, y))


def _first_at(curve: list[dict], key: str, thr: float) -> int | None:
    return next((c["step"] for c in curve if c[key] >= thr), None)


def run_one(
    run: GrokRun,
    steps: int,
    seed: int,
    eval_every: int = GrokStudy.eval_every,
    stop_at: float | None = None,
    on_eval: Callable[[dict], None] | None = None,
    keep_params: bool = False,
) -> dict:
    """Train one run for at most ``steps`` optimizer steps (stopping early once val accuracy reaches
        ``stop_at``, if given); returns the curve and the summary numbers (and, with ``keep_params``, the
    final weights under ``"params"``)."""
    torch.manual_seed(seed)
    xtr, ytr, xva, yva = make_data(seed, run.train_frac)
    model = ArcTransformer(model_config(run))
    if run.init == "torch_default":
        for m in model.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                m.reset_parameters()
    elif run.init != "trainer":
        raise TrainError(f"unknown init {run.init!r}", hint="use trainer or torch_default")
    opt_cls = torch.optim.AdamW if run.optimizer == "adamw" else torch.optim.Adam
    opt = opt_cls(model.parameters(), lr=run.lr, betas=run.betas, weight_decay=run.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / run.warmup_steps, 1.0))
    gf = Grokfast(model, run.grokfast)
    gen = torch.Generator().manual_seed(seed + 1)
    order, cursor = torch.randperm(len(xtr), generator=gen), 0
    curve: list[dict] = []
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        if cursor + run.batch_size > len(order):  # a new epoch: reshuffle (drop the ragged tail)
            order, cursor = torch.randperm(len(xtr), generator=gen), 0
        idx = order[cursor : cursor + run.batch_size]
        cursor += run.batch_size
        model.train()
        loss = F.cross_entropy(_logits(model, xtr[idx]), ytr[idx])  # loss on the answer token only
        opt.zero_grad(set_to_none=True)
        loss.backward()
        gf.step()
        opt.step()
        sched.step()
        if step % eval_every == 0 or step == steps:
            model.eval()
            tr_acc, tr_loss = _accuracy(model, xtr, ytr)
            va_acc, va_loss = _accuracy(model, xva, yva)
            point = {
                "step": step,
                "train_acc": tr_acc,
                "val_acc": va_acc,
                "train_loss": tr_loss,
                "val_loss": va_loss,
                "wall_s": time.perf_counter() - t0,
            }
            curve.append(point)
            if on_eval is not None:
                on_eval(point)
            if stop_at is not None and va_acc >= stop_at:
                break
    wall = time.perf_counter() - t0
    s95, s99 = _first_at(curve, "val_acc", 0.95), _first_at(curve, "val_acc", 0.99)
    return {
        "name": run.name,
        "seed": seed,
        "steps": curve[-1]["step"],
        "max_steps": steps,
        "wall_s": round(wall, 2),
        "steps_to_95": s95,
        "steps_to_99": s99,
        "wall_to_95_s": next((round(c["wall_s"], 2) for c in curve if c["step"] == s95), None),
        "final_val_acc": curve[-1]["val_acc"],
        "final_train_acc": curve[-1]["train_acc"],
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()} if keep_params else None,
        "curve": curve,
    }


def _median(vals: Sequence[int | None]) -> float | None:
    # median over seeds counting "never reached" as +inf (so a majority of misses gives None)
    xs = sorted(float("inf") if v is None else float(v) for v in vals)
    m = statistics.median(xs)
    return None if m == float("inf") else m


def summarize(results: list[dict]) -> list[dict]:
    """Per run name: steps to 95% / 99% for each seed, their median, wall time, final val accuracy."""
    out = []
    for name in dict.fromkeys(r["name"] for r in results):
        rs = [r for r in results if r["name"] == name]
        out.append(
            {
                "name": name,
                "seeds": [r["seed"] for r in rs],
                "steps_to_95": [r["steps_to_95"] for r in rs],
                "steps_to_99": [r["steps_to_99"] for r in rs],
                "median_steps_to_95": _median([r["steps_to_95"] for r in rs]),
                "median_steps_to_99": _median([r["steps_to_99"] for r in rs]),
                "mean_wall_s": round(statistics.mean(r["wall_s"] for r in rs), 1),
                "final_val_acc": [round(r["final_val_acc"], 4) for r in rs],
            }
        )
    return out


def plot(results: list[dict], path: Path) -> Path:
    """Train and val accuracy vs steps (seed-averaged per run) as a two-panel PNG."""
    panels = [
        Panel("train accuracy", "step", "acc", y_range=(0, 1)),
        Panel("validation accuracy", "step", "acc", y_range=(0, 1)),
    ]
    for name in dict.fromkeys(r["name"] for r in results):
        rs = [r for r in results if r["name"] == name]
        longest = max(rs, key=lambda r: len(r["curve"]))
        steps = [c["step"] for c in longest["curve"]]
        for panel, key in zip(panels, ("train_acc", "val_acc"), strict=True):
            # a run stopped early (target reached) holds its last value
            ys = [
                statistics.mean(r["curve"][min(i, len(r["curve"]) - 1)][key] for r in rs)
                for i in range(len(steps))
            ]
            panel.series[name] = (steps, ys)
    return draw_panels(panels, path)


def run_benchmark(
    steps: int,
    seeds: Sequence[int],
    out_dir: Path,
    runs: Sequence[GrokRun] | None = None,
    eval_every: int = GrokStudy.eval_every,
    stop_at: float | None = None,
    on_run: Callable[[dict], None] | None = None,
    tag: str = "grokfast_modarith",
) -> dict:
    """Every seed x run (seed-major, so partial results cover every run); writes ``<tag>.json`` (+ ``.png``)
    into ``out_dir`` after each run (partial results survive an interruption); returns the report dict."""
    runs = list(runs or default_runs())
    results: list[dict] = []
    report: dict = {}
    for seed in seeds:
        for run in runs:
            res = run_one(run, steps, seed, eval_every=eval_every, stop_at=stop_at)
            res.pop("params")
            res["config"] = {
                **asdict(run),
                "grokfast": asdict(run.grokfast),
                "model": model_config(run).to_dict(),
            }
            results.append(res)
            report = {
                "experiment": "grokfast_modarith",
                "max_steps": steps,
                "seeds": list(seeds),
                "eval_every": eval_every,
                "stop_at": stop_at,
                "torch_threads": torch.get_num_threads(),
                "summary": summarize(results),
                "runs": results,
            }
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp = out_dir / f".{tag}.json.tmp"
            tmp.write_text(json.dumps(report, indent=1))
            tmp.replace(out_dir / f"{tag}.json")
            plot(results, out_dir / f"{tag}.png")
            if on_run is not None:
                on_run(res)
    return report
