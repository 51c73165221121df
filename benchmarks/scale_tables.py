"""Tables for ``benchmarks/results/scale.json`` (written by ``bench_scale.py``), used by ``tables.py``."""

from __future__ import annotations

import json
from pathlib import Path


def _s(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.0f}"


def scale_block(path: Path) -> str:
    r = json.loads(path.read_text())
    cpus = r.get("machine", {}).get("cpus_available", "?")
    out: list[str] = []
    if "json" in r:
        j = r["json"]
        out += [
            f"JSON parsers on the {j['files']:,} files ({j['mb']} MB) the mirrored build reads, CPU seconds "
            f"(best of {j['repeat']}):",
            "",
            "| parser | CPU s | x `json` |",
            "|---|---|---|",
        ]
        out += [
            f"| {k}{' (used)' if k == j['fastest_exact'] else ''} | {v:.3f} | {j['x_stdlib'][k]:.2f} |"
            for k, v in j["cpu_s"].items()
        ]
        out += [
            "",
            "`orjson` alone returns floats for integers beyond 64 bits (a result `json` would not give); "
            "the guard that keeps it exact costs more than it saves.",
            "",
        ]
    if "sources" in r:
        s = r["sources"]
        out += [
            f"The {s['files']:,} files of the 11 mirrored sources ({s['tasks_found']:,} tasks found, "
            f"{s['tasks_written']:,} written): `build --no-cache --exclude-eval` against the floor "
            "(enumerate, "
            f"read and `json.loads` the same files, serially), alternated {s['repeat']} times in one run, "
            f"medians. *work* = after the interpreter started (as the floor); *process* = the whole "
            f"command. {cpus} CPUs available.",
            "",
            "| run | work wall s | x floor | process wall s | CPU s | x floor CPU | peak PSS MB | load |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for name, m in s["median"].items():
            label = "floor (stdlib json)" if name == "floor" else f"build, {name.split('_w')[1]} worker(s)"
            out.append(
                f"| {label} | {m['work_wall_s']:.2f} | **{m['x_floor_work_wall']:.2f}** | "
                f"{m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['x_floor_cpu']:.2f} | {m['peak_pss_mb']:.0f} | "
                f"{m['load_before']:.1f} |"
            )
        same = "identical" if s["identical_output_across_workers"] else "NOT identical"
        out += ["", f"Output files across worker counts: {same} (sha256 of every file)."]
        if "loadavg_start" in s:
            out += [
                "Load average (1/5/15 min) when the run started: "
                f"{' / '.join(map(str, s['loadavg_start']))}; "
                f"when it ended: {' / '.join(map(str, s['loadavg_end']))}."
            ]
        out += [""]
    if r.get("big"):
        out += [
            "End to end (parse, validate, dedup with `--exclude-eval` against ARC-AGI-1/2 evaluation, "
            "write), "
            "`--no-cache`; peak memory summed over the build's processes (PSS counts pages shared with "
            "forked workers once, RSS counts them in every process):",
            "",
            "| input | tasks | workers | wall s | parse / dedup / write s | CPU s | CPU us/task | tasks/s | "
            "peak PSS MB | peak RSS MB | load before/after |",
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for b in r["big"]:
            what = "synthetic" if b["kind"] == "synthetic" else f"local folder ({b['input'].split(';')[0]})"
            st = b.get("stages_s")
            stages = f"{_s(st['parse'])} / {_s(st['dedup_and_counts'])} / {_s(st['write'])}" if st else "-"
            out.append(
                f"| {what} | {b['tasks']:,} | {b['workers']} | {_s(b['wall_s'])} | {stages} | "
                f"{_s(b['cpu_s'])} | {b['cpu_s'] / b['tasks_found'] * 1e6:.0f} | {b['tasks_per_s']:,} | "
                f"{b['peak_pss_mb']:,} | {b['peak_rss_mb']:,} | "
                f"{b['load_before']:.1f} / {b['load_after']:.1f} |"
            )
        out += [
            "",
            "Local folders: examples drawn from a pool of 50,000 random grids (sides 3-12), 3 train + "
            "1 test per task. `tasks` counts the generated tasks; tasks/s counts every task found, with the "
            "800 + 1,120 of ARC-AGI-1/2 (whose evaluation splits are the reference). Wall time on this "
            "shared machine is mostly waiting for a CPU when the load is high; CPU s is the work done.",
            "",
        ]
    out += _goals(r)
    out.append("(`benchmarks/results/scale.json`, `python benchmarks/bench_scale.py`)")
    return "\n".join(out)


def _goals(r: dict) -> list[str]:
    """The targets, each with the measured figure it is judged on."""
    lines = []
    cpus = r.get("machine", {}).get("cpus_available")
    if "sources" in r and cpus:
        m = r["sources"]["median"].get(f"build_w{cpus}")
        if m:
            ok = "met" if m["x_floor_wall"] <= 2 else "not met"
            lines.append(
                f"- 11 sources at most 2x the stdlib-json floor, wall, {cpus} CPUs: "
                f"**{m['x_floor_wall']:.2f}x** process wall ({ok}, at load {m['load_before']:.1f}; "
                f"after the interpreter started: {m['x_floor_work_wall']:.2f}x; CPU {m['x_floor_cpu']:.2f}x)."
            )
    for b in r.get("big", []):
        if b["tasks"] >= 1_000_000:
            wall = "met" if b["wall_s"] <= 240 else "not met"
            mem = (
                ("met" if b["peak_pss_mb"] <= 4096 else "not met") + " by PSS, the memory the build's "
                "processes hold; their RSS sum counts the pages the forked workers share with the parent in "
                "every process"
            )
            what = b["kind"] if b["kind"] == "synthetic" else f"local, {b['input'].split(';')[0]}"
            lines.append(
                f"- {b['tasks']:,} tasks ({what}, {b['workers']} workers): wall {b['wall_s']:.0f} s "
                f"against 240 s ({wall}, at load {b['load_before']:.1f}; {b['cpu_s']:.0f} CPU s in all), "
                f"peak {b['peak_pss_mb']:,} MB PSS / {b['peak_rss_mb']:,} MB RSS against 4,096 MB ({mem})."
            )
    if "sources" in r:
        same = r["sources"]["identical_output_across_workers"]
        lines.append(
            f"- Byte-identical output whatever the worker count: {'yes' if same else 'NO'} in this run "
            "(and `tests/test_build_parallel.py`)."
        )
    return ["Goals:", "", *lines, ""] if lines else []
