"""The built-in synthetic task source (PLACEHOLDER CONTRACT: the synthetic work replaces the body).

``generate(n, seed)`` yields ``n`` Task records with source ``"synthetic"``, split ``"training"``,
ids ``synthetic/<family>/<index:06d>``, and ``extra = {"family": ..., "params": {...}}``.
"""

from __future__ import annotations

from collections.abc import Iterator

from arcforge.task import Task

SOURCE_NAME = "synthetic"
LICENSE = "Apache-2.0"


def generate(n: int, seed: int = 0) -> Iterator[Task]:
    raise NotImplementedError("the synthetic generator is not written yet")
