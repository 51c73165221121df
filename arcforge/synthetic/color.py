"""Color families: color mapping, recoloring objects by size, denoising."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arcforge.synthetic.base import (
    Canvas,
    Difficulty,
    Params,
    RawPair,
    below,
    colors,
    colors_in,
    family,
    noise_grid,
    place,
    randint,
    random_shape,
    side,
    uniform,
)


@family("color_map", "color", "replace some colors by others everywhere (the rest stay)", easy=True)
class ColorMap:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        k = randint(rng, 1, min(3, d.max_colors))
        src = colors(rng, k)
        dst = [colors(rng, 1, exclude=[s])[0] for s in src]
        keep = colors(rng, randint(rng, 0, max(0, d.max_colors - k)), exclude=src)
        return {"mapping": [[s, t] for s, t in zip(src, dst, strict=True)], "palette": src + keep}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = noise_grid(rng, side(rng, d), side(rng, d), p["palette"], uniform(rng, 0.4, 0.9))
        table = np.arange(10, dtype=np.int8)
        for s, t in p["mapping"]:
            table[s] = t
        return g, table[g]

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        # Every mapped color is demonstrated, and the test uses no color train never showed.
        shown = colors_in([i for i, _ in train])
        return {s for s, _ in p["mapping"]} <= shown and colors_in([i for i, _ in test]) <= shown


def _objects(
    rng: np.random.Generator, h: int, w: int, sizes: Sequence[int]
) -> list[tuple[int, int, np.ndarray]] | None:
    """Place one random 4-connected shape of exactly each size, no two touching (not even diagonally)."""
    taken = Canvas(h, w)
    out = []
    for n in sizes:
        shape = random_shape(rng, min(h, 4), min(w, 4), n)
        if int(shape.sum()) != n:
            return None
        at = place(rng, taken, *shape.shape)
        if at is None:
            return None
        out.append((at[0], at[1], shape))
    return out


def _paint(g: np.ndarray, r: int, c: int, shape: np.ndarray, color: int) -> None:
    view = g[r : r + shape.shape[0], c : c + shape.shape[1]]
    view[shape] = color


@family("recolor_largest", "color", "give the largest object a new color")
class RecolorLargest:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        c_in, c_out = colors(rng, 2)
        return {"color_in": c_in, "color_out": c_out}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 5), side(rng, d, 5)
        n = randint(rng, 2, max(2, d.max_objects))
        sizes = [randint(rng, 1, 4) for _ in range(n - 1)]
        sizes.insert(below(rng, n), randint(rng, max(sizes) + 1, max(sizes) + 3))  # one strictly largest
        objs = _objects(rng, h, w, sizes)
        if objs is None:
            return None
        g = np.zeros((h, w), dtype=np.int8)
        out = g.copy()
        for (r, c, shape), n_cells in zip(objs, sizes, strict=True):
            _paint(g, r, c, shape, p["color_in"])
            _paint(out, r, c, shape, p["color_out"] if n_cells == max(sizes) else p["color_in"])
        return g, out


@family("recolor_by_size", "color", "color each object by its number of cells (1, 2, 3, ...)")
class RecolorBySize:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        n_sizes = 3 if d.max_objects < 5 else 4
        cs = colors(rng, n_sizes + 1)
        return {"color_in": cs[0], "size_colors": [[s + 1, c] for s, c in enumerate(cs[1:])]}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        table = dict(map(tuple, p["size_colors"]))
        h, w = side(rng, d, 5), side(rng, d, 5)
        sizes = [randint(rng, 1, len(table)) for _ in range(randint(rng, 2, max(2, d.max_objects)))]
        objs = _objects(rng, h, w, sizes)
        if objs is None:
            return None
        g = np.zeros((h, w), dtype=np.int8)
        out = g.copy()
        for (r, c, shape), n_cells in zip(objs, sizes, strict=True):
            _paint(g, r, c, shape, p["color_in"])
            _paint(out, r, c, shape, table[n_cells])
        return g, out

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        # Every size the test needs was demonstrated (output colors stand for sizes one-to-one).
        return colors_in([o for _, o in test]) <= colors_in([o for _, o in train])


@family("denoise", "color", "remove isolated pixels (no non-background neighbour, diagonals included)")
class Denoise:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"palette": colors(rng, randint(rng, 1, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 5), side(rng, d, 5)
        pal = p["palette"]
        taken = Canvas(h, w)
        clean = np.zeros((h, w), dtype=np.int8)
        for _ in range(randint(rng, 1, d.max_objects)):
            rh, rw = randint(rng, 2, min(4, h - 1)), randint(rng, 2, min(4, w - 1))
            at = place(rng, taken, rh, rw)
            if at is not None:
                clean[at[0] : at[0] + rh, at[1] : at[1] + rw] = pal[below(rng, len(pal))]
        noisy = clean.copy()
        placed = 0
        for _ in range(randint(rng, 1, max(2, h * w // 12)) * 4):
            r, c = below(rng, h), below(rng, w)
            if not noisy[max(r - 1, 0) : r + 2, max(c - 1, 0) : c + 2].any():
                noisy[r, c] = pal[below(rng, len(pal))]
                placed += 1
        return (noisy, clean) if placed else None
