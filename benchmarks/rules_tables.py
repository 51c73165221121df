"""The rule-level tables (docs/decontamination.md, docs/benchmarks.md) from benchmarks/results/rules.json."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = {"re_arc": "RE-ARC verifiers", "barc_seeds": "BARC seeds", "barc_synthetic": "BARC synthetic-problem programs"}


def _done(part: dict) -> str:
    if part.get("complete"):
        return f"all {part['programs_total']} programs"
    return f"**measured fraction: {part['programs_done']} of {part['programs_total']} programs**"


def _cost(c: dict) -> str:
    loads = c["load_avg_1min"]
    return (f"{c['wall_s']:.0f} s wall with {c['workers']} sandbox workers on a shared 2-core machine (1-min load "
            f"average {min(loads):.1f}-{max(loads):.1f}), {c['worker_cpu_s']:.0f} CPU s in the workers, "
            f"{c['calls']:,} calls (limits: {c['call_s']:g} s and {c['memory_mb']} MB a call)")


def own_lines(own: dict) -> list[str]:
    out = ["| programs | reference | implement their own task's rule | misses |", "|---|---|---|---|"]
    for fam, title in FAMILIES.items():
        f = own.get(fam)
        if not f:
            continue
        misses = ", ".join(f"`{m['derived_from'].rsplit('/', 1)[1]}`" + (f" ({m['error']})" if m["error"] else "")
                           for m in f["misses"]) or "none"
        out.append(f"| {title} | ARC-AGI-1 training | {f['own_rule']} / {f['programs']} = "
                   f"**{100 * f['share']:.1f}%** | {misses} |")
    other = sum(len(own[f]["other_training_tasks_solved"]) for f in FAMILIES if f in own)
    out += ["", f"- With `--eval arc_agi_1:training` ({_done(own)}): {other} more (program, training task) "
                f"matches besides their own task. Cost: {_cost(own['cost'])}."]
    return out


def eval_lines(ev: dict) -> list[str]:
    out = ["| programs | checked | solve an evaluation task | programs with failed calls | given up |",
           "|---|---|---|---|---|"]
    for fam, title in FAMILIES.items():
        f = ev["by_family"].get(fam)
        if f and f["programs"]:
            out.append(f"| {title} | {f['programs']} | {f['solving_an_eval_task']} | {f['with_failures']} | "
                       f"{f['given_up']} |")
    solved = "; ".join(f"`{k.split(':', 1)[1]}` -> {', '.join(v)}" for k, v in sorted(ev["solving"].items()))
    out += ["", f"- Default reference ({ev['reference_tasks']} tasks: ARC-AGI-1 and ARC-AGI-2 evaluation), "
                f"{_done(ev)}: **{ev['programs_solving']} programs solve {ev['eval_tasks_solved']} evaluation "
                f"tasks**: {solved or 'none'}.",
            f"- Cold cache: {_cost(ev['cost'])}."]
    return out


def rules_block(path: Path | None = None) -> str:
    r = json.loads((path or RESULTS / "rules.json").read_text())
    out: list[str] = []
    if "own" in r:
        out += [*own_lines(r["own"]), ""]
    if "eval" in r:
        out += [*eval_lines(r["eval"]), ""]
    if "warm" in r:
        w = r["warm"]
        out += [f"- Warm rebuild: the check answered from the cache in {w['warm_check_s']:.2f} s; `build` "
                f"{w['build_s']:.2f} s without it: **{w['ratio']:.3f}x** ({w['note']})."]
    out.append("- `python benchmarks/bench_rules.py`; `benchmarks/results/rules.json`.")
    return "\n".join(out)
