"""Packing: several examples per fixed-length row, attention kept inside each example.

A packed row carries ``segments`` (1, 2, ... per example, 0 for padding); the model builds a
block-diagonal causal mask from them, so a token only sees earlier tokens of its own example. Rows are
filled by first-fit-decreasing over a chunk of examples, which keeps padding well under 5 % on ARC
(see the README's benchmark table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arcforge.train.tokenize import PAD, POS_DIMS, Example


@dataclass
class PackedRows:
    """A batch of packed rows, numpy (the loader converts to torch)."""

    tokens: np.ndarray  # [B, L] int64
    positions: np.ndarray  # [B, L, POS_DIMS] int64
    targets: np.ndarray  # [B, L] bool
    segments: np.ndarray  # [B, L] int64, 0 = padding

    @property
    def real_tokens(self) -> int:
        return int((self.segments > 0).sum())


def first_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of example indices (each bin's total length <= capacity), largest examples first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    free: list[int] = []
    bins: list[list[int]] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example of {n} tokens does not fit a row of {capacity}")
        for b, f in enumerate(free):
            if f >= n:
                bins[b].append(i)
                free[b] -= n
                break
        else:
            bins.append([i])
            free.append(capacity - n)
    return bins


def pack_row(examples: list[Example], length: int) -> PackedRows:
    """Lay ``examples`` side by side in one row of ``length`` tokens (a [1, L] PackedRows)."""
    tokens = np.full(length, PAD, np.int64)
    positions = np.zeros((length, POS_DIMS), np.int64)
    targets = np.zeros(length, bool)
    segments = np.zeros(length, np.int64)
    at = 0
    for s, ex in enumerate(examples, start=1):
        n = len(ex)
        tokens[at : at + n] = ex.tokens
        positions[at : at + n] = ex.positions
        targets[at : at + n] = ex.targets
        segments[at : at + n] = s
        at += n
    if at > length:
        raise ValueError(f"{at} tokens do not fit a row of {length}")
    return PackedRows(tokens[None], positions[None], targets[None], segments[None])


def pack(examples: list[Example], length: int) -> list[PackedRows]:
    """Pack examples into rows (first-fit-decreasing); returns one [1, L] PackedRows per row."""
    bins = first_fit_decreasing([len(e) for e in examples], length)
    return [pack_row([examples[i] for i in b], length) for b in bins]


def stack(rows: list[PackedRows]) -> PackedRows:
    """Concatenate [1, L] rows into one [B, L] batch."""
    return PackedRows(
        np.concatenate([r.tokens for r in rows]),
        np.concatenate([r.positions for r in rows]),
        np.concatenate([r.targets for r in rows]),
        np.concatenate([r.segments for r in rows]),
    )
