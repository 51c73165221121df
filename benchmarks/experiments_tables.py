"""Markdown tables from benchmarks/results/{grokfast_modarith,rope_extension}.json.

The results themselves come from ``python -m experiments grokfast`` and ``python -m experiments rope`` (see
the docs/experiments.md for the exact commands).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def grokfast_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [
        f"max {r['max_steps']} steps, stop at val acc {r['stop_at']}, eval every {r['eval_every']} steps, "
        f"seeds run: {sorted({x['seed'] for x in r['runs']})}",
        "",
        "| run | seed | steps to 95% val | steps to 99% val | wall to 95% (s) | final train / val acc | "
        "steps run | wall (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in r["runs"]:
        lines.append(
            f"| {x['name']} | {x['seed']} | {x['steps_to_95'] or 'not reached'} | "
            f"{x['steps_to_99'] or 'not reached'} | {x['wall_to_95_s'] or '-'} | "
            f"{x['final_train_acc']:.3f} / {x['final_val_acc']:.3f} | {x['steps']} | {x['wall_s']:.0f} |"
        )
    return "\n".join(lines)


def grokfast_summary(path: Path) -> str:
    """One row per run: steps to 95% / 99% val per seed, medians, wall seconds per seed."""
    r = json.loads(path.read_text())
    walls: dict[str, list[str]] = {}
    for x in r["runs"]:
        walls.setdefault(x["name"], []).append(f"{x['wall_s']:.0f}")
    lines = [
        "| run | steps to 95% val (per seed) | median | steps to 99% val (per seed) | median | "
        "final val acc | wall s per run (per seed) |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(v: list) -> str:
        return ", ".join("-" if s is None else str(s) for s in v)

    def med(v: float | None) -> str:
        return "-" if v is None else f"{v:g}"

    for s in r["summary"]:
        lines.append(
            f"| {s['name']} | {fmt(s['steps_to_95'])} | {med(s['median_steps_to_95'])} | "
            f"{fmt(s['steps_to_99'])} | {med(s['median_steps_to_99'])} | "
            f"{', '.join(f'{v:.3f}' for v in s['final_val_acc'])} | {', '.join(walls[s['name']])} |"
        )
    return "\n".join(lines)


def _rope_means(r: dict, seed: int | None = None) -> dict[tuple[str, str, str, str], dict]:
    # (stage, mode, scaling, bucket) -> seed-mean (or one seed's) loss / exact / token_acc and the factor
    groups: dict[tuple[str, str, str, str], list[dict]] = {}
    for x in r["results"]:
        if seed is not None and x["seed"] != seed:
            continue
        groups.setdefault((x["stage"], x["mode"], x["scaling"], x["bucket"]), []).append(x)
    return {
        k: {
            "factor": v[0]["factor"],
            "n": len(v),
            **{m: sum(x[m] for x in v) / len(v) for m in ("loss", "exact", "token_acc")},
        }
        for k, v in groups.items()
    }


def rope_table(path: Path) -> str:
    r = json.loads(path.read_text())
    buckets = list(r["study"]["buckets"])
    means = _rope_means(r)
    seeds = sorted({x["seed"] for x in r["results"]})
    out = [f"seeds run: {seeds} (cells are seed means)", ""]
    for stage in dict.fromkeys(x["stage"] for x in r["results"]):
        out += [
            f"**{stage}** — token accuracy / exact match / loss (factor)",
            "",
            "| mode | scaling | "
            + " | ".join(
                f"{b} (sides {r['study']['buckets'][b][0]}-{r['study']['buckets'][b][1]}, "
                f"<= {r['bucket_tokens'][b][1]} tok)"
                for b in buckets
            )
            + " |",
            "|---|---|" + "---|" * len(buckets),
        ]
        rows: dict[tuple[str, str], dict[str, str]] = {}
        for (st, mode, scaling, bucket), x in means.items():
            if st == stage:
                rows.setdefault((mode, scaling), {})[bucket] = (
                    f"{x['token_acc']:.2f} / {x['exact']:.2f} / {x['loss']:.2f} (s={x['factor']:g})"
                )
        for (mode, scaling), cells in rows.items():
            out.append(f"| {mode} | {scaling} | " + " | ".join(cells.get(b, "-") for b in buckets) + " |")
        out.append("")
    return "\n".join(out)


def rope_headline(path: Path) -> str:
    """1d vs 2d vs 2d+1d per bucket and seed: token accuracy with no scaling, and the best method (trained
    or fine-tuned) with its name."""
    r = json.loads(path.read_text())
    buckets = list(r["study"]["buckets"])
    out = [
        "| mode | seed | " + " | ".join(f"{b}: none / best (method)" for b in buckets) + " |",
        "|---|---|" + "---|" * len(buckets),
    ]
    for mode, seed in (
        (m, s) for m in r["study"]["modes"] for s in sorted({x["seed"] for x in r["results"]})
    ):
        means = _rope_means(r, seed)
        cells = []
        for b in buckets:
            none = means[("trained", mode, "none", b)]
            best_k, best = max(
                ((k, v) for k, v in means.items() if k[1] == mode and k[3] == b),
                key=lambda kv: (kv[1]["token_acc"], kv[1]["exact"]),
            )
            tag = best_k[2] + (" ft" if best_k[0] != "trained" else "")
            cells.append(
                f"{none['token_acc']:.2f} (ex {none['exact']:.2f}) / {best['token_acc']:.2f} "
                f"(ex {best['exact']:.2f}, {tag})"
            )
        out.append(f"| {mode} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    if which in ("grokfast", "both"):
        for stem in ("grokfast_modarith", "grokfast_modarith_torchinit"):
            if (RESULTS / f"{stem}.json").exists():
                print(f"### {stem}")
                print(grokfast_summary(RESULTS / f"{stem}.json"))
                print()
                print(grokfast_table(RESULTS / f"{stem}.json"))
                print()
    if which in ("rope", "both"):
        print(rope_headline(RESULTS / "rope_extension.json"))
        print()
        print(rope_table(RESULTS / "rope_extension.json"))
