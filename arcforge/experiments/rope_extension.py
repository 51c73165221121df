"""RoPE context extension on generated grid tasks: 1-D scaling methods at 2L / 4L, and 1-D vs 2-D RoPE on
grids larger than any seen in training.

Task (self-contained generator; ARC-like, small enough for a CPU): a random grid of h x w colors and its
transform — ``copy`` or ``recolor`` (a fixed color permutation) — as one sequence::

    FAM IN  g[0,0] .. g[0,w-1] NL  ..  g[h-1,..] NL  OUT  o[0,0] .. NL .. o[h-1,..] NL

The loss and the metrics are on the output tokens (colors and row ends) only. Exact match = every output
token's argmax correct under teacher forcing, which is the same as greedy decoding reproducing the output.

Positions per RoPE mode: ``1d`` the token index; ``2d`` (row+1, col+1) for grid cells, (row+1, w+1) for a
row end, (0, 0) for the markers; ``2d+1d`` (grid index, row+1, col+1) with grid index 0 for the input part
and 1 for the output part (so that component never grows with grid size).

Study: train each mode on grids with sides in [2, S] (``S = train_side``), then evaluate buckets of larger
grids. The scaling factor per bucket is ``max position needed / max position trained`` for the growing
components (token length for 1-D, grid side for 2-D), applied with every method at eval time; the 1-D model
is also fine-tuned briefly (on sides 2 .. the ``finetune_bucket``'s max, so it does not forget the short
grids) with each method switched on at that bucket's factor, then re-evaluated with
``max(fine-tune factor, bucket factor)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.nn import functional as F

from arcforge.experiments.plot import Panel, draw_panels
from arcforge.experiments.tiny_decoder import TinyDecoder
from arcforge.train.rope import SCALINGS, RopeConfig

NL, IN, OUT, PAD, FAM0 = 10, 11, 12, 13, 14
FAMILIES = ("copy", "recolor")
VOCAB = FAM0 + len(FAMILIES)
RECOLOR = torch.tensor([3, 7, 0, 9, 1, 8, 2, 5, 4, 6])  # the fixed permutation of the recolor family


@dataclass
class RopeStudy:
    """Sizes of the study (defaults: what the README reports; the test uses a tiny variant)."""

    train_side: int = 5  # train on sides 2..train_side
    buckets: dict[str, tuple[int, int]] = field(default_factory=lambda: {"train": (2, 5), "2L": (7, 8),
                                                                         "4L": (10, 11)})
    modes: tuple[str, ...] = ("1d", "2d", "2d+1d")
    d_model: int = 64
    heads: int = 4
    layers: int = 3
    base: float = 10000.0
    axis_base: float = 100.0
    steps: int = 1500
    batch: int = 32
    lr: float = 3e-3
    finetune_steps: int = 100
    finetune_bucket: str = "2L"  # fine-tune on sides train_side+1 .. max of this bucket
    n_eval: int = 64
    seed: int = 0


def make_example(h: int, w: int, fam: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Tokens ``[T]``, positions ``[T, 3]`` (index, row, col; the grid index is derived) and the OUT index."""
    grid = torch.randint(0, 10, (h, w), generator=gen)
    out = grid.clone() if FAMILIES[fam] == "copy" else RECOLOR[grid]
    toks, rc = [FAM0 + fam, IN], [(0, 0), (0, 0)]

    def add_grid(g: torch.Tensor) -> None:
        for r in range(h):
            toks.extend([*g[r].tolist(), NL])
            rc.extend([(r + 1, c + 1) for c in range(w)] + [(r + 1, w + 1)])

    add_grid(grid)
    out_idx = len(toks)
    toks.append(OUT)
    rc.append((0, 0))
    add_grid(out)
    t = torch.tensor(toks)
    rcs = torch.tensor(rc)
    return t, torch.cat([torch.arange(len(toks))[:, None], rcs], dim=1), out_idx


def make_batch(n: int, side_range: tuple[int, int], gen: torch.Generator) -> dict[str, torch.Tensor]:
    """``n`` examples with sides uniform in ``side_range``; right-padded to the longest."""
    exs = []
    for _ in range(n):
        h, w = (int(torch.randint(side_range[0], side_range[1] + 1, (1,), generator=gen)) for _ in range(2))
        exs.append(make_example(h, w, int(torch.randint(0, len(FAMILIES), (1,), generator=gen)), gen))
    t_max = max(len(e[0]) for e in exs)
    tokens = torch.full((n, t_max), PAD)
    pos = torch.zeros((n, t_max, 3), dtype=torch.long)
    grid_idx = torch.zeros((n, t_max), dtype=torch.long)
    loss_mask = torch.zeros((n, t_max), dtype=torch.bool)  # True where the NEXT token is an output token
    for i, (t, p, out_idx) in enumerate(exs):
        tokens[i, : len(t)], pos[i, : len(t)] = t, p
        grid_idx[i, out_idx: len(t)] = 1
        loss_mask[i, out_idx: len(t) - 1] = True
    return {"tokens": tokens, "pos": pos, "grid": grid_idx, "mask": loss_mask}


