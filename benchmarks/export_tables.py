"""The table of ``benchmarks/results/export.json`` (``bench_export.py``), for docs/exports.md and
docs/benchmarks.md."""

from __future__ import annotations

import json
from pathlib import Path


def _mb(v: float) -> str:
    return f"{v / 1024:.1f} GB" if v >= 1024 else f"{v:.0f} MB"


def _run(r: dict) -> str:
    cpu = f" ({r['cpu_seconds']:.0f} s CPU)" if "cpu_seconds" in r else ""
    return f"{r['seconds']:.1f} s{cpu}, peak {_mb(r['peak_rss_mb'])}"


def _cpu_ratio(t: dict) -> str:
    a, b = t["arcforge"].get("cpu_seconds"), t["builder"].get("cpu_seconds")
    return f" ({b / a:.1f}x less CPU)" if a and b else ""


def export_block(path: Path) -> str:
    data = json.loads(path.read_text())
    lines = ["| run | tasks | arcforge | TRM's builder | arcforge vs builder |", "|---|---|---|---|---|"]
    machines = []
    if t := data.get("trm"):
        lines.append(
            f"| `trm --num-aug {t['num_aug']}`, {t['fraction']} of ARC-AGI-1 + ConceptARC | {t['tasks']} | "
            f"{_run(t['arcforge'])} | {_run(t['builder'])} | {t['speedup']:.1f}x faster{_cpu_ratio(t)}, "
            f"{t['memory_ratio']:.2f}x the peak memory |"
        )
        if f := t.get("arcforge_full"):
            lines.append(
                f"| `trm --num-aug {t['num_aug']}`, all of ARC-AGI-1 + ConceptARC | {f['tasks']} | "
                f"{_run(f)}, writes {_mb(f['output_mb'])} | not run (see below) | |"
            )
        machines.append(t["machine"])
    if s := data.get("scale"):
        for fmt in ("kaggle", "jsonl"):
            r = s[fmt]
            lines.append(
                f"| `{fmt}` | {s['tasks']:,} | {_run(r)}, {r['tasks_per_s']:,} tasks/s, writes "
                f"{_mb(r['output_mb'])} | | |"
            )
        machines.append(s["machine"])
    notes = []
    if t:
        k = int(t["fraction"].split("/")[1])
        notes.append(
            "TRM's builder holds every example of its output in memory until it writes it: on "
            f"{t['fraction']} "
            f"of the tasks it peaked at {_mb(t['builder']['peak_rss_mb'])}, so on all 960 tasks it would "
            "need "
            f"about {_mb(t['builder']['peak_rss_mb'] * k)}, more than this shared machine can spare; both "
            "ran on the same fraction, one after the other, in one run."
        )
    if s:
        notes.append(f"The {s['tasks']:,} tasks are {s['input']}.")
    loads = ", ".join(str(m.get("load_avg_1m_at_end", "?")) for m in machines)
    notes.append(
        f"Machine: {machines[0]['cpus']} CPUs shared with other work (load average at the end: {loads}), "
        f"runs at nice {machines[0].get('nice', 0)}; `benchmarks/bench_export.py`, "
        "`benchmarks/results/export.json`."
        if machines
        else ""
    )
    return "\n".join(lines) + "\n\n" + " ".join(n for n in notes if n)
