"""Benchmark `arcforge build`: wall time, peak RSS and tasks/s against a plain-JSON-parse floor.

    python benchmarks/bench_build.py [--scales 1,10,100] [--shared ../shared/arc-sources]

1. All mirrored sources, from a fresh cache (build cache off): the build vs the floor = reading and
   ``json.loads`` of exactly the files the build reads (zip members included), in the same run.
2. Growth: ARC-AGI-1 (800 tasks) replicated 1x/10x/100x as one fake source; copy i has its colors
   permuted (a per-copy digit permutation of the raw bytes), so copies are distinct tasks.

Every measurement runs in its own subprocess so peak RSS (``ru_maxrss``) is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child_build(out: str, manifests: str | None, sources: list[str] | None) -> dict:
    from arcforge.build.pipeline import build

    t = time.perf_counter()
    stats = build(
        Path(out), sources=sources, manifests_dir=Path(manifests) if manifests else None, use_cache=False
    )
    return {
        "wall": time.perf_counter() - t,
        "tasks": stats.total_tasks,
        "files": stats.files_read,
        "rss_mb": _rss_mb(),
    }


def child_floor(manifests: str | None, sources: list[str] | None) -> dict:
    """Read + json.loads every file the build would read (same member enumeration), nothing else."""
    from arcforge.build.pipeline import plan_sources
    from arcforge.sources.manifest import load_manifests
    from arcforge.sources.members import ZipCache, glob_members, plain_files

    plans = plan_sources(load_manifests(Path(manifests) if manifests else None), sources, [], [], 0, 0)
    t, c = time.perf_counter(), time.process_time()
    n = 0
    for p in plans:
        files = plain_files(p.root)
        with ZipCache() as zips:
            for tg in p.manifest.tasks:
                for m in glob_members(p.root, tg.include, tg.exclude, zips=zips, files=files):
                    json.loads(m.read())
                    n += 1
    return {"wall": time.perf_counter() - t, "cpu": time.process_time() - c, "files": n, "rss_mb": _rss_mb()}


def run_child(env: dict, *args: str) -> dict:
    r = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def replicate(shared: Path, home: Path, manifests: Path, scale: int) -> str:
    """ARC-AGI-1 x scale as source ``bench_x<scale>`` (a manifest + its cache dir)."""
    name, commit = f"bench_x{scale}", f"{scale:040d}"
    src = home / "sources" / "bench" / name / commit
    files = sorted((shared / "fchollet/ARC-AGI/data").glob("*/*.json"))
    blobs = [(f.parent.name, f.name, f.read_bytes()) for f in files]
    for i in range(scale):
        perm = list("0123456789")
        random.Random(i).shuffle(perm)
        table = bytes.maketrans(b"0123456789", "".join(perm).encode()) if i else None
        for split, fname, data in blobs:
            d = src / "data" / f"copy{i:03d}" / split
            d.mkdir(parents=True, exist_ok=True)
            (d / fname).write_bytes(data.translate(table) if table else data)
    (manifests / f"{name}.toml").write_text(
        f'name = "{name}"\nrepo = "bench/{name}"\ncommit = "{commit}"\nlicense = "Apache-2.0"\n'
        f'format = "standard"\nfiles = ["data/**"]\nid_root = "data"\n\n'
        f'[[tasks]]\nsplit = "training"\ninclude = ["data/*/*/*.json"]\n'
    )
    return name


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "arc-sources"))
    ap.add_argument("--scales", default="1,10,100")
    args = ap.parse_args()
    shared = Path(args.shared).resolve()
    from arcforge.sources.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    with tempfile.TemporaryDirectory(prefix="arcforge-bench-") as tmp:
        tmp = Path(tmp)
        home = tmp / "home"
        env = {**os.environ, "ARCFORGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
        populate_cache(home, mirrored(load_manifests(), shared), shared)
        floor = run_child(env, "floor", "-", "")
        b = run_child(env, "build", str(tmp / "out"), "-", "")
        print("## all 11 mirrored sources")
        print("| step | wall s | peak RSS MB | files | tasks | tasks/s | x floor |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        print(
            f"| floor: read + json.loads | {floor['wall']:.2f} | {floor['rss_mb']:.0f} | {floor['files']} | "
            f"- | - | 1.00 |"
        )
        print(
            f"| arcforge build | {b['wall']:.2f} | {b['rss_mb']:.0f} | {b['files']} | {b['tasks']} | "
            f"{b['tasks'] / b['wall']:.0f} | {b['wall'] / floor['wall']:.2f} |"
        )
        sys.stdout.flush()
        manifests = tmp / "manifests"
        manifests.mkdir()
        print("\n## growth: ARC-AGI-1 replicated (distinct recolored copies)")
        print("| scale | tasks | floor s | build s | x floor | tasks/s | build s per 1x | peak RSS MB |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        base = None
        for scale in [int(s) for s in args.scales.split(",")]:
            name = replicate(shared, home, manifests, scale)
            f = run_child(env, "floor", str(manifests), name)
            r = run_child(env, "build", str(tmp / f"out{scale}"), str(manifests), name)
            base = base or r["wall"] / scale
            print(
                f"| {scale}x | {r['tasks']} | {f['wall']:.2f} | {r['wall']:.2f} | "
                f"{r['wall'] / f['wall']:.2f} | "
                f"{r['tasks'] / r['wall']:.0f} | {r['wall'] / scale:.3f} | {r['rss_mb']:.0f} |"
            )
            sys.stdout.flush()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        kind, *rest = sys.argv[2:]
        if kind == "floor":
            manifests, sources = rest
            res = child_floor(
                None if manifests == "-" else manifests, sources.split(",") if sources else None
            )
        else:
            out, manifests, sources = rest
            res = child_build(
                out, None if manifests == "-" else manifests, sources.split(",") if sources else None
            )
        print(json.dumps(res))
    else:
        main()
