"""Physics families: gravity on cells, moving an object by a fixed step, sliding it to a wall."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arcforge.synthetic.base import (
    Difficulty,
    Params,
    RawPair,
    choice,
    colors,
    family,
    noise_grid,
    randint,
    random_shape,
    same_grid,
    side,
    uniform,
)

DIRECTIONS = ("down", "up", "left", "right")


def _fall_down(g: np.ndarray) -> np.ndarray:
    # A stable sort on "is non-background" moves background cells to the top of each column and keeps
    # the colored cells in their original order below them.
    order = np.argsort(g != 0, axis=0, kind="stable")
    return g[order, np.arange(g.shape[1])]  # np.take_along_axis(g, order, axis=0), without its overhead


def gravity(g: np.ndarray, direction: str) -> np.ndarray:
    """Every non-background cell falls independently towards ``direction`` (order in a line preserved)."""
    if direction == "down":
        return _fall_down(g)
    if direction == "up":
        return _fall_down(g[::-1])[::-1]
    if direction == "right":
        return _fall_down(g.T).T
    return _fall_down(g[:, ::-1].T).T[:, ::-1]


@family("gravity", "physics", "every colored cell falls towards one side of the grid", easy=True)
class Gravity:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"direction": choice(rng, DIRECTIONS), "palette": colors(rng, randint(rng, 1, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = noise_grid(rng, side(rng, d), side(rng, d), p["palette"], uniform(rng, 0.15, 0.5))
        return g, np.ascontiguousarray(gravity(g, p["direction"]))

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        # No other direction explains every train pair.
        return not any(
            all(same_grid(gravity(i, d), o) for i, o in train) for d in DIRECTIONS if d != p["direction"]
        )


def _object(rng: np.random.Generator, palette: list[int], max_h: int, max_w: int) -> np.ndarray:
    """A random 4-connected object (int8, background 0) at most max_h x max_w."""
    shape = random_shape(rng, max_h, max_w, randint(rng, 2, max(2, max_h * max_w * 2 // 3)))
    return noise_grid(rng, *shape.shape, palette, 1.0) * shape.astype(np.int8)


@family("move_object", "physics", "shift the object by a fixed step (dy, dx)")
class MoveObject:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        while True:
            dy, dx = randint(rng, -2, 2), randint(rng, -2, 2)
            if dy or dx:
                return {"dy": dy, "dx": dx, "palette": colors(rng, randint(rng, 1, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        dy, dx = p["dy"], p["dx"]
        h, w = side(rng, d, abs(dy) + 2), side(rng, d, abs(dx) + 2)
        obj = _object(
            rng, p["palette"], randint(rng, 1, min(4, h - abs(dy))), randint(rng, 1, min(4, w - abs(dx)))
        )
        oh, ow = obj.shape
        r = randint(rng, max(0, -dy), h - oh - max(0, dy))
        c = randint(rng, max(0, -dx), w - ow - max(0, dx))
        g = np.zeros((h, w), dtype=np.int8)
        out = g.copy()
        g[r : r + oh, c : c + ow] = obj
        out[r + dy : r + dy + oh, c + dx : c + dx + ow] = obj
        return g, out


@family("slide_object", "physics", "slide the object in one direction until it touches the edge")
class SlideObject:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"direction": choice(rng, DIRECTIONS), "palette": colors(rng, randint(rng, 1, d.max_colors))}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        h, w = side(rng, d, 3), side(rng, d, 3)
        obj = _object(rng, p["palette"], randint(rng, 1, min(4, h - 1)), randint(rng, 1, min(4, w - 1)))
        oh, ow = obj.shape
        r, c = randint(rng, 0, h - oh), randint(rng, 0, w - ow)
        g = np.zeros((h, w), dtype=np.int8)
        g[r : r + oh, c : c + ow] = obj
        r2 = {"down": h - oh, "up": 0}.get(p["direction"], r)
        c2 = {"right": w - ow, "left": 0}.get(p["direction"], c)
        out = np.zeros_like(g)
        out[r2 : r2 + oh, c2 : c2 + ow] = obj
        return g, out
