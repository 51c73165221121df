"""Geometry families: flips, rotations, transpose, scaling, cropping, tiling, mirroring."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from arcforge.grids import apply_symmetry
from arcforge.synthetic.base import (
    MAX_SIDE,
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


def _palette(rng: np.random.Generator, d: Difficulty) -> list[int]:
    return colors(rng, randint(rng, 2, d.max_colors))


def _only_symmetry(k: int, train: Sequence[RawPair]) -> bool:
    """True if symmetry ``k`` (``arcforge.grids`` numbering) is the only one of the 8 that maps every
    train input to its output, so the train pairs pin the rule down."""
    return all(j == k or not all(same_grid(apply_symmetry(i, j), o) for i, o in train) for j in range(8))


def _scene(rng: np.random.Generator, d: Difficulty, params: Params, lo: int = 2, hi: int = MAX_SIDE):
    """A random sparse-to-dense grid in the task's palette, sides in the difficulty's range."""
    h, w = side(rng, d, lo, hi), side(rng, d, lo, hi)
    return noise_grid(rng, h, w, params["palette"], uniform(rng, 0.3, 0.8))


@family("flip", "geometry", "mirror the grid left-right (axis h) or top-bottom (axis v)", easy=True)
class Flip:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"axis": choice(rng, ["h", "v"]), "palette": _palette(rng, d)}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = _scene(rng, d, p)
        return g, (g[:, ::-1] if p["axis"] == "h" else g[::-1, :])

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        return _only_symmetry(4 if p["axis"] == "h" else 5, train)


@family("rotate", "geometry", "rotate the grid counter-clockwise by 90, 180 or 270 degrees", easy=True)
class Rotate:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"quarter_turns": randint(rng, 1, 3), "palette": _palette(rng, d)}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = _scene(rng, d, p)
        return g, apply_symmetry(g, p["quarter_turns"])  # symmetries 1-3 are the quarter turns

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        return _only_symmetry(p["quarter_turns"], train)


@family("transpose", "geometry", "reflect the grid across its main diagonal", easy=True)
class Transpose:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"palette": _palette(rng, d)}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = _scene(rng, d, p)
        return g, g.T

    @staticmethod
    def check(p: Params, train: Sequence[RawPair], test: Sequence[RawPair]) -> bool:
        return _only_symmetry(6, train)


def _scale_params(rng: np.random.Generator, d: Difficulty) -> Params:
    return {"factor": randint(rng, 2, 3 if d.max_side < 12 else 4), "palette": _palette(rng, d)}


def _scaled_scene(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
    """A small scene and its ``factor`` x ``factor`` enlargement (scale_up and scale_down are inverses)."""
    f = p["factor"]
    hi = max(2, min(MAX_SIDE // f, d.max_side // f + 1))
    small = _scene(rng, d, p, 2, hi)
    return small, small.repeat(f, axis=0).repeat(f, axis=1)  # each cell an f x f block (as np.kron with ones)


@family("scale_up", "geometry", "enlarge every cell into a factor x factor block")
class ScaleUp:
    params = staticmethod(_scale_params)

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        return _scaled_scene(rng, d, p)


@family("scale_down", "geometry", "shrink a grid made of factor x factor blocks to one cell per block")
class ScaleDown:
    params = staticmethod(_scale_params)

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        small, big = _scaled_scene(rng, d, p)
        return big, small


@family("crop_object", "geometry", "cut out the bounding box of the only object on the grid")
class CropObject:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"palette": _palette(rng, d)}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair | None:
        h, w = side(rng, d, 4), side(rng, d, 4)
        shape = random_shape(rng, randint(rng, 2, h - 1), randint(rng, 2, w - 1), randint(rng, 3, h * w // 3))
        sh, sw = shape.shape
        if sh * sw < 2:
            return None
        obj = noise_grid(rng, sh, sw, p["palette"], 1.0) * shape
        g = np.zeros((h, w), dtype=np.int8)
        r, c = randint(rng, 0, h - sh), randint(rng, 0, w - sw)
        g[r : r + sh, c : c + sw] = obj
        return g, obj.astype(np.int8)


@family("tile", "geometry", "repeat the grid rows x cols times", easy=True)
class Tile:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        reps = choice(rng, [(1, 2), (2, 1), (2, 2), (1, 3), (3, 1)])
        return {"reps": list(reps), "palette": _palette(rng, d)}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        ry, rx = p["reps"]
        g = _scene(rng, d, p, 2, min(MAX_SIDE // ry, MAX_SIDE // rx, 10))
        return g, np.tile(g, (ry, rx))


@family(
    "mirror_concat", "geometry", "append the grid's mirror image to its right (h) or below it (v)", easy=True
)
class MirrorConcat:
    @staticmethod
    def params(rng: np.random.Generator, d: Difficulty) -> Params:
        return {"axis": choice(rng, ["h", "v"]), "palette": _palette(rng, d)}

    @staticmethod
    def pair(rng: np.random.Generator, d: Difficulty, p: Params) -> RawPair:
        g = _scene(rng, d, p, 2, MAX_SIDE // 2)
        if p["axis"] == "h":
            return g, np.concatenate((g, g[:, ::-1]), axis=1)
        return g, np.concatenate((g, g[::-1, :]), axis=0)
