"""``BuildOptions``: what the CLI makes once and ``build`` reads; keyword flags are the same build."""

import dataclasses
import hashlib
from pathlib import Path

import pytest

from arcforge.build.options import BuildOptions
from arcforge.build.pipeline import build
from arcforge.build.provenance import read_provenance


def _digests(out: Path) -> dict[str, str]:
    return {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file()
    }


def test_options_and_keyword_flags_build_the_same_bytes(mirror_home, tmp_path, monkeypatch):
    monkeypatch.setenv("ARCFORGE_HOME", str(mirror_home))
    flags = {
        "sources": ["arc_agi_1", "concept_arc"],
        "exclude_eval": True,
        "max_grid": 30,
        "seed": 3,
        "row_group_rows": 100,
        "workers": 1,
    }
    a = build(tmp_path / "a", BuildOptions(**flags))
    b = build(tmp_path / "b", **flags)
    assert a.tasks == b.tasks and a.dedup == b.dedup
    assert sum(n for level, n in a.dedup.items() if level.startswith("excluded.")) > 0
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    options = read_provenance(tmp_path / "a").options
    assert (options["exclude_eval"], options["max_grid"], options["seed"], options["row_group_rows"]) == (
        True,
        30,
        3,
        100,
    )
    card = (tmp_path / "a" / "README.md").read_text(encoding="utf-8")
    assert "Options: `exclude_eval=True`, `max_grid=30`." in card


def test_options_are_frozen_and_taken_one_way(tmp_path):
    opts = BuildOptions(exclude_eval=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.exclude_eval = False  # type: ignore[misc]
    with pytest.raises(TypeError, match="not both"):
        build(tmp_path / "out", opts, exclude_eval=True)
    with pytest.raises(TypeError, match="no_such_flag"):
        build(tmp_path / "out", no_such_flag=1)
    assert not (tmp_path / "out").exists()