def positions_for(batch: dict[str, torch.Tensor], mode: str) -> torch.Tensor:
    """The RoPE positions of a batch for ``mode``: ``[B, T]`` or ``[B, T, 2|3]``."""
    if mode == "1d":
        return batch["pos"][..., 0]
    if mode == "2d":
        return batch["pos"][..., 1:]
    return torch.cat([batch["grid"][..., None], batch["pos"][..., 1:]], dim=-1)


def rope_config(study: RopeStudy, mode: str) -> RopeConfig:
    """The training-time RoPE config of one mode (``original_*`` = the largest positions trained on)."""
    s = study.train_side
    return RopeConfig(head_dim=study.d_model // study.heads, base=study.base, mode=mode,
                      original_max_len=2 if mode == "2d+1d" else 3 + 2 * s * (s + 1),
                      original_max_side=s + 2, axis_base=study.axis_base)


def extension_factor(study: RopeStudy, mode: str, bucket: tuple[int, int]) -> float:
    """max position needed / max position trained, for the component that grows with grid size."""
    s, b = study.train_side, bucket[1]
    if mode == "1d":
        return max(1.0, (3 + 2 * b * (b + 1)) / (3 + 2 * s * (s + 1)))
    return max(1.0, (b + 2) / (s + 2))


def _metrics(model: TinyDecoder, batch: dict, mode: str) -> tuple[torch.Tensor, float, float]:
    """(loss, exact-match rate, output-token accuracy) of one batch."""
    logits = model(batch["tokens"], positions_for(batch, mode))[:, :-1]  # [B, T-1, V] predicts tokens[1:]
    target, mask = batch["tokens"][:, 1:], batch["mask"][:, :-1]
    loss = F.cross_entropy(logits[mask], target[mask])
    bad = (logits.argmax(-1) != target) & mask  # [B, T-1]
    exact = float((~bad.any(dim=1)).float().mean())
    return loss, exact, 1.0 - float(bad.sum()) / max(int(mask.sum()), 1)


def train(model: TinyDecoder, study: RopeStudy, mode: str, steps: int, side_range: tuple[int, int],
          gen: torch.Generator, lr: float) -> list[float]:
    """AdamW with a short warmup and cosine decay; returns the loss curve."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(i / steps, 1.0)))) + 0.02)
    losses = []
    model.train()
    for _ in range(steps):
        loss, _, _ = _metrics(model, make_batch(study.batch, side_range, gen), mode)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


@torch.no_grad()
def evaluate(model: TinyDecoder, study: RopeStudy, mode: str, eval_sets: dict[str, dict]) -> list[dict]:
    """Loss and exact match per (bucket, scaling method) with the bucket's extension factor."""
    model.eval()
    rows = []
    for name, batch in eval_sets.items():
        factor = extension_factor(study, mode, study.buckets[name])
        for scaling in SCALINGS:
            model.rope.set_scaling(scaling, factor)
            loss, exact, tok = _metrics(model, batch, mode)
            rows.append({"mode": mode, "bucket": name, "scaling": scaling, "factor": round(factor, 3),
                         "loss": round(float(loss), 4), "exact": round(exact, 4), "token_acc": round(tok, 4)})
    model.rope.set_scaling("none", 1.0)
    return rows


