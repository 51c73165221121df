"""Benchmark of ``arcforge export`` -> benchmarks/results/export.json.

    python benchmarks/bench_export.py trm [--fraction 8] [--num-aug 1000] [--full]
    python benchmarks/bench_export.py scale [--tasks 1000000]

``trm``: ``export --format trm --num-aug N`` of ARC-AGI-1 (training and evaluation) and ConceptARC (its 160
corpus tasks, as in TRM's kaggle/combined files) against TRM's own builder
(../shared/clients/TinyRecursiveModels, ``python -m dataset.build_arc_dataset``) on arcforge's kaggle
export of the same tasks, in the same run, one after the other, each in its own process (wall time and
peak RSS from ``wait4``). ``--fraction K`` runs both on 1/K of the tasks (ARC ids starting with the first
16/K hex digits, 16/K of the 16 ConceptARC concepts): the builder holds every example of its output in
memory, which for the whole set at 1,000 augmentations is more than this shared machine can spare; the
fraction is recorded. ``--full`` also times arcforge alone on every task.

``scale``: a dataset of N tasks (the 976 ARC-AGI-1 and ConceptARC tasks repeated under new ids, written as
shards), exported to ``kaggle`` and to ``jsonl``: wall time, tasks/s, peak RSS, output size.

Everything runs under the priority this script was started with (run it with ``nice``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT)]
SHARED = ROOT.parent / "shared"
TRM = SHARED / "clients" / "TinyRecursiveModels"
WORK = HERE / "_work" / "export"
RESULTS = HERE / "results" / "export.json"
CONCEPTS = (
    "AboveBelow",
    "Center",
    "CleanUp",
    "CompleteShape",
    "Copy",
    "Count",
    "ExtendToBoundary",
    "ExtractObjects",
    "FilledNotFilled",
    "HorizontalVertical",
    "InsideOutside",
    "MoveToBoundary",
    "Order",
    "SameDifferent",
    "TopBottom2D",
    "TopBottom3D",
)


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """Run a command; its wall time and peak RSS (its own, from wait4)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = proc.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{out[-3000:]}")
    return {
        "seconds": round(wall, 2),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        "log_tail": out[-400:],
    }


def du_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def build_arc() -> Path:
    """ARC-AGI-1 and ConceptARC built from the offline mirror (once)."""
    from arcforge.sources.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    data = WORK / "arc"
    if (data / "provenance.json").is_file():
        return data
    home = WORK / "home"
    ms = [
        m
        for m in mirrored(load_manifests(), SHARED / "arc-sources")
        if m.name in ("arc_agi_1", "concept_arc")
    ]
    populate_cache(home, ms, SHARED / "arc-sources")
    env = {**os.environ, "ARCFORGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    run(
        [
            sys.executable,
            "-m",
            "arcforge",
            "build",
            "-s",
            "arc_agi_1",
            "-s",
            "concept_arc",
            "--out",
            str(data),
            "--workers",
            "1",
        ],
        env=env,
    )
    return data


