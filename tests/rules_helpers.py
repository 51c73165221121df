"""Small reference tables and hand-made programs for the rule-level tests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from arcforge.sources.programs import Program


def arc1_table(shared: Path, split: str, ids: list[str], source: str = "arc_agi_1") -> pa.Table:
    """ARC-AGI-1 tasks straight from the mirror, as build rows (id, source, split, train, test, path)."""
    rows = []
    for i in ids:
        d = json.loads((shared / "fchollet" / "ARC-AGI" / "data" / split / f"{i}.json").read_text())
        rows.append(
            {
                "id": f"{source}/{split}/{i}",
                "source": source,
                "split": split,
                "train": d["train"],
                "test": d["test"],
                "path": f"data/{split}/{i}.json",
                "extra": "{}",
            }
        )
    return pa.Table.from_pylist(rows)


def local_program(
    folder: Path,
    name: str,
    code: str,
    *,
    function: str = "main",
    grid_type: str = "list",
    source: str = "local",
    derived_from: tuple[str, ...] = (),
) -> Program:
    """A program written into ``folder`` (one module per program), as the catalogue would describe it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.py").write_text(code)
    return Program(
        source,
        "test",
        name,
        f"{name}.py:{function}",
        ".",
        name,
        function,
        grid_type,
        derived_from,
        digest=f"{name}-{abs(hash(code))}",
    )


def fetched_checkouts(shared: Path, home: Path) -> dict[str, Path]:
    """RE-ARC and BARC fetched from the mirror into ``home`` (digest-checked, as `arcforge fetch` leaves
    them): programs run from a verified cache, never from the mirror itself."""
    import os

    from arcforge import paths
    from arcforge.sources.fetch import fetch_sources
    from arcforge.sources.manifest import load_manifests

    ms = load_manifests()
    old = os.environ.get("ARCFORGE_HOME")
    os.environ["ARCFORGE_HOME"] = str(home)
    try:
        got = fetch_sources([ms["re_arc"], ms["barc"]], mirror=shared)
        assert [r.status for r in got] == ["fetched", "fetched"], [r.error for r in got]
        return {n: paths.source_dir(ms[n].owner, ms[n].repo_name, ms[n].commit) for n in ("re_arc", "barc")}
    finally:
        if old is None:
            os.environ.pop("ARCFORGE_HOME", None)
        else:
            os.environ["ARCFORGE_HOME"] = old