def run_study(study: RopeStudy, out_dir: Path | None = None, tag: str = "rope_extension",
              on_stage: Callable[[str], None] | None = None) -> dict:
    """Train every mode, evaluate every bucket x method, fine-tune the 1-D model per method; write
    ``<tag>.json`` and ``<tag>.png`` into ``out_dir`` (if given). Returns the report."""
    torch.manual_seed(study.seed)
    eval_gen = torch.Generator().manual_seed(10_000 + study.seed)
    eval_sets = {name: make_batch(study.n_eval, rng, eval_gen) for name, rng in study.buckets.items()}
    rows: list[dict] = []
    curves: dict[str, list[float]] = {}
    timings: dict[str, float] = {}
    states: dict[str, dict] = {}
    for mode in study.modes:
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(study.seed)
        torch.manual_seed(study.seed)
        model = TinyDecoder(VOCAB, d=study.d_model, heads=study.heads, layers=study.layers,
                            rope=rope_config(study, mode), post_norm=False)
        curves[mode] = train(model, study, mode, study.steps, (2, study.train_side), gen, study.lr)
        timings[f"train_{mode}_s"] = round(time.perf_counter() - t0, 1)
        rows += [{**r, "stage": "trained"} for r in evaluate(model, study, mode, eval_sets)]
        states[mode] = {k: v.clone() for k, v in model.state_dict().items()}
        if on_stage is not None:
            on_stage(f"trained {mode}")
    if "1d" in study.modes and study.finetune_steps > 0:
        ft_range = (2, study.buckets[study.finetune_bucket][1])  # short and long grids (no forgetting)
        factor = extension_factor(study, "1d", study.buckets[study.finetune_bucket])
        for scaling in SCALINGS:
            t0 = time.perf_counter()
            model = TinyDecoder(VOCAB, d=study.d_model, heads=study.heads, layers=study.layers,
                                rope=rope_config(study, "1d"), post_norm=False)
            model.load_state_dict(states["1d"])
            model.rope.set_scaling(scaling, factor)
            gen = torch.Generator().manual_seed(study.seed + 7)
            train(model, study, "1d", study.finetune_steps, ft_range, gen, study.lr / 3)
            timings[f"finetune_{scaling}_s"] = round(time.perf_counter() - t0, 1)
            # evaluate with the fine-tuned method; the factor it was tuned with stays on for shorter
            # inputs (as position-interpolation models are used) and grows to the bucket's need beyond
            model.eval()
            with torch.no_grad():
                for name, batch in eval_sets.items():
                    f = max(factor, extension_factor(study, "1d", study.buckets[name]))
                    model.rope.set_scaling(scaling, f)
                    loss, exact, tok = _metrics(model, batch, "1d")
                    rows.append({"mode": "1d", "bucket": name, "scaling": scaling, "factor": round(f, 3),
                                 "loss": round(float(loss), 4), "exact": round(exact, 4),
                                 "token_acc": round(tok, 4),
                                 "stage": f"finetuned_{study.finetune_steps}"})
            if on_stage is not None:
                on_stage(f"fine-tuned 1d/{scaling}")
    report = {"experiment": "rope_extension", "study": asdict(study), "timings": timings,
              "train_loss_last50": {m: round(sum(c[-50:]) / len(c[-50:]), 4) for m, c in curves.items()},
              "results": rows}
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = out_dir / f".{tag}.json.tmp"
        tmp.write_text(json.dumps(report, indent=1))
        tmp.replace(out_dir / f"{tag}.json")
        plot(report, out_dir / f"{tag}.png")
    return report


def plot(report: dict, path: Path) -> Path:
    """Output-token accuracy vs bucket: one panel for the 1-D methods (trained / fine-tuned), one for the
    RoPE modes (exact match is in the JSON; at these sizes it is mostly 0 or 1 and plots poorly)."""
    buckets = list(report["study"]["buckets"])
    xs = list(range(len(buckets)))
    p1 = Panel("1-D RoPE: token accuracy by method (ft = fine-tuned)", "bucket " + " / ".join(buckets), "acc",
               y_range=(0, 1))
    p2 = Panel("token accuracy: 1d vs 2d vs 2d+1d", "bucket " + " / ".join(buckets), "acc", y_range=(0, 1))

    def ys(mode: str, scaling: str, stage: str) -> list[float]:
        by = {r["bucket"]: r["token_acc"] for r in report["results"]
              if r["mode"] == mode and r["scaling"] == scaling and r["stage"] == stage}
        return [by.get(b, float("nan")) for b in buckets]

    stages = sorted({r["stage"] for r in report["results"]})
    for scaling in SCALINGS:
        p1.series[scaling] = (xs, ys("1d", scaling, "trained"))
    for st in stages:
        if st.startswith("finetuned"):
            for scaling in ("none", "yarn"):
                p1.series[f"{scaling} ft"] = (xs, ys("1d", scaling, st))
    for mode in report["study"]["modes"]:
        for scaling in ("none", "yarn"):
            p2.series[f"{mode} {scaling}"] = (xs, ys(mode, scaling, "trained"))
    return draw_panels([p1, p2], path)


def table(report: dict, stage: str = "trained") -> list[dict]:
    """Rows (mode, scaling) x bucket "exact / token acc / loss", for printing."""
    out: dict[tuple[str, str], dict] = {}
    for r in report["results"]:
        if r["stage"] != stage:
            continue
        row = out.setdefault((r["mode"], r["scaling"]), {"mode": r["mode"], "scaling": r["scaling"]})
        row[r["bucket"]] = f"{r['exact']:.2f} / {r['token_acc']:.2f} / {r['loss']:.2f}"
    return list(out.values())


def tiny_study(seed: int = 0) -> RopeStudy:
    """A seconds-long variant for tests and smoke runs."""
    return RopeStudy(train_side=3, buckets={"train": (2, 3), "2L": (4, 5)}, d_model=32, heads=2, layers=1,
                     steps=20, batch=8, finetune_steps=5, n_eval=8, seed=seed)


__all__: Sequence[str] = ("RopeStudy", "make_batch", "make_example", "run_study", "table", "tiny_study")