def subsets(fraction: int) -> list[str]:
    hexes = "0123456789abcdef"[: 16 // fraction]
    concepts = CONCEPTS[: 16 // fraction]
    glob = f"[{hexes}]*" if len(hexes) < 16 else "*"
    return [
        f"training=arc_agi_1/training/{glob}",
        f"evaluation=arc_agi_1/evaluation/{glob}",
        "concept=" + ",".join(f"concept_arc/corpus/{c}/*" for c in concepts),
    ]


def arcforge_cmd(data: Path, out: Path, fmt: str, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "arcforge",
        "export",
        "-d",
        str(data),
        "-o",
        str(out),
        "-f",
        fmt,
        "--json",
        *extra,
    ]


def bench_trm(fraction: int, num_aug: int, full: bool) -> dict:
    data = build_arc()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARCFORGE_LOG_SECONDS": "30"}
    sub_args = [x for s in subsets(fraction) for x in ("--subset", s)]
    kaggle = WORK / "kaggle"
    shutil.rmtree(kaggle, ignore_errors=True)
    run(arcforge_cmd(data, kaggle, "kaggle", sub_args), env=env)
    tasks = sum(
        len(json.loads((kaggle / f"arc-agi_{s}_challenges.json").read_text()))
        for s in ("training", "evaluation", "concept")
    )
    ours_out, theirs_out = WORK / "trm_arcforge", WORK / "trm_builder"
    for p in (ours_out, theirs_out):
        shutil.rmtree(p, ignore_errors=True)
    ours = run(
        arcforge_cmd(data, ours_out, "trm", [*sub_args, "--num-aug", str(num_aug), "--eval-demos-in-train"]),
        env=env,
    )
    theirs = run(
        [
            sys.executable,
            "-m",
            "dataset.build_arc_dataset",
            "--input-file-prefix",
            str(kaggle / "arc-agi"),
            "--output-dir",
            str(theirs_out),
            "--subsets",
            "training",
            "evaluation",
            "concept",
            "--test-set-name",
            "evaluation",
            "--num-aug",
            str(num_aug),
        ],
        cwd=TRM,
    )
    sizes = {"arcforge": du_mb(ours_out), "builder": du_mb(theirs_out)}
    meta = {
        name: json.loads((p / "train" / "dataset.json").read_text())
        for name, p in (("arcforge", ours_out), ("builder", theirs_out))
    }
    result = {
        "tasks": tasks,
        "fraction": f"1/{fraction}",
        "num_aug": num_aug,
        "subsets": subsets(fraction),
        "arcforge": {k: v for k, v in ours.items() if k != "log_tail"}
        | {"output_mb": sizes["arcforge"], "train_puzzles": meta["arcforge"]["total_puzzles"]},
        "builder": {k: v for k, v in theirs.items() if k != "log_tail"}
        | {"output_mb": sizes["builder"], "train_puzzles": meta["builder"]["total_puzzles"]},
        "speedup": round(theirs["seconds"] / ours["seconds"], 2),
        "memory_ratio": round(ours["peak_rss_mb"] / theirs["peak_rss_mb"], 3),
    }
    for p in (ours_out, theirs_out):
        shutil.rmtree(p, ignore_errors=True)
    if full:
        out = WORK / "trm_full"
        shutil.rmtree(out, ignore_errors=True)
        r = run(
            arcforge_cmd(
                data,
                out,
                "trm",
                [
                    *(x for s in subsets(1) for x in ("--subset", s)),
                    "--num-aug",
                    str(num_aug),
                    "--eval-demos-in-train",
                ],
            ),
            env=env,
        )
        result["arcforge_full"] = {
            "tasks": 960,
            "seconds": r["seconds"],
            "cpu_seconds": r["cpu_seconds"],
            "peak_rss_mb": r["peak_rss_mb"],
            "output_mb": du_mb(out),
        }
        shutil.rmtree(out, ignore_errors=True)
    return result


def make_scale_data(n: int) -> Path:
    """N tasks: the built ARC-AGI-1 and ConceptARC rows repeated, new ids (source `gen`, split training)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from arcforge.shards import read_table

    out = WORK / f"scale_{n}"
    if (out / "gen").is_dir():
        return out
    tmp = WORK / f".scale_{n}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    base = read_table(build_arc())
    base = base.set_column(
        base.schema.get_field_index("split"), "split", pa.array(["training"] * base.num_rows)
    )
    base = base.set_column(base.schema.get_field_index("source"), "source", pa.array(["gen"] * base.num_rows))
    per_file, files = 100_000, -(-n // 100_000)
    (tmp / "gen").mkdir(parents=True)
    done = 0
    for f in range(files):
        path = tmp / "gen" / f"training-{f:05d}-of-{files:05d}.parquet"
        with pq.ParquetWriter(path, base.schema) as w:
            rows = 0
            while rows < min(per_file, n - done):
                k = (done + rows) // base.num_rows
                take = base.slice(0, min(base.num_rows, per_file - rows, n - done - rows))
                ids = pc.binary_join_element_wise(
                    pa.scalar(f"gen/{k:05d}"),
                    pc.replace_substring_regex(take.column("id"), r"^[^/]+/", ""),
                    "/",
                )
                w.write_table(take.set_column(0, "id", ids).cast(base.schema), row_group_size=1024)
                rows += take.num_rows
        done += rows
    tmp.rename(out)
    return out


def bench_scale(n: int) -> dict:
    data = make_scale_data(n)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "ARCFORGE_LOG_SECONDS": "30"}
    result = {
        "tasks": n,
        "input": "the 976 ARC-AGI-1 and ConceptARC tasks repeated under new ids",
        "input_mb": du_mb(data),
    }
    for fmt in ("kaggle", "jsonl"):
        out = WORK / f"scale_out_{fmt}"
        shutil.rmtree(out, ignore_errors=True)
        r = run(arcforge_cmd(data, out, fmt, []), env=env)
        result[fmt] = {
            "seconds": r["seconds"],
            "cpu_seconds": r["cpu_seconds"],
            "tasks_per_s": round(n / r["seconds"]),
            "peak_rss_mb": r["peak_rss_mb"],
            "output_mb": du_mb(out),
        }
        shutil.rmtree(out, ignore_errors=True)
    return result


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "nice": os.nice(0),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    t = sub.add_parser("trm")
    t.add_argument("--fraction", type=int, default=8, choices=(1, 2, 4, 8, 16))
    t.add_argument("--num-aug", type=int, default=1000)
    t.add_argument("--full", action="store_true")
    s = sub.add_parser("scale")
    s.add_argument("--tasks", type=int, default=1_000_000)
    args = ap.parse_args(argv)
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    if args.what == "trm":
        results["trm"] = bench_trm(args.fraction, args.num_aug, args.full) | {"machine": machine()}
    else:
        results["scale"] = bench_scale(args.tasks) | {"machine": machine()}
    RESULTS.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
