"""A massive corpus in one `arcforge build` command: generation included, every task decontaminated.

    python benchmarks/bench_million.py --generate re_arc=50 --generate barc=50 --tasks-per-generator 1800
    python benchmarks/bench_million.py ... --label 250k   # results are merged into the file by label

A fresh ``ARCFORGE_HOME`` is filled from the offline mirror (``arcforge fetch --all --mirror``, not timed),
then the command under test runs in its own process, exactly as a user types it:

    arcforge build --out OUT --generate ... --tasks-per-generator T --exclude-eval --no-check-rules
                   --no-cache --workers W --json

(the rule level, which runs the programs on the evaluation tasks, is left off unless ``--check-rules``: then
the command is the build's default with ``--generate``, every level of ``--exclude-eval``, its rule cache
cold in the fresh home). The
baseline, measured in the same run before it: the same command without ``--generate`` (the mirrored
sources alone). Measured: wall time; CPU seconds of the build and every process under it (rusage of
waited children: its workers and their sandbox workers); peak memory as the largest sum over the process
tree of RSS and of PSS, sampled every 0.5 s; the load average (others' work on the shared 2-core machine)
before and after; the stages from the progress lines the command prints (each line's first appearance:
parse and generate, then dedup and counting from the parse's last line, write). Then the output is read back:
tasks written, distinct fingerprints (order- and role-invariant content hashes: distinct content), per source,
the exclusions per level and the size on disk. Writes ``benchmarks/results/million.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "million.json"
from benchmarks.bench_scale import TreePeak  # noqa: E402  (after the path is set)

STAGES = (("parse", "Parsing"), ("dedup", "dedup:"), ("write", "Writing shards"))


def measure(cmd: list[str], env: dict, log: Path) -> dict:
    """Run ``cmd``: wall, CPU of the tree, peak tree RSS/PSS, load, stage starts; stderr copied to ``log``."""
    load0 = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    starts: dict[str, float] = {}

    def follow() -> None:
        with log.open("a") as f:
            for line in proc.stderr:
                now = time.perf_counter() - t0
                f.write(f"[{now:8.1f}s load {os.getloadavg()[0]:.1f}] {line}")
                f.flush()
                for stage, prefix in STAGES:
                    if line.startswith(prefix):
                        starts.setdefault(stage, now)
                if line.startswith("Parsing sources") and line.rstrip().endswith("done"):
                    starts.setdefault("dedup", now)  # the parse is over: dedup and counting follow

    th = threading.Thread(target=follow, daemon=True)
    with TreePeak(proc.pid, 0.5) as peak:
        th.start()
        out = proc.stdout.read()
        proc.wait()
        wall = time.perf_counter() - t0
    th.join()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed (exit {proc.returncode}); see {log}")
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {
        "wall_s": round(wall, 1),
        "cpu_s": round(cpu, 1),
        "peak_rss_mb": round(peak.rss_kb / 1024),
        "peak_pss_mb": round(peak.pss_kb / 1024),
        "load_before": [round(x, 2) for x in load0],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "stages_s": _stages(starts, wall),
        "report": json.loads(out),
    }


def _stages(starts: dict[str, float], wall: float) -> dict[str, float]:
    """Seconds from each stage's first progress line to the next stage's (the last: to the end)."""
    marks = sorted(starts.items(), key=lambda kv: kv[1])
    ends = [t for _, t in marks[1:]] + [wall]
    return {name: round(end - t, 1) for (name, t), end in zip(marks, ends, strict=True)} | (
        {"startup": round(marks[0][1], 1)} if marks else {}
    )


def read_back(out: Path) -> dict:
    """Tasks written, distinct fingerprints, per source, excluded per level, bytes on disk."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from arcforge.build.reports import read_report

    files = sorted(out.rglob("*.parquet"))
    t = pq.ParquetDataset(files).read(columns=["source", "fingerprint"]) if files else None
    per_source = (
        {}
        if t is None
        else {
            r["source"]: r["count_all"]
            for r in t.group_by("source").aggregate([([], "count_all")]).to_pylist()
        }
    )
    excluded = read_report(out, "excluded").column("level").to_pylist()
    return {
        "tasks": 0 if t is None else t.num_rows,
        "distinct_fingerprints": 0 if t is None else pc.count_distinct(t["fingerprint"]).as_py(),
        "per_source": dict(sorted(per_source.items())),
        "excluded_by_level": {lvl: excluded.count(lvl) for lvl in sorted(set(excluded))},
        "disk_mb": round(sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20, 1),
    }


