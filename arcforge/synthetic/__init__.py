"""The built-in synthetic task source: seeded ARC-style tasks from 24 labelled transformation families.

``generate(n, seed)`` yields ``n`` Task records with source ``"synthetic"``, split ``"training"``,
ids ``synthetic/<family>/<index:06d>``, and ``extra = {"family": ..., "params": {...}}``. Nothing is
downloaded. Families live one group per module (geometry, color, physics, fill, counting) and register
themselves in ``base.REGISTRY`` on import.
"""

from __future__ import annotations

# Importing the family modules registers their families (order does not matter: names are sorted).
from arcforge.synthetic import color, counting, fill, geometry, physics  # noqa: F401
from arcforge.synthetic.base import DEFAULT_DIFFICULTY, DIFFICULTIES, REGISTRY, Difficulty
from arcforge.synthetic.generator import (
    LICENSE,
    SOURCE_NAME,
    families,
    family_counts,
    family_of,
    family_stats,
    generate,
    make_task,
    resolve_families,
)

TITLE = "arcforge synthetic ARC-style tasks"
DESCRIPTION = (
    "Procedurally generated ARC-style tasks from arcforge's built-in synthetic source: "
    f"{len(REGISTRY)} transformation families (geometry: flips, rotations, scaling, cropping, tiling; "
    "color: mapping, recoloring by size, denoising; physics: gravity, moving and sliding objects; "
    "fill: enclosed regions, lines, pattern extension, symmetry completion, borders, hollowing; "
    "counting: bars, majority color, object counts). Each task has 3-4 train pairs and 1 test pair, "
    "grids of colors 0-9 within 30x30, and is labelled in `extra` with its family and parameters. "
    "Generation is deterministic in (count, seed, families, difficulty)."
)
CITATION = """@software{arcforge_synthetic,
  title  = {arcforge: a built-in synthetic source of ARC-style tasks},
  author = {{arcforge contributors}},
  year   = {2025},
  note   = {Seeded generator of labelled transformation families, in the spirit of the
            community's simpler ARC problem sets},
  license = {Apache-2.0}
}"""


def describe() -> list[dict[str, object]]:
    """One row per family: name, group, description, easy (for docs, stats and the demo)."""
    return [
        {"name": f.name, "group": f.group, "description": f.description, "easy": f.easy}
        for f in (REGISTRY[n] for n in families())
    ]


__all__ = [
    "CITATION",
    "DEFAULT_DIFFICULTY",
    "DESCRIPTION",
    "DIFFICULTIES",
    "LICENSE",
    "SOURCE_NAME",
    "TITLE",
    "Difficulty",
    "describe",
    "families",
    "family_counts",
    "family_of",
    "family_stats",
    "generate",
    "make_task",
    "resolve_families",
]
