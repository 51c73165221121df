"""Print the README's Markdown tables from benchmarks/results/{grokfast_modarith,rope_extension}.json.

The results themselves come from ``arcforge experiment grokfast`` and ``arcforge experiment rope`` (see the
README's experiments section for the exact commands).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def grokfast_table(path: Path) -> str:
    r = json.loads(path.read_text())
    lines = [f"max {r['max_steps']} steps, stop at val acc {r['stop_at']}, eval every {r['eval_every']} steps, "
             f"seeds run: {sorted({x['seed'] for x in r['runs']})}", "",
             "| run | seed | steps to 95% val | steps to 99% val | wall to 95% (s) | final train / val acc | "
             "steps run | wall (s) |", "|---|---|---|---|---|---|---|---|"]
    for x in r["runs"]:
        lines.append(f"| {x['name']} | {x['seed']} | {x['steps_to_95'] or 'not reached'} | "
                     f"{x['steps_to_99'] or 'not reached'} | {x['wall_to_95_s'] or '-'} | "
                     f"{x['final_train_acc']:.3f} / {x['final_val_acc']:.3f} | {x['steps']} | {x['wall_s']:.0f} |")
    return "\n".join(lines)


def rope_table(path: Path) -> str:
    r = json.loads(path.read_text())
    buckets = list(r["study"]["buckets"])
    out = []
    for stage in dict.fromkeys(x["stage"] for x in r["results"]):
        out += [f"**{stage}** — token accuracy / exact match / loss (factor)", "",
                "| mode | scaling | " + " | ".join(f"{b} {tuple(r['study']['buckets'][b])}" for b in buckets) + " |",
                "|---|---|" + "---|" * len(buckets)]
        rows: dict[tuple[str, str], dict[str, str]] = {}
        for x in r["results"]:
            if x["stage"] == stage:
                rows.setdefault((x["mode"], x["scaling"]), {})[x["bucket"]] = (
                    f"{x['token_acc']:.2f} / {x['exact']:.2f} / {x['loss']:.2f} (s={x['factor']:g})")
        for (mode, scaling), cells in rows.items():
            out.append(f"| {mode} | {scaling} | " + " | ".join(cells.get(b, "-") for b in buckets) + " |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    which = sys.argv[1] if len(sys.argv) > 1 else "both"
    if which in ("grokfast", "both"):
        print(grokfast_table(RESULTS / "grokfast_modarith.json"))
        print()
    if which in ("rope", "both"):
        print(rope_table(RESULTS / "rope_extension.json"))
