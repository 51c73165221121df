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


def pair_parts(inp: np.ndarray, out: np.ndarray | None) -> tuple[int, bytes, int, int, float]:
    """One pair's share of the measures: (colors as a 10-bit mask, its grids' bytes, cells, resized 0/1,
    changed share). A task made of pairs already seen (sampled tasks) reuses them (``combine``)."""
    mask = 0
    for c in np.unique(inp).tolist():
        mask |= 1 << c
    if out is None:
        return mask, inp.tobytes(), inp.size, 0, 0.0
    for c in np.unique(out).tolist():
        mask |= 1 << c
    if inp.shape != out.shape:
        return mask, inp.tobytes() + out.tobytes(), inp.size + out.size, 1, 1.0
    return (
        mask,
        inp.tobytes() + out.tobytes(),
        inp.size + out.size,
        0,
        float(np.count_nonzero(inp != out)) / inp.size,
    )


def combine(parts: Sequence[tuple[int, bytes, int, int, float]]) -> dict[str, float]:
    """The five measures of a task from its pairs' ``pair_parts``, in pair order."""
    cells, changed, resized = 0.0, 0.0, 0.0
    mask = 0
    for colors, _, n_cells, was_resized, share in parts:
        mask |= colors
        cells += n_cells
        resized += was_resized
        changed += share
    n = max(1, len(parts))
    blob = b"".join(p[1] for p in parts)
    return {
        "cells": min(1.0, cells / n / 1800),
        "colors": float(mask.bit_count()) / 10,
        "size_change": resized / n,
        "change": changed / n,
        "compressed": min(1.0, (len(zlib.compress(blob, 6)) - _EMPTY) / n / 900),
    }


def measures(pairs: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> dict[str, float]:
    """The five measures of a task's pairs (a pair whose output is hidden counts with its input only)."""
    return combine([pair_parts(inp, out) for inp, out in pairs])


def from_measures(m: dict[str, float]) -> float:
    """The difficulty from ``measures`` (or ``combine``): their mean, rounded to 4 places."""
    return round(sum(m.values()) / len(m), 4)


def estimate(pairs: Sequence[tuple[np.ndarray, np.ndarray | None]]) -> float:
    """The task's difficulty: the mean of ``measures`` (0 = trivially small and uniform)."""
    return from_measures(measures(pairs))
