"""Counting families: count cells into a bar, report the majority color, count objects."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arcforge.synthetic.base import (
    Canvas,
    Difficulty,
    Params,
    RawPair,
    choice,
    colors,
    colors_in,
    family,
    place,
    randint,
    random_shape,
    scatter,
    side,
    uniform,
)


def _bar(length: int, color: int, orientation: str) -> np.ndarray:
    shape = (1, length) if orientation == "row" else (length, 1)
    return np.full(shape, color, dtype=np.int8)


@family("count_to_bar", "counting", "count the colored cells and draw that many in a one-cell-thick bar")
class CountToBar:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {
            "orientation": choice(rng, ["row", "column"]),
            "palette": colors(rng, randint(rng, 1, min(3, d.max_colors))),
            "max_count": {"easy": 4, "medium": 6}.get(d.name, 12),
        }

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        h, w = side(rng, d, 3), side(rng, d, 3)
        n = randint(rng, 1, min(p["max_count"], h * w - 1))
        color = choice(rng, p["palette"])
        g = np.zeros((h, w), dtype=np.int8)
        g[scatter(rng, h, w, n)] = color
        return g, _bar(n, color, p["orientation"])

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        return colors_in([i for i, _ in test]) <= colors_in([i for i, _ in train])


@family("majority_color", "counting", "answer with a square of the most frequent color")
class MajorityColor:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"out_side": randint(rng, 1, 3), "palette": colors(rng, randint(rng, 2, max(2, d.max_colors)))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 3), side(rng, d, 3)
        pal = np.asarray(p["palette"], dtype=np.int8)
        g = np.where(rng.random((h, w)) < uniform(rng, 0.5, 1.0), pal[rng.integers(len(pal), size=(h, w))], 0)
        counts = np.bincount(g.ravel(), minlength=10)[1:]
        top = counts.max()
        if top == 0 or (counts == top).sum() > 1:  # the majority must be unique
            return None
        s = p["out_side"]
        return g.astype(np.int8), np.full((s, s), int(counts.argmax()) + 1, dtype=np.int8)

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        # At least two different answers in train, so "always color X" is not a valid reading.
        return len(colors_in([o for _, o in train])) >= 2


@family("count_objects", "counting", "count the separate objects and draw that many cells in a row")
class CountObjects:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"bar_color": colors(rng, 1)[0], "palette": colors(rng, randint(rng, 1, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 4), side(rng, d, 4)
        taken = Canvas(h, w)
        g = np.zeros((h, w), dtype=np.int8)
        n = 0
        pal = p["palette"]
        for _ in range(randint(rng, 1, max(2, d.max_objects + 1))):
            shape = random_shape(rng, randint(rng, 1, 3), randint(rng, 1, 3), randint(rng, 1, 5))
            at = place(rng, taken, *shape.shape)
            if at is None:
                continue
            view = g[at[0] : at[0] + shape.shape[0], at[1] : at[1] + shape.shape[1]]
            view[shape] = choice(rng, pal)
            n += 1
        return (g, np.full((1, n), p["bar_color"], dtype=np.int8)) if n else None
