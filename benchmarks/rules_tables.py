"""The rule-level tables (docs/decontamination.md, docs/benchmarks.md) from benchmarks/results/rules.json."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
FAMILIES = {
    "re_arc": "RE-ARC verifiers",
    "barc_seeds": "BARC seeds",
    "barc_synthetic": "BARC synthetic-problem programs",
}


def _done(part: dict) -> str:
    if part.get("complete"):
        return f"all {part['programs_total']} programs"
    return f"**measured fraction: {part['programs_done']} of {part['programs_total']} programs**"


def _cost(c: dict) -> str:
    loads = c["load_avg_1min"]
    mine = f" + {c['arcforge_cpu_s']:.0f} in arcforge" if "arcforge_cpu_s" in c else ""
    budget = f", {c['program_s']:g} CPU s a program" if "program_s" in c else ""
    wall = f", {c['wall_limit_s']:g} s wall" if "wall_limit_s" in c else ""
    return (
        f"{c['wall_s']:.0f} s wall with {c['workers']} sandbox workers on a shared 2-core machine (1-min "
        "load "
        f"average {min(loads):.1f}-{max(loads):.1f}), {c['worker_cpu_s']:.0f} CPU s in the workers{mine}, "
        f"{c['calls']:,} calls (limits: {c['call_s']:g} s CPU{wall} and {c['memory_mb']} MB a call{budget})"
    )


def own_lines(own: dict) -> list[str]:
    out = ["| programs | reference | implement their own task's rule | misses |", "|---|---|---|---|"]
    for fam, title in FAMILIES.items():
        f = own.get(fam)
        if not f:
            continue
        misses = (
            ", ".join(
                f"`{m['derived_from'].rsplit('/', 1)[1]}`" + (f" ({m['error']})" if m["error"] else "")
                for m in f["misses"]
            )
            or "none"
        )
        out.append(
            f"| {title} | ARC-AGI-1 training | {f['own_rule']} / {f['programs']} = "
            f"**{100 * f['share']:.1f}%** | {misses} |"
        )
    other = sum(len(own[f]["other_training_tasks_solved"]) for f in FAMILIES if f in own)
    out += [
        "",
        f"- With `--eval arc_agi_1:training` ({_done(own)}): {other} more (program, training task) "
        f"matches besides their own task. Cost: {_cost(own['cost'])}.",
    ]
    return out


def eval_lines(ev: dict) -> list[str]:
    out = [
        "| programs | checked | solve an evaluation task | programs with failed calls | given up "
        "(tasks not reached) |",
        "|---|---|---|---|---|",
    ]
    for fam, title in FAMILIES.items():
        f = ev["by_family"].get(fam)
        if f and f["programs"]:
            out.append(
                f"| {title} | {f['programs']} | {f['solving_an_eval_task']} | {f['with_failures']} | "
                f"{f['given_up']} ({f.get('unchecked', 0):,}) |"
            )
    solved = "; ".join(f"`{k.split(':', 1)[1]}` -> {', '.join(v)}" for k, v in sorted(ev["solving"].items()))
    c = ev["cost"]
    cpu = c["worker_cpu_s"] + c.get("arcforge_cpu_s", 0)
    out += [
        "",
        f"- Default reference ({ev['reference_tasks']} tasks: ARC-AGI-1 and ARC-AGI-2 evaluation), "
        f"{_done(ev)}: **{ev['programs_solving']} programs solve {ev['eval_tasks_solved']} evaluation "
        f"tasks**: {solved or 'none'}.",
        f"- Cold cache: {_cost(c)}. **{cpu:.0f} CPU s in all: {cpu / 2 / 60:.1f} minutes on 2 free cores**"
        + (
            f"; {ev['unchecked']:,} of {ev['checks']:,} (program, task) checks not reached by given-up "
            "programs"
            if "checks" in ev
            else ""
        )
        + ".",
    ]
    return out


def warm_line(w: dict) -> str:
    if "build_check_s" not in w:
        return (
            f"- Warm rebuild: the check answered from the cache in {w['warm_check_s']:.2f} s; `build` "
            f"{w['build_s']:.2f} s without it: **{w['ratio']:.3f}x** ({w['note']})."
        )
    return (
        f"- Warm rebuild (1-min load average {w['load_avg_1min']:.1f}): `build --exclude-eval --check-rules` "
        f"{w['build_check_s']:.2f} s wall / {w['build_check_cpu_s']:.2f} CPU s, without the rule level "
        f"{w['build_s']:.2f} s / {w['build_cpu_s']:.2f} CPU s: **{w['ratio']:.3f}x wall, "
        f"{w['cpu_ratio']:.3f}x "
        "CPU**; reports byte-identical to the cold build: "
        f"{'yes' if w['reports_identical_to_first'] else 'NO'}. "
        f"The stage alone for all {w['stage_programs']} programs x {w['stage_references']} tasks (catalogue, "
        f"reference key, one summary read): {w['stage_s']:.2f} s wall / {w['stage_cpu_s']:.2f} CPU s, "
        f"{w['stage_ratio']:.3f}x the build ({w['note']})."
    )


def rules_block(path: Path | None = None) -> str:
    r = json.loads((path or RESULTS / "rules.json").read_text())
    out: list[str] = []
    if "own" in r:
        out += [*own_lines(r["own"]), ""]
    if "eval" in r:
        out += [*eval_lines(r["eval"]), ""]
    if "warm" in r:
        out.append(warm_line(r["warm"]))
    out.append("- `python benchmarks/bench_rules.py`; `benchmarks/results/rules.json`.")
    return "\n".join(out)
