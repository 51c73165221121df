"""Fill and drawing families: fill enclosed regions, draw lines, extend patterns, complete symmetry,
draw a border, hollow out rectangles."""

from __future__ import annotations

import numpy as np

from arcforge.synthetic.base import (
    MAX_SIDE,
    Canvas,
    Difficulty,
    Params,
    RawPair,
    below,
    choice,
    colors,
    family,
    full_grid,
    noise_grid,
    place,
    randint,
    side,
    uniform,
)


def _orient(g: np.ndarray, direction: str) -> np.ndarray:
    """View of ``g`` in which ``direction`` points right (an involution for left/right, a transpose
    pair for up/down, so ``_unorient(_orient(g)) == g``)."""
    return {"right": g, "left": g[:, ::-1], "down": g.T, "up": g[::-1].T}[direction]


def _unorient(g: np.ndarray, direction: str) -> np.ndarray:
    return {"right": g, "left": g[:, ::-1], "down": g.T, "up": g.T[::-1]}[direction]


@family("fill_enclosed", "fill", "paint every background cell enclosed by an outline with the fill color")
class FillEnclosed:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        c, f = colors(rng, 2)
        return {"outline": c, "fill": f, "open_distractors": d.name != "easy"}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 5), side(rng, d, 5)
        taken = Canvas(h, w)
        g = np.zeros((h, w), dtype=np.int8)
        out = g.copy()
        closed = 0
        for i in range(randint(rng, 1, d.max_objects)):
            rh, rw = randint(rng, 3, min(6, h)), randint(rng, 3, min(6, w))
            at = place(rng, taken, rh, rw)
            if at is None:
                continue
            r, c = at
            g[r : r + rh, c : c + rw] = p["outline"]
            g[r + 1 : r + rh - 1, c + 1 : c + rw - 1] = 0
            if i > 0 and p["open_distractors"] and rng.random() < 0.4:
                # Open one non-corner cell of the outline: its inside then leaks out and stays empty.
                if rng.random() < 0.5:
                    g[choice(rng, [r, r + rh - 1]), randint(rng, c + 1, c + rw - 2)] = 0
                else:
                    g[randint(rng, r + 1, r + rh - 2), choice(rng, [c, c + rw - 1])] = 0
                out[r : r + rh, c : c + rw] = g[r : r + rh, c : c + rw]
            else:
                out[r : r + rh, c : c + rw] = p["outline"]
                out[r + 1 : r + rh - 1, c + 1 : c + rw - 1] = p["fill"]
                closed += 1
        return (g, out) if closed else None


@family("draw_lines", "fill", "every colored pixel shoots a line of its color to the edge in one direction")
class DrawLines:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {
            "direction": choice(rng, ["right", "left", "down", "up"]),
            "palette": colors(rng, randint(rng, 1, d.max_colors)),
        }

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        h, w = side(rng, d, 3), side(rng, d, 3)
        g = np.zeros((h, w), dtype=np.int8)
        view = _orient(g, p["direction"])  # seeds in distinct rows of the view shoot right
        out_view = view.copy()
        rows = rng.choice(
            view.shape[0], size=randint(rng, 1, min(d.max_objects, view.shape[0])), replace=False
        )
        pal = p["palette"]
        for r in rows:
            c = below(rng, view.shape[1] - 1)  # never on the far edge: every line has length >= 2
            color = pal[below(rng, len(pal))]
            view[r, c] = color
            out_view[r, c:] = color
        return g, np.ascontiguousarray(_unorient(out_view, p["direction"]))


def _min_period(cols: np.ndarray) -> int:
    """Smallest q such that column j equals column j - q for every j >= q (q = width if none)."""
    k = cols.shape[1]
    for q in range(1, k):
        if (cols[:, q:] == cols[:, :-q]).all():  # equal shapes: np.array_equal without its overhead
            return q
    return k


@family("extend_pattern", "fill", "continue a repeating pattern of columns (h) or rows (v) to fill the grid")
class ExtendPattern:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        max_period = {"easy": 3, "medium": 4}.get(d.name, 5)
        return {
            "axis": choice(rng, ["h", "v"]),
            "period": randint(rng, 2, max_period),
            "palette": colors(rng, randint(rng, 2, d.max_colors)),
        }

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        q = p["period"]
        rows, width = side(rng, d, 1), side(rng, d, q + 2)
        shown = randint(rng, q + 1, width - 1)
        pattern = full_grid(rng, rows, q, p["palette"])
        out = np.tile(pattern, (1, -(-width // q)))[:, :width]
        if _min_period(out[:, :shown]) != q:  # the visible part must pin the period down
            return None
        g = out.copy()
        g[:, shown:] = 0
        if p["axis"] == "v":
            return np.ascontiguousarray(g.T), np.ascontiguousarray(out.T)
        return g, np.ascontiguousarray(out)


@family("symmetry_complete", "fill", "restore the hidden (background) cells of a mirror-symmetric grid")
class SymmetryComplete:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"axis": choice(rng, ["h", "v"]), "palette": colors(rng, randint(rng, 2, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        h, w = side(rng, d, 2), side(rng, d, 2)
        full = full_grid(rng, h, w, p["palette"])
        half = w // 2
        full[:, w - half :] = full[:, :half][:, ::-1]  # mirror left-right
        # Hide a rectangle that lies within one half, so its mirror image still shows every hidden cell.
        r0 = randint(rng, 0, h - 1)
        r1 = randint(rng, r0, h - 1)
        c0 = randint(rng, 0, half - 1)
        c1 = randint(rng, c0, half - 1)
        if rng.random() < 0.5:
            c0, c1 = w - 1 - c1, w - 1 - c0
        g = full.copy()
        g[r0 : r1 + 1, c0 : c1 + 1] = 0
        if p["axis"] == "v":
            return np.ascontiguousarray(g.T), np.ascontiguousarray(full.T)
        return g, full


@family("border", "fill", "paint the outermost ring of cells with one color", easy=True)
class Border:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        c, *pal = colors(rng, randint(rng, 2, d.max_colors))
        return {"color": c, "palette": pal}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = noise_grid(rng, side(rng, d, 3), side(rng, d, 3), p["palette"], uniform(rng, 0.2, 0.7))
        out = g.copy()
        out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = p["color"]
        return g, out


@family("hollow", "fill", "keep only the outline of every solid rectangle")
class Hollow:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"palette": colors(rng, randint(rng, 1, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 5, MAX_SIDE), side(rng, d, 5, MAX_SIDE)
        taken = Canvas(h, w)
        g = np.zeros((h, w), dtype=np.int8)
        out = g.copy()
        pal = p["palette"]
        for _ in range(randint(rng, 1, d.max_objects)):
            rh, rw = randint(rng, 3, min(7, h)), randint(rng, 3, min(7, w))
            at = place(rng, taken, rh, rw)
            if at is None:
                continue
            r, c = at
            g[r : r + rh, c : c + rw] = out[r : r + rh, c : c + rw] = pal[below(rng, len(pal))]
            out[r + 1 : r + rh - 1, c + 1 : c + rw - 1] = 0
        return g, out
