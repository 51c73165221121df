"""Digests that pin the synthetic generator's output: every task's id, path, params, fingerprint and the
exact bytes and shape of every grid, and the Arrow rows the build writes for them.

The pins in ``tests/data/synthetic_pins.json`` were computed before any speed work on the generators;
the demo and its measured scores depend on these exact tasks, so a faster family must draw the same
random numbers in the same order and make the same grids.

    python tests/synthetic_pins.py          # recompute every pin and compare (prints the mismatches)
    python tests/synthetic_pins.py --write  # (re)write the file: only when a change of tasks is intended
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pyarrow as pa

PINS = Path(__file__).resolve().parent / "data" / "synthetic_pins.json"
PER_FAMILY = (100, 2000)  # the test checks the first; the script checks both
DIFFICULTIES = ("easy", "medium", "hard")
MIXED = 2000  # generate(MIXED) over every family, per difficulty (re-draws of repeated fingerprints happen)


def tasks_digest(tasks) -> str:
    h = hashlib.sha256()
    for t in tasks:
        h.update(
            json.dumps(
                [
                    t.id,
                    t.source,
                    t.split,
                    t.path,
                    t.license,
                    t.extra,
                    t.fingerprint,
                    len(t.train),
                    len(t.test),
                ],
                sort_keys=True,
            ).encode()
        )
        for p in t.pairs:
            for g in (p.input, p.output):
                h.update(repr((g.dtype.str, g.shape)).encode())
                h.update(g.tobytes())
    return h.hexdigest()


def table_digest(table: pa.Table) -> str:
    """The rows as the build stores them (every column), whatever the chunking."""
    h = hashlib.sha256()
    for batch in table.to_batches(max_chunksize=512):
        for row in batch.to_pylist():
            h.update(json.dumps(row, sort_keys=True).encode())
    h.update(str(table.schema).encode())
    return h.hexdigest()


def compute(per_family: tuple[int, ...] = PER_FAMILY) -> dict[str, str]:
    from arcforge import synthetic
    from arcforge.synthetic.generator import generate_table

    out: dict[str, str] = {}
    for d in DIFFICULTIES:
        for fam in synthetic.families():
            tasks = list(synthetic.generate(max(per_family), seed=0, families=[fam], difficulty=d))
            for n in per_family:
                out[f"{d}/{fam}/{n}"] = tasks_digest(tasks[:n])
        out[f"{d}/all/{MIXED}"] = tasks_digest(synthetic.generate(MIXED, seed=7, difficulty=d))
    out[f"table/medium/0-{MIXED}"] = table_digest(generate_table(0, MIXED, 7))
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    got = compute()
    if "--write" in sys.argv:
        PINS.parent.mkdir(parents=True, exist_ok=True)
        PINS.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n")
        print(f"wrote {len(got)} pins to {PINS}")
    else:
        want = json.loads(PINS.read_text())
        bad = sorted(k for k in want.keys() | got.keys() if want.get(k) != got.get(k))
        print(f"{len(got)} pins, {len(bad)} mismatches" + "".join(f"\n  {k}" for k in bad))
        sys.exit(1 if bad else 0)
