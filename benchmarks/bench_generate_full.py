"""RE-ARC at its published size, measured: 1,000 kept examples for each of the 400 generators.

    python benchmarks/bench_generate_full.py [--mirror ../shared/arc-sources] [--examples 1000]
                                             [--identity-keys 40] [--skip-upstream]

The same runs as ``bench_generate.py`` (whose helpers it uses), at full size and in this order, each written
to ``benchmarks/results/generate_published.json`` as soon as it is measured (a run cut off leaves the
earlier ones, and ``"complete": false``):

1. arcforge ``build --source re_arc --generate re_arc=1000 --workers 2``, and the same build without
   generating (its fixed cost): wall time, CPU time of the process tree, peak memory of the tree.
2. upstream ``main.py generate_dataset(n_examples=1000)`` on all 400 keys, one process (upstream's
   driver has no workers), same machine, same run.
3. ``--workers 1`` on every (400 / K)-th key only (K = ``--identity-keys``; a full single-worker run
   would take as long as upstream's): its tasks must equal, column by column, the same keys' tasks in
   the ``--workers 2`` output (a generated task depends only on (source, key, attempt index)).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(ROOT))

import bench_generate as bg  # noqa: E402  (sibling script)


def _generated(out: Path, keys: list[str]):
    """The generated tasks of ``keys`` in a build's output, sorted by id (every column)."""
    import polars as pl

    from arcforge.shards import read_table

    prefixes = [f"re_arc/generated/{k}/" for k in keys]
    df = pl.from_arrow(read_table(out, sources=["re_arc"]))
    return df.filter(pl.any_horizontal(pl.col("id").str.starts_with(p) for p in prefixes)).sort("id")


def main() -> int:
    ap = bg.parser(__doc__)
    ap.add_argument("--examples", type=int, default=1000, help="kept examples per generator")
    ap.add_argument("--identity-keys", type=int, default=40, help="keys of the --workers 1 identity run")
    ap.add_argument("--skip-upstream", action="store_true", help="leave out upstream's run (step 2)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "generate_published.json")
    args = ap.parse_args()
    report: dict = {
        "what": f"RE-ARC at published size: 400 generators x {args.examples} kept examples, measured",
        "complete": False,
        "cpus": os.cpu_count(),
    }

    def save() -> None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        print(json.dumps(report, sort_keys=True), flush=True)

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        env, mdir, m, code, all_keys = bg.prepare(tmp, args.mirror)
        report["re_arc"] = bg.re_arc_pin(m, code)
        n = report["examples"] = args.examples
        report["generators"] = len(all_keys)

        fixed = bg.run_arcforge(mdir, tmp / "f2", 0, 2, env)
        w2 = bg.run_arcforge(mdir, tmp / "o2", n, 2, env)
        w2["fixed_s"] = fixed["seconds"]
        w2["minutes"] = round(w2["seconds"] / 60, 1)
        report["arcforge_workers_2"] = w2
        report["arcforge_fixed_workers_2"] = fixed
        save()

        if not args.skip_upstream:
            up = bg.run_upstream(code, all_keys, n, tmp)
            up["minutes"] = round(up["seconds"] / 60, 1)
            report["upstream"] = up
            report["ratio_workers_2_vs_upstream"] = round(w2["examples_per_s"] / up["examples_per_s"], 2)
            save()

        step = max(1, len(all_keys) // args.identity_keys)
        keys = all_keys[::step][: args.identity_keys]
        w1 = bg.run_arcforge(bg.limit_keys(mdir, tmp / "m_subset", keys), tmp / "o1", n, 1, env)
        one, two = _generated(tmp / "o1", keys), _generated(tmp / "o2", keys)
        report["arcforge_workers_1_subset"] = {**w1, "keys": len(keys), "every_nth_key": step}
        report["identical_tasks_workers_1_2"] = one.height > 0 and one.equals(two)
        report["identity_tasks_compared"] = one.height
        report["complete"] = True
        report["load_after"] = round(os.getloadavg()[0], 1)
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
