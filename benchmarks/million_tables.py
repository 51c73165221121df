"""The massive-corpus table (docs/generators.md, docs/benchmarks.md) from benchmarks/results/million.json."""

from __future__ import annotations

import json
from pathlib import Path

GOAL_TASKS = 1_000_000
GOAL_MINUTES = 30


def _row(name: str, r: dict) -> str:
    out, st = r["output"], r["stages_s"]
    stages = " / ".join(f"{st[k]:.0f}" if k in st else "-" for k in ("parse", "dedup", "write"))
    load = f"{r['load_before'][0]:.1f} / {r['load_after'][0]:.1f}"
    return (
        f"| {name} | {out['tasks']:,} | {out['distinct_fingerprints']:,} | {r['wall_s'] / 60:.1f} | "
        f"{r['cpu_s']:,.0f} | {stages} | {r['peak_pss_mb']:,} | {r['peak_rss_mb']:,} | "
        f"{out['disk_mb']:,.0f} | {load} |"
    )


def _goal(run: dict) -> str:
    c = run["corpus"]
    tasks, minutes, cpu_min = c["output"]["distinct_fingerprints"], c["wall_s"] / 60, c["cpu_s"] / 60
    enough = tasks >= GOAL_TASKS
    if minutes <= GOAL_MINUTES:
        verdict = (
            f"met: {tasks:,} distinct tasks in {minutes:.1f} min" if enough else f"not met: {tasks:,} tasks"
        )
    else:
        verdict = (
            f"not met as measured: {minutes:.1f} min at a 1-min load average of {c['load_before'][0]:.1f} "
            f"on 2 CPUs; the work is {c['cpu_s']:,.0f} CPU s, {cpu_min / 2:.1f} min on 2 idle CPUs if "
            "it kept both busy (an estimate, not measured)"
        )
    return (
        f"Goal, at least {GOAL_TASKS:,} distinct decontaminated tasks in {GOAL_MINUTES} min on 2 CPUs: "
        f"{verdict}."
    )


def million_block(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = [
        "| run | tasks written | distinct | wall min | CPU s | parse+generate / dedup / write s | "
        "peak PSS MB | peak RSS MB | on disk MB | load before / after |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for run in data["runs"]:
        for name in ("baseline", "corpus"):
            if name in run:
                label = (
                    "mirrored sources only (baseline)" if name == "baseline" else f"`{run['label']}` corpus"
                )
                lines.append(_row(label, run[name]))
        c = run["corpus"]
        gen = c["generated"]
        made = ", ".join(
            f"{s} {g.get('kept', 0):,} examples -> {g.get('tasks', 0):,} tasks" for s, g in gen.items()
        )
        exc = ", ".join(f"{k} {v:,}" for k, v in c["output"]["excluded_by_level"].items())
        notes += [
            f"`{run['label']}`: `{c['command']}` ({run['workers']} workers). Generated: {made}. "
            f"Excluded by `--exclude-eval`: {exc}. Per source: "
            + ", ".join(f"{s} {n:,}" for s, n in c["output"]["per_source"].items())
            + "."
            + (
                f" Ratios to the baseline: {run['ratios']['tasks']}x the tasks for {run['ratios']['cpu']}x "
                "the "
                f"CPU time."
                if "ratios" in run
                else ""
            )
            + (f" {run['note']}" if run.get("note") else ""),
            _goal(run),
        ]
    tail = []
    if "stage_cpu" in data:
        sc = data["stage_cpu"]
        tail = [
            f"Where the CPU goes after the parse, {sc['what']}: dedup {sc['dedup_cpu_s']:.0f} s "
            f"(about {100 * sc['dedup_color_stats_share']:.0f}% of it the per-grid color statistics), "
            "writing "
            f"{sc['write_cpu_s']:.0f} s (of which {sc['write_arrow_bytes_per_split_cpu_s']:.0f} s measuring "
            "the Arrow bytes of each split for the card and the shard count); the rest of the build's CPU "
            "is the parse stage: running the generators, sampling and encoding the tasks.",
            "",
        ]
    return "\n".join(
        lines
        + [""]
        + [n for pair in zip(notes[::2], notes[1::2], strict=True) for n in (*pair, "")]
        + tail
        + [
            "*distinct*: distinct `fingerprint` values (the order- and role-invariant hash of a task's "
            "pairs) among the tasks written. Stages start at their first progress line (dedup: at the last "
            "line of the parse). CPU s: the "
            "build and every process under it (workers and sandbox workers). Peak memory: the "
            "largest sum over the build's processes (PSS counts pages shared with forked workers "
            "once). `benchmarks/results/million.json`, `python benchmarks/bench_million.py`."
        ]
    )
