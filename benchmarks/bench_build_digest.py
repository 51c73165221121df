"""The build's output by content: builds the mirrored sources (``SOURCES``) with ``--exclude-eval`` and writes
the sha256 of each output file to ``benchmarks/results/build_digest.json``; ``tests/test_build_digest.py``
rebuilds and fails on any difference. A refactor of the data side must leave this record as it is; a change
that means to alter the output re-records it (and says so).

Parquet files are digested by content (schema, metadata and rows), not by bytes: their footer names the
writing library's version, which says nothing about arcforge's output. Every other file (the card,
provenance, reports) is digested byte for byte.

    python benchmarks/bench_build_digest.py [--check]   # ~10 s; needs ../shared/arc-sources
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "benchmarks" / "results" / "build_digest.json"
SHARED = ROOT.parent / "shared" / "arc-sources"
# the mirrored sources when the record was made, named so that a mirror that grows keeps the same build
SOURCES = (
    "arc_agi_1",
    "arc_agi_2",
    "arc_1d",
    "arc_community",
    "barc",
    "concept_arc",
    "iparc",
    "mini_arc",
    "neoneye_bad",
    "neoneye_diva",
    "neoneye_tama",
    "re_arc",
    "synthetic_extend",
)
OPTIONS = {"exclude_eval": True, "sources": list(SOURCES)}


def file_digest(path: Path) -> str:
    """sha256 of a Parquet file's schema, schema metadata and rows; of any other file's bytes."""
    if path.suffix != ".parquet":
        return hashlib.sha256(path.read_bytes()).hexdigest()
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    text = json.dumps(
        {
            "schema": table.schema.to_string(show_schema_metadata=False),
            "metadata": meta,
            "rows": table.to_pylist(),
        },
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def digests(out: Path) -> dict[str, str]:
    return {f.relative_to(out).as_posix(): file_digest(f) for f in sorted(out.rglob("*")) if f.is_file()}


def build_digests(home: Path, work: Path) -> dict[str, str]:
    """Build with ``OPTIONS`` from the sources cached in ``home`` into ``work``; the digests of the output."""
    from arcforge.build.pipeline import build

    old = os.environ.get("ARCFORGE_HOME")
    os.environ["ARCFORGE_HOME"] = str(home)
    try:
        build(work / "out", **OPTIONS)
    finally:
        if old is None:
            os.environ.pop("ARCFORGE_HOME", None)
        else:
            os.environ["ARCFORGE_HOME"] = old
    return digests(work / "out")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the record instead of writing it")
    a = ap.parse_args(argv)
    from arcforge.sources.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        populate_cache(home, mirrored(load_manifests(), SHARED), SHARED)
        got = build_digests(home, Path(tmp))
    if a.check:
        want = json.loads(RESULTS.read_text())["digests"]
        changed = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
        print("\n".join(changed) or "identical")
        return 1 if changed else 0
    RESULTS.write_text(json.dumps({"options": OPTIONS, "files": len(got), "digests": got}, indent=1) + "\n")
    print(f"{len(got)} files -> {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
