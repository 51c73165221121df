"""Benchmark the local side of `arcforge publish` against baselines measured in the same run.

- prepare (scan + sha256 of every file, `collect_files`) vs. just reading the same bytes, and vs. what
  huggingface_hub itself spends building `CommitOperationAdd`s for the same files (its own sha256 pass,
  which `publish` pays on top of ours);
- `--to-dir` (`write_tree`) vs. `shutil.copytree` of the same folder;
- planning deletions against a large remote file list (`plan_operations`).

Usage: PYTHONPATH=. python benchmarks/bench_publish.py [--mb 256] [--files 8]
Shard contents are random bytes: only names and sizes matter to these steps.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from arcforge.build.provenance import write_provenance
from arcforge.hub.plan import collect_files, plan_operations, write_tree


def timed(fn, repeat: int = 3, cleanup=None) -> float:
    """Best of ``repeat``; dirty pages are flushed before each run so writers do not pay for earlier ones."""
    best = float("inf")
    for _ in range(repeat):
        os.sync()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
        if cleanup:
            cleanup()
    return best


def make_out(root: Path, total_mb: int, n_files: int) -> Path:
    per = total_mb * 1024 * 1024 // n_files
    for i in range(n_files):
        p = root / "src" / f"training-{i:05d}-of-{n_files:05d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(os.urandom(per))
    (root / "README.md").write_text("---\nconfigs: []\n---\n")
    write_provenance(
        root, sources=[{"name": "src", "repo": "o/r", "commit": "c", "license": "MIT"}], options={}
    )
    return root


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--files", type=int, default=8)
    args = ap.parse_args()
    from huggingface_hub import CommitOperationAdd

    with tempfile.TemporaryDirectory() as d:
        out = make_out(Path(d) / "out", args.mb, args.files)
        files = sorted(p for p in out.rglob("*") if p.is_file())

        def read_only():
            for p in files:
                with open(p, "rb") as f:
                    while f.read(1 << 20):
                        pass

        def hf_ops():
            # huggingface_hub hashes lazily: force its sha256 the way create_commit does
            for p in files:
                op = CommitOperationAdd(path_in_repo=p.relative_to(out).as_posix(), path_or_fileobj=str(p))
                assert op.upload_info.sha256

        dest = Path(d) / "dest"

        def export():
            write_tree(collect_files(out), dest)

        def copytree():
            shutil.copytree(out, dest)

        def clean():
            shutil.rmtree(dest)

        tree = collect_files(out)
        local = {f.path_in_repo for f in tree.files}
        remote = [f"src{i % 500}/training-{i:05d}-of-99999.parquet" for i in range(100_000)]

        rows = [
            ("read bytes only (baseline)", timed(read_only)),
            ("collect_files: scan + sha256", timed(lambda: collect_files(out))),
            ("huggingface_hub CommitOperationAdd sha256", timed(hf_ops)),
            ("shutil.copytree (baseline)", timed(copytree, cleanup=clean)),
            ("--to-dir: collect + write_tree", timed(export, cleanup=clean)),
            ("set difference of 100k names (baseline)", timed(lambda: sorted(set(remote) - local))),
            ("plan_operations vs 100k remote files", timed(lambda: plan_operations(tree, remote))),
        ]
    mb = args.mb
    print(f"{mb} MiB in {args.files} shard files")
    print("| step | seconds | MiB/s | ratio |")
    print("|---|---:|---:|---:|")
    base = {
        "collect_files: scan + sha256": rows[0][1],
        "huggingface_hub CommitOperationAdd sha256": rows[0][1],
        "--to-dir: collect + write_tree": rows[3][1],
        "plan_operations vs 100k remote files": rows[5][1],
    }
    for name, secs in rows:
        ratio = f"{secs / base[name]:.2f}x baseline" if name in base else "-"
        rate = f"{mb / secs:.0f}" if "100k" not in name else "-"
        print(f"| {name} | {secs:.3f} | {rate} | {ratio} |")


if __name__ == "__main__":
    main()
