"""RoPE context extension on ARC-style grid tasks with the trainer's model, tokenizer and packing.

Task: one input grid and its output under a fixed, size-invariant rule (``RECOLOR``, a color permutation
without fixed points), encoded by ``arcforge.train.tokenize.encode`` as a single-pair task with no
demonstrations::

    BOS INPUT GRID_START <h rows of w colors + ROW> GRID_END OUTPUT GRID_START <output rows> GRID_END EOS

(``2 h (w + 1) + 8`` tokens: 488 for 15 x 15, 932 for 21 x 21, 1868 for 30 x 30), with the tokenizer's
``(seq, row, col)`` positions. The loss and the metrics are on the tokenizer's target tokens (the output
grid with its markers and EOS). Exact match = every target token's argmax correct under teacher forcing,
which is the same as greedy decoding reproducing the output.

Model: ``arcforge.train.model.ArcTransformer`` with ``rope_mode`` 1d (seq), 2d (row, col) or 2d+1d (the
trainer's default: seq, row, col, where seq is the token index and so grows with grid size). Training rows
are packed with ``arcforge.train.pack`` (block-diagonal attention) and the loss is the trainer's
``token_loss_sum``.

Study: train each mode on grids with sides in [2, S] (``S = train_side``, 15), then evaluate buckets of
larger grids (16-20, 21-25, 26-30). The context extension factor of a bucket is ``max position needed /
max position trained`` per growing component: token length for seq (``max_seq_len`` = the longest
training example), grid side + 2 for row/col (``rope_original_max_side``); the trainer's
``set_rope_scaling`` takes one factor, so 2d+1d uses the larger (the seq one). Every method (none, linear,
ntk, dynamic_ntk, yarn) is applied at that factor; then each (mode, method) model is fine-tuned briefly on
sides 2 .. ``finetune_side`` with the method switched on at that length's factor, and re-evaluated with
``max(fine-tune factor, bucket factor)``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from arcforge.train.config import ModelConfig, RopeMode, RopeScaling
from arcforge.train.data import to_torch
from arcforge.train.loop import token_loss_sum
from arcforge.train.model import ArcTransformer
from arcforge.train.pack import pack, stack
from arcforge.train.tokenize import VOCAB_SIZE, Example, encode
from experiments.plot import Panel, draw_panels

RECOLOR = np.array([3, 7, 0, 9, 1, 8, 2, 5, 4, 6], dtype=np.int8)  # the fixed rule (no color maps to itself)


def example_tokens(side: int) -> int:
    """Tokens of a side x side single-pair example (``2 h (w + 1) + 8``)."""
    return 2 * side * (side + 1) + 8


SCALINGS = tuple(s.value for s in RopeScaling)  # every RoPE scaling method, compared in turn


@dataclass
class RopeStudy:
    """Sizes of the study (defaults: what the README reports; the test uses a tiny variant)."""

    train_side: int = 15  # train on sides 2..train_side
    buckets: dict[str, tuple[int, int]] = field(
        default_factory=lambda: {"train": (2, 15), "16-20": (16, 20), "21-25": (21, 25), "26-30": (26, 30)}
    )
    modes: tuple[str, ...] = tuple(m.value for m in RopeMode)
    d_model: int = 64
    heads: int = 2
    layers: int = 3
    base: float = 10000.0
    axis_base: float = 100.0
    steps: int = 900
    tokens_per_step: int = 4096  # examples generated per step until this many tokens, packed into rows
    row_len: int = 512
    lr: float = 3e-3
    finetune_steps: int = 40
    finetune_side: int = 22  # fine-tune on sides 2..this (22 x 22 = 1020 tokens, ~2x the training length)
    finetune_modes: tuple[str, ...] = tuple(m.value for m in RopeMode)
    n_eval: int = 24  # examples per bucket
    seeds: tuple[int, ...] = (0,)


def make_example(h: int, w: int, rng: np.random.Generator) -> Example:
    """A random h x w grid and its recoloring, tokenized as a one-pair task (loss on the output)."""
    grid = rng.integers(0, 10, size=(h, w), dtype=np.int8)
    return encode([], grid, RECOLOR[grid], loss_on="test")


def sample_examples(n_tokens: int, side_range: tuple[int, int], rng: np.random.Generator) -> list[Example]:
    """Examples with sides uniform in ``side_range`` (h, w independent) until ``n_tokens`` are reached."""
    out: list[Example] = []
    total = 0
    while total < n_tokens:
        h, w = (int(v) for v in rng.integers(side_range[0], side_range[1] + 1, size=2))
        out.append(make_example(h, w, rng))
        total += len(out[-1])
    return out


def model_config(study: RopeStudy, mode: str) -> ModelConfig:
    """The trainer's model for one RoPE mode; RoPE's training lengths are the largest positions trained."""
    s = study.train_side
    return ModelConfig(
        vocab_size=VOCAB_SIZE,
        d_model=study.d_model,
        n_layers=study.layers,
        n_heads=study.heads,
        rope_mode=mode,
        rope_base=study.base,
        max_seq_len=example_tokens(s),
        rope_original_max_side=s + 2,
        rope_axis_base=study.axis_base,
        pair_seq=False,  # the study extends token positions: keep them in the rotation
        extra={"experiment": "rope_extension"},
    )


def extension_factor(study: RopeStudy, mode: str, max_side: int) -> float:
    """max position needed / max position trained (seq: tokens; row/col: side + 2); 2d+1d: the larger."""
    s = study.train_side
    seq = example_tokens(max_side) / example_tokens(s)
    axial = (max_side + 2) / (s + 2)
    return max(1.0, {"1d": seq, "2d": axial, "2d+1d": max(seq, axial)}[mode])


def _batch(examples: list[Example], row_len: int) -> dict[str, torch.Tensor]:
    return to_torch(stack(pack(examples, row_len)))


@torch.no_grad()
def _metrics(model: ArcTransformer, batches: list[dict]) -> tuple[float, float, float]:
    """(mean target-token loss, exact-match rate per example, target-token accuracy) over packed batches."""
    loss_sum, n_tok, n_bad_tok, n_ex, n_exact = 0.0, 0, 0, 0, 0
    for b in batches:
        logits = model(b["tokens"], b["positions"], b["segments"])[:, :-1]  # predicts tokens[1:]
        target, mask, seg = b["tokens"][:, 1:], b["targets"][:, 1:], b["segments"][:, 1:]
        loss_sum += float(F.cross_entropy(logits[mask], target[mask], reduction="sum"))
        bad = (logits.argmax(-1) != target) & mask
        n_tok += int(mask.sum())
        n_bad_tok += int(bad.sum())
        for r in range(seg.shape[0]):  # an example is exact when none of its target tokens is wrong
            ids = seg[r][mask[r]].unique()
            n_ex += len(ids)
            n_exact += sum(1 for i in ids if not bool(bad[r][seg[r] == i].any()))
    return loss_sum / max(n_tok, 1), n_exact / max(n_ex, 1), 1.0 - n_bad_tok / max(n_tok, 1)


def train(
    model: ArcTransformer,
    study: RopeStudy,
    steps: int,
    side_range: tuple[int, int],
    rng: np.random.Generator,
    lr: float,
    row_len: int,
) -> list[float]:
    """AdamW with a short warmup and cosine decay on packed rows; returns the per-token loss curve."""
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min((i + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(i / steps, 1.0)))) + 0.02
    )
    losses = []
    model.train()
    for _ in range(steps):
        batch = _batch(sample_examples(study.tokens_per_step, side_range, rng), row_len)
        loss_sum, n = token_loss_sum(model, batch, torch.device("cpu"))
        loss = loss_sum / max(n, 1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    return losses


def _eval_rows(
    model: ArcTransformer,
    study: RopeStudy,
    mode: str,
    eval_sets: dict[str, list[dict]],
    scalings: Sequence[str],
    min_factor: float,
    stage: str,
    seed: int,
) -> list[dict]:
    model.eval()
    rows = []
    for name, batches in eval_sets.items():
        factor = max(min_factor, extension_factor(study, mode, study.buckets[name][1]))
        for scaling in scalings:
            model.set_rope_scaling(scaling, factor)
            loss, exact, tok = _metrics(model, batches)
            rows.append(
                {
                    "seed": seed,
                    "mode": mode,
                    "stage": stage,
                    "bucket": name,
                    "scaling": scaling,
                    "factor": round(factor, 3),
                    "loss": round(loss, 4),
                    "exact": round(exact, 4),
                    "token_acc": round(tok, 4),
                }
            )
    model.set_rope_scaling("none", 1.0)
    return rows


def _eval_sets(study: RopeStudy, seed: int) -> dict[str, list[dict]]:
    rng = np.random.default_rng(10_000 + seed)
    out = {}
    for name, (lo, hi) in study.buckets.items():
        exs = []
        for _ in range(study.n_eval):
            h, w = (int(v) for v in rng.integers(lo, hi + 1, size=2))
            exs.append(make_example(h, w, rng))
        rows = pack(exs, max(study.row_len, example_tokens(hi)))
        out[name] = [to_torch(stack(rows[i : i + 4])) for i in range(0, len(rows), 4)]
    return out


def _write(report: dict, out_dir: Path | None, tag: str) -> None:
    if out_dir is None:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".{tag}.json.tmp"
    tmp.write_text(json.dumps(report, indent=1))
    tmp.replace(out_dir / f"{tag}.json")
    plot(report, out_dir / f"{tag}.png")


def run_study(
    study: RopeStudy,
    out_dir: Path | None = None,
    tag: str = "rope_extension",
    on_stage: Callable[[str], None] | None = None,
) -> dict:
    """Per seed: train every mode, evaluate every bucket x method, fine-tune each (mode, method) at the
    longer length and re-evaluate; writes ``<tag>.json`` and ``<tag>.png`` into ``out_dir`` (if given) after
    every stage, so partial results survive an interruption. Returns the report."""
    rows: list[dict] = []
    curves: dict[str, list[float]] = {}
    timings: dict[str, float] = {}
    report: dict = {}
    ft_range = (2, study.finetune_side)
    ft_row = max(study.row_len, example_tokens(study.finetune_side))
    for seed in study.seeds:
        eval_sets = _eval_sets(study, seed)
        for mode in study.modes:
            t0 = time.perf_counter()
            torch.manual_seed(seed)
            model = ArcTransformer(model_config(study, mode))
            curve = train(
                model,
                study,
                study.steps,
                (2, study.train_side),
                np.random.default_rng(seed),
                study.lr,
                study.row_len,
            )
            curves[f"{mode}/seed{seed}"] = curve
            timings[f"train_{mode}_seed{seed}_s"] = round(time.perf_counter() - t0, 1)
            t0 = time.perf_counter()
            rows += _eval_rows(model, study, mode, eval_sets, SCALINGS, 1.0, "trained", seed)
            timings[f"eval_{mode}_seed{seed}_s"] = round(time.perf_counter() - t0, 1)
            state = {k: v.clone() for k, v in model.state_dict().items()}
            if on_stage is not None:
                on_stage(f"trained {mode}")
            if mode in study.finetune_modes and study.finetune_steps > 0:
                factor = extension_factor(study, mode, study.finetune_side)
                for scaling in SCALINGS:
                    t0 = time.perf_counter()
                    model.load_state_dict(state)
                    model.set_rope_scaling(scaling, factor)
                    train(
                        model,
                        study,
                        study.finetune_steps,
                        ft_range,
                        np.random.default_rng(seed + 7),
                        study.lr / 3,
                        ft_row,
                    )
                    # the tuned factor stays on for shorter inputs (as position-interpolated models are used)
                    # and grows to a bucket's need beyond it
                    rows += _eval_rows(
                        model,
                        study,
                        mode,
                        eval_sets,
                        [scaling],
                        factor,
                        f"finetuned_{study.finetune_steps}",
                        seed,
                    )
                    timings[f"finetune_{mode}_{scaling}_seed{seed}_s"] = round(time.perf_counter() - t0, 1)
                    if on_stage is not None:
                        on_stage(f"fine-tuned {mode}/{scaling}")
            report = {
                "experiment": "rope_extension",
                "study": asdict(study),
                "model": {m: model_config(study, m).to_dict() for m in study.modes},
                "bucket_tokens": {
                    b: [example_tokens(lo), example_tokens(hi)] for b, (lo, hi) in study.buckets.items()
                },
                "torch_threads": torch.get_num_threads(),
                "timings": timings,
                "train_loss_last20": {k: round(sum(c[-20:]) / len(c[-20:]), 4) for k, c in curves.items()},
                "results": rows,
            }
            _write(report, out_dir, tag)
    return report


def mean_rows(report: dict) -> list[dict]:
    """Results averaged over seeds per (stage, mode, scaling, bucket), with the per-seed exact matches."""
    groups: dict[tuple, list[dict]] = {}
    for r in report["results"]:
        groups.setdefault((r["stage"], r["mode"], r["scaling"], r["bucket"]), []).append(r)
    out = []
    for (stage, mode, scaling, bucket), rs in groups.items():
        out.append(
            {
                "stage": stage,
                "mode": mode,
                "scaling": scaling,
                "bucket": bucket,
                "factor": rs[0]["factor"],
                "n_seeds": len(rs),
                **{k: round(sum(r[k] for r in rs) / len(rs), 4) for k in ("loss", "exact", "token_acc")},
            }
        )
    return out


def plot(report: dict, path: Path) -> Path:
    """Token accuracy vs bucket (seed mean): per mode, each method trained (solid) and, for none/yarn,
    fine-tuned; plus a panel comparing the modes with no scaling."""
    buckets = list(report["study"]["buckets"])
    xs = list(range(len(buckets)))
    rows = mean_rows(report)

    def ys(mode: str, scaling: str, stage: str) -> list[float]:
        by = {
            r["bucket"]: r["token_acc"]
            for r in rows
            if r["mode"] == mode and r["scaling"] == scaling and r["stage"] == stage
        }
        return [by.get(b, float("nan")) for b in buckets]

    xlabel = "bucket " + " / ".join(buckets)
    stages = sorted({r["stage"] for r in rows if r["stage"].startswith("finetuned")})
    panels = []
    for mode in report["study"]["modes"]:
        p = Panel(f"{mode} RoPE: token accuracy (ft = fine-tuned)", xlabel, "acc", y_range=(0, 1))
        for scaling in SCALINGS:
            p.series[scaling] = (xs, ys(mode, scaling, "trained"))
        for st in stages:
            for scaling in SCALINGS:
                if any(r["stage"] == st and r["mode"] == mode and r["scaling"] == scaling for r in rows):
                    p.series[f"{scaling} ft"] = (xs, ys(mode, scaling, st))
        panels.append(p)
    cmp = Panel("1d vs 2d vs 2d+1d (no scaling; best method)", xlabel, "acc", y_range=(0, 1))
    for mode in report["study"]["modes"]:
        cmp.series[f"{mode} none"] = (xs, ys(mode, "none", "trained"))
        best = [
            max(
                (r["token_acc"] for r in rows if r["mode"] == mode and r["bucket"] == b), default=float("nan")
            )
            for b in buckets
        ]
        cmp.series[f"{mode} best"] = (xs, best)
    panels.append(cmp)
    return draw_panels(panels, path, width=480)


def table(report: dict, stage: str = "trained") -> list[dict]:
    """Rows (mode, scaling) x bucket "exact / token acc / loss" (seed means), for printing."""
    out: dict[tuple[str, str], dict] = {}
    for r in mean_rows(report):
        if r["stage"] != stage:
            continue
        row = out.setdefault((r["mode"], r["scaling"]), {"mode": r["mode"], "scaling": r["scaling"]})
        row[r["bucket"]] = f"{r['exact']:.2f} / {r['token_acc']:.2f} / {r['loss']:.2f}"
    return list(out.values())


def tiny_study(seed: int = RopeStudy.seeds[0]) -> RopeStudy:
    """A seconds-long variant for tests and smoke runs."""
    return RopeStudy(
        train_side=3,
        buckets={"train": (2, 3), "4-5": (4, 5)},
        d_model=32,
        heads=1,
        layers=1,
        steps=6,
        tokens_per_step=256,
        row_len=64,
        finetune_steps=2,
        finetune_side=4,
        finetune_modes=("1d",),
        n_eval=4,
        seeds=(seed,),
    )


__all__: Sequence[str] = ("RopeStudy", "example_tokens", "make_example", "run_study", "table", "tiny_study")
