"""Fetch every source the offline mirror has, build them with --exclude-eval, and record what came out.

    python benchmarks/bench_sources.py [--mirror ../shared/arc-sources]

Writes ``benchmarks/results/sources.json``: per source its repo, commit, license, the tasks in its
files, the tasks written after decontamination, and the fetch and build wall times. The README's
sources table is generated from it (``benchmarks/tables.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--mirror",
        default=os.environ.get("ARCFORGE_MIRROR") or str(HERE.parent.parent / "shared" / "arc-sources"),
    )
    ap.add_argument("--out", type=Path, default=HERE / "results" / "sources.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["ARCFORGE_HOME"] = str(Path(tmp) / "home")
        from arcforge.build.pipeline import build
        from arcforge.sources.fetch import fetch_sources
        from arcforge.sources.manifest import load_manifests

        manifests = load_manifests()
        t0 = time.perf_counter()
        results = fetch_sources(manifests.values(), mirror=args.mirror)
        fetch_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        stats = build(Path(tmp) / "arc-dataset", exclude_eval=True)
        build_s = time.perf_counter() - t0

    fetched = {r.name: r for r in results}
    rows = []
    for name, m in sorted(manifests.items()):
        r = fetched[name]
        rows.append(
            {
                "name": name,
                "kind": m.kind,
                "repo": m.repo,
                "commit": r.commit or m.commit,  # a revision: the commit this fetch locked ("": none)
                "revision": m.revision,
                "license": m.license,
                "splits": list(m.splits),
                "role": m.role,
                "status": r.status,
                "tasks_found": sum(stats.found.get(name, {}).values()),
                "tasks_written": sum(stats.tasks.get(name, {}).values()),
                "tasks_by_split": stats.tasks.get(name, {}),
            }
        )
    report = {
        "what": "fetch --all from the offline mirror, then build --exclude-eval (default options)",
        "mirror": "../shared/arc-sources"
        if Path(args.mirror).resolve() == (HERE.parent.parent / "shared" / "arc-sources").resolve()
        else "custom",
        "fetch_s": round(fetch_s, 1),
        "build_s": round(build_s, 1),
        "total_tasks": stats.total_tasks,
        "excluded": stats.excluded,
        "duplicates": stats.duplicates,
        "quarantined": stats.total_quarantined,
        "sources": rows,
    }
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k != "sources"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