def command(out: Path, args: argparse.Namespace, generate: bool) -> list[str]:
    cmd = [
        sys.executable,
        "-m",
        "arcforge",
        "build",
        "--out",
        str(out),
        "--exclude-eval",
        *([] if args.check_rules else ["--no-check-rules"]),
        "--no-cache",
        "--workers",
        str(args.workers),
        "--json",
    ]
    if generate:
        for g in args.generate:
            cmd += ["--generate", g]
        for t in args.tasks_per_generator:
            cmd += ["--tasks-per-generator", t]
    return cmd


def _shown(cmd: list[str]) -> str:
    """The command as a user types it (no local paths)."""
    i = cmd.index("build")
    words = ["arcforge", *cmd[i:]]
    words[words.index("--out") + 1] = "corpus"
    return " ".join(words)


def run(args: argparse.Namespace) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="bench-million-", dir=args.tmp))
    env = {**os.environ, "ARCFORGE_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    log = Path(args.log)
    try:
        subprocess.run(
            [sys.executable, "-m", "arcforge", "fetch", "--all", "--mirror", str(args.mirror)],
            env=env,
            capture_output=True,
            check=False,
        )
        row: dict = {"label": args.label, "workers": args.workers, "cpus": os.cpu_count()}
        runs = [("corpus", True)] if args.no_baseline else [("baseline", False), ("corpus", True)]
        for name, generate in runs:
            cmd = command(tmp / name, args, generate)
            with log.open("a") as f:
                f.write(f"== {name}: {_shown(cmd)}\n")
            m = measure(["nice", *cmd] if args.nice else cmd, env, log)
            rep = m.pop("report")
            m.update(
                command=_shown(cmd),
                output=read_back(tmp / name),
                generated=rep.get("generated", {}),
                dedup={k: v for k, v in rep.get("dedup", {}).items() if v},
                quarantined=rep.get("total_quarantined", 0),
            )
            row[name] = m
            print(json.dumps({name: {k: v for k, v in m.items() if k != "output"}}), flush=True)
            shutil.rmtree(tmp / name, ignore_errors=True)
        if "baseline" in row and "corpus" in row:
            b, c = row["baseline"], row["corpus"]
            row["ratios"] = {
                "tasks": round(c["output"]["tasks"] / b["output"]["tasks"], 1),
                "wall": round(c["wall_s"] / b["wall_s"], 1),
                "cpu": round(c["cpu_s"] / b["cpu_s"], 1),
            }
        return row
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generate", action="append", default=[], help="as build's --generate (repeatable)")
    ap.add_argument("--tasks-per-generator", action="append", default=[], help="as build's (repeatable)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--check-rules",
        action="store_true",
        help="leave the rule level on (build's default when generating): programs on the evaluation tasks",
    )
    ap.add_argument("--label", default="run")
    ap.add_argument("--mirror", default=str(ROOT.parent / "shared" / "arc-sources"))
    ap.add_argument("--tmp", default=None, help="folder for the temporary home and outputs")
    ap.add_argument("--log", default=str(Path(tempfile.gettempdir()) / "bench-million.log"))
    ap.add_argument("--no-baseline", action="store_true", help="skip the build without --generate")
    ap.add_argument("--nice", action="store_true", help="run the builds under nice (a shared machine)")
    ap.add_argument("--note", default="", help="a line on the machine's state, kept with the results")
    args = ap.parse_args()
    row = run(args)
    if args.note:
        row["note"] = args.note
    data = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"runs": []}
    data["runs"] = [r for r in data["runs"] if r["label"] != args.label] + [row]
    RESULTS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
