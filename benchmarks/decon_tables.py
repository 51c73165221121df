"""Tables of the disguise benchmark (``benchmarks/results/decontamination.json``), for ``tables.py``."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

WHAT = {
    "shuffle": "pairs shuffled, train/test roles re-split",
    "sym1": "rot90 (+ shuffle)",
    "sym2": "rot180",
    "sym3": "rot270",
    "sym4": "flip left-right",
    "sym5": "flip top-bottom",
    "sym6": "transpose",
    "sym7": "anti-transpose",
    "recolor_keep0": "color permutation, 0 kept",
    "recolor_move0": "color permutation, 0 moved",
    "drop_1": "one pair dropped",
    "drop_half": "half the pairs dropped (3+ pairs)",
    "drop_tests": "every test pair dropped (train pairs only)",
    "swap_roles": "train and test roles swapped",
    "plant_test": "each test pair, symmetry + recoloring, planted into a real non-evaluation task",
    "plant_train": "one train pair planted likewise",
    "combo_drop_add": "symmetry + recoloring (0 moved) + shuffle + a pair dropped + a foreign pair added",
    "combo_all_pairs": "symmetry + recoloring + shuffle + 2 foreign pairs added",
    "near_edit": "every output edited in 1-3 cells, symmetry + recoloring",
}


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def disguise_block() -> str:
    r = json.loads((RESULTS / "decontamination.json").read_text())
    lines = [
        "| disguise | copies | recall | keeps a test pair or all pairs: copies / recall | excluded at level "
        "(kept) | false positives |",
        "|---|---|---|---|---|---|",
    ]
    for name, d in r["disguises"].items():
        levels = ", ".join(f"{k} {v}" for k, v in sorted(d["levels"].items(), key=lambda kv: -kv[1]))
        lines.append(
            f"| `{name}`: {WHAT.get(name, '')} | {d['n']} | {_pct(d['recall'])} | "
            f"{d['goal_n']} / {_pct(d['goal_recall'])} | {levels} | {d['false_positives']} |"
        )
    rc, sy, th = r["real_corpus"], r["synthetic"], r["threshold"]
    lines += [
        "",
        f"- Copies that keep at least one full evaluation test pair or all of a task's pairs: "
        f"**{r['goal']['copies']:,}, recall {_pct(r['goal']['recall'])}**; the {r['evaluation_test_pairs']} "
        f"evaluation test pairs each planted into a real task: `plant_test` above.",
        f"- Real corpus alone ({r['corpus_tasks']:,} tasks): {rc['excluded']} excluded, {rc['known']} known "
        "copies, "
        f"**{len(rc['false_positives'])} false positives**, {len(rc['missed_known'])} known copies missed. "
        f"Real tasks excluded in any disguise run beyond the known copies: "
        f"{len(r['false_positives_with_disguises'])}.",
        f"- Synthetic tasks (`arcforge.synthetic`, every family): {sy['tasks']:,}, "
        f"**{len(sy['excluded'])} excluded**, {sy['reported']} reported.",
        f"- Near-duplicate threshold chosen on the tune half: **{th['chosen_on_tune_half']}** (middle of "
        f"{th['plateau'][0]}-{th['plateau'][1]}: no false positive, recall within 0.05 of the best); tune "
        "half recall "
        f"{_pct(th['tune']['recall'])} / {th['tune']['false_positives']} false positives, report half "
        f"**{_pct(th['report']['recall'])} / {th['report']['false_positives']}** "
        f"({th['negatives']:,} clean tasks split by id).",
    ]
    if "build" in r:
        b = r["build"]
        lines.append(
            f"- Cost: `build` of every mirrored source {b['build_s']} s, with `--exclude-eval` "
            f"{b['build_exclude_eval_s']} s: **{b['ratio']}x** (medians of {b['reps']} alternated runs)."
        )
    lines.append(
        f"- Seed {r['seed']}; `python benchmarks/bench_decon.py` ({r['seconds']:.0f} s); "
        "`benchmarks/results/decontamination.json`."
    )
    return "\n".join(lines)
