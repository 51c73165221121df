"""The synthetic source's machinery: difficulty presets, the family registry, RNG helpers, object placement.

A *family* is one transformation rule (flip, gravity, fill enclosed regions, ...). It is two functions:

- ``params(rng, d) -> dict``: the task-level choices (axis, color map, direction, ...), JSON-able;
- ``pair(rng, d, params) -> (input, output) | None``: one example of the rule (None = try again).

and optionally ``check(params, train, test) -> bool``, a task-level well-posedness test (e.g. every color
the test needs is shown in train). ``make_task`` in ``generator.py`` drives them and enforces the generic
rules (distinct inputs, no input == output unless the family is identity-like, grids within 30x30).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from arcforge.task import MAX_GRID_SIDE

Grid = np.ndarray  # (rows, cols) int8
RawPair = tuple[Grid, Grid]
Params = dict[str, Any]

MAX_SIDE = MAX_GRID_SIDE  # the ARC limit; every generated grid stays within it
COLORS = tuple(range(1, 10))  # 0 is the background in every family


# --- difficulty --------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Difficulty:
    """Knobs shared by every family (sides >= 2: a 1x1 grid cannot show most rules).

    Families clamp sizes so that their *outputs* also fit in 30x30."""

    name: str
    min_side: int  # smallest input side
    max_side: int  # largest input side
    max_objects: int  # most objects placed on one grid
    max_colors: int  # most distinct non-background colors in one task (>= 2)


DIFFICULTIES: dict[str, Difficulty] = {
    "easy": Difficulty("easy", 3, 5, 2, 3),
    "medium": Difficulty("medium", 3, 8, 3, 4),
    "hard": Difficulty("hard", 5, 16, 6, 8),
}
DEFAULT_DIFFICULTY = "medium"


def resolve_difficulty(d: str | Difficulty) -> Difficulty:
    if isinstance(d, Difficulty):
        if not (2 <= d.min_side <= d.max_side <= MAX_SIDE and d.max_objects >= 1 and 2 <= d.max_colors <= 9):
            raise ValueError(f"invalid difficulty {d!r}")
        return d
    try:
        return DIFFICULTIES[d]
    except KeyError:
        raise ValueError(f"unknown difficulty {d!r}; expected one of {', '.join(DIFFICULTIES)}") from None


# --- registry ----------------------------------------------------------------------------------------------
ParamsFn = Callable[[np.random.Generator, Difficulty], Params]
PairFn = Callable[[np.random.Generator, Difficulty, Params], "RawPair | None"]
CheckFn = Callable[[Params, Sequence[RawPair], Sequence[RawPair]], bool]


@dataclass(frozen=True, slots=True)
class Family:
    name: str
    group: str  # the module it lives in: geometry, color, physics, fill, counting
    description: str
    params: ParamsFn
    pair: PairFn
    check: CheckFn | None = None
    easy: bool = False  # a small model learns it quickly (the demo reports these separately)
    identity_like: bool = False  # input == output allowed


REGISTRY: dict[str, Family] = {}


def family(
    name: str, group: str, description: str, *, easy: bool = False, identity_like: bool = False
) -> Callable[[type], type]:
    """Class decorator registering a family; the class provides ``params``/``pair``/optional ``check``
    as static methods (a class is just a namespace that keeps the three functions together)."""

    def deco(cls: type) -> type:
        if name in REGISTRY:
            raise ValueError(f"synthetic family {name!r} registered twice")
        REGISTRY[name] = Family(
            name=name,
            group=group,
            description=description,
            params=cls.params,
            pair=cls.pair,
            check=getattr(cls, "check", None),
            easy=easy,
            identity_like=identity_like,
        )
        return cls

    return deco


# --- RNG helpers -------------------------------------------------------------------------------------------
def below(rng: np.random.Generator, n: int) -> int:
    """Uniform int in [0, n) as a plain Python int. (A float draw is ~3x cheaper than ``rng.integers``
    for one scalar, which matters: a task makes dozens of these draws.)"""
    return int(rng.random() * n)


def randint(rng: np.random.Generator, lo: int, hi: int) -> int:
    """Uniform int in [lo, hi] (inclusive), as a plain Python int (JSON-able params)."""
    return lo + int(rng.random() * (hi - lo + 1))


def side(rng: np.random.Generator, d: Difficulty, lo: int | None = None, hi: int | None = None) -> int:
    """A grid side within the difficulty's range clamped into the family's own bounds [lo, hi]."""
    lo = 1 if lo is None else lo
    hi = MAX_SIDE if hi is None else hi
    a = min(max(d.min_side, lo), hi)
    b = min(max(d.max_side, lo), hi)
    return randint(rng, a, b)


def colors(rng: np.random.Generator, k: int, exclude: Sequence[int] = ()) -> list[int]:
    """``k`` distinct non-background colors, none in ``exclude``."""
    pool = [c for c in COLORS if c not in exclude]
    # choice over the pool's size draws exactly what choice over the pool does (same indices), without
    # turning the pool into an array first
    return [pool[i] for i in rng.choice(len(pool), size=k, replace=False).tolist()]


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """``float(rng.uniform(lo, hi))``, the same number (numpy computes ``lo + (hi - lo) * random()``) at
    a third of the cost."""
    return lo + (hi - lo) * rng.random()


def choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[below(rng, len(options))]


def noise_grid(rng: np.random.Generator, h: int, w: int, palette: Sequence[int], density: float) -> Grid:
    """An h x w grid: each cell is background with probability 1-density, else a color of ``palette``."""
    vals = np.array(palette, dtype=np.int8)[rng.integers(len(palette), size=(h, w))]
    if density < 1.0:  # random() < 1 always: a density of 1 keeps every cell (the draws are made alike)
        vals[rng.random((h, w)) >= density] = 0  # background with probability 1 - density
    else:
        rng.random((h, w))
    return vals


def full_grid(rng: np.random.Generator, h: int, w: int, palette: Sequence[int]) -> Grid:
    """An h x w grid with every cell a color of ``palette`` (no background)."""
    return np.asarray(palette, dtype=np.int8)[rng.integers(len(palette), size=(h, w))]


# --- shapes and placement ----------------------------------------------------------------------------------
_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))


def random_shape(rng: np.random.Generator, max_h: int, max_w: int, cells: int) -> np.ndarray:
    """A 4-connected bool mask of about ``cells`` cells within max_h x max_w, cropped to its bounding box.

    Grown by a random walk that only adds in-bounds neighbours of cells already in the shape.
    """
    cells = min(cells, max_h * max_w)
    u = rng.random((cells * 8 + 1, 2)).tolist()  # all the walk's draws at once: scalar draws are slow
    it = iter(u)
    a, b = next(it)
    pts = [(int(a * max_h), int(b * max_w))]
    seen = set(pts)
    steps = _STEPS
    n = 1
    if n < cells:
        for a, b in it:
            r, c = pts[int(a * n)]
            dr, dc = steps[int(b * 4)]
            r += dr
            c += dc
            if 0 <= r < max_h and 0 <= c < max_w and (r, c) not in seen:
                seen.add((r, c))
                pts.append((r, c))
                n += 1
                if n >= cells:
                    break
    r0 = min(p[0] for p in pts)
    c0 = min(p[1] for p in pts)
    hh = max(p[0] for p in pts) - r0 + 1
    ww = max(p[1] for p in pts) - c0 + 1
    m = bytearray(hh * ww)
    for r, c in pts:
        m[(r - r0) * ww + c - c0] = 1
    return np.frombuffer(m, dtype=bool).reshape(hh, ww)


class Canvas:
    """The boxes ``place`` has put on an h x w grid (the cells they cover are taken)."""

    __slots__ = ("boxes", "shape")

    def __init__(self, h: int, w: int) -> None:
        self.shape = (h, w)
        self.boxes: list[tuple[int, int, int, int]] = []  # (row, col, height, width)


def place(rng: np.random.Generator, taken: Canvas, h: int, w: int, gap: int = 1) -> tuple[int, int] | None:
    """A random top-left corner for an h x w box on the canvas ``taken`` such that the box grown by
    ``gap`` cells on every side touches no box placed before; adds the box to the canvas.
    None when no such position exists (every free position is equally likely)."""
    H, W = taken.shape
    if h > H or w > W:
        return None
    nc = W - w + 1
    free = np.ones((H - h + 1, nc), dtype=bool)  # candidate corners, row-major
    for r0, c0, h0, w0 in taken.boxes:  # corners whose grown box would overlap this box
        free[max(0, r0 - gap - h + 1) : r0 + h0 + gap, max(0, c0 - gap - w + 1) : c0 + w0 + gap] = False
    free = np.flatnonzero(free)
    if free.size == 0:
        return None
    r, c = divmod(int(free[below(rng, free.size)]), nc)
    taken.boxes.append((r, c, h, w))
    return r, c


def scatter(rng: np.random.Generator, h: int, w: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``k`` distinct random cells of an h x w grid as (rows, cols)."""
    flat = rng.choice(h * w, size=min(k, h * w), replace=False)
    return flat // w, flat % w


def same_grid(a: Grid, b: Grid) -> bool:
    """``np.array_equal`` for two grids, without its generic overhead (checks run it for every pair)."""
    if a.dtype == b.dtype:  # equal bytes (C order) of equal shapes and dtypes: equal grids
        return a.shape == b.shape and a.tobytes() == b.tobytes()
    return a.shape == b.shape and bool((a == b).all())


def colors_in(grids: Sequence[Grid]) -> set[int]:
    """Non-background colors present in any of the grids."""
    present: set[int] = set()
    for g in grids:  # an int8 grid's bytes are its colors
        present.update(g.tobytes() if g.dtype == np.int8 else (int(v) for v in np.unique(g)))
    present.discard(0)
    return present
