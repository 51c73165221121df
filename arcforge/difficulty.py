"""A per-task difficulty estimate in [0, 1], the same formula for every source (docs/curation.md).

Five measures, each scaled to [0, 1], averaged with equal weight:

- ``cells``: mean cells per pair (input + output) / 1800 (two 30x30 grids);
- ``colors``: distinct colors over all the task's grids / 10;
- ``size_change``: the share of pairs whose output shape differs from the input's;
- ``change``: the share of cells that differ between input and output (a pair of different shapes counts 1);
- ``compressed``: zlib-compressed bytes of all grids (less zlib's fixed overhead) per pair / 900 (one
  30x30 grid), capped at 1: how much there is to read once repeats are taken out.

Fewer demonstrations do not enter: the count is a choice of each source, not of the transformation.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

MEASURES = ("cells", "colors", "size_change", "change", "compressed")
_EMPTY = len(zlib.compress(b"", 6))  # zlib's fixed overhead


def measures(pairs: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> dict[str, float]:
    """The five measures of a task's pairs (a pair whose output is hidden counts with its input only)."""
    cells, changed, resized = 0.0, 0.0, 0.0
    colors = np.zeros(10, dtype=bool)
    raw = []
    for inp, out in pairs:
        colors[np.unique(inp)] = True
        raw.append(inp.tobytes())
        cells += inp.size
        if out is None:
            continue
        colors[np.unique(out)] = True
        raw.append(out.tobytes())
        cells += out.size
        if inp.shape != out.shape:
            resized += 1
            changed += 1
        else:
            changed += float(np.count_nonzero(inp != out)) / inp.size
    n = max(1, len(pairs))
    blob = b"".join(raw)
    return {
        "cells": min(1.0, cells / n / 1800),
        "colors": float(colors.sum()) / 10,
        "size_change": resized / n,
        "change": changed / n,
        "compressed": min(1.0, (len(zlib.compress(blob, 6)) - _EMPTY) / n / 900),
    }


def estimate(pairs: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> float:
    """The task's difficulty: the mean of ``measures`` (0 = trivially small and uniform)."""
    m = measures(pairs)
    return round(sum(m.values()) / len(m), 4)
