"""Every synthetic family obeys its rule, checked by an independent checker written here.

The checkers never call the generator's transforms: flips and rotations are checked cell by cell from
index formulas, gravity line by line, enclosed regions by a BFS from the border, objects by a BFS over
8-connected cells, periods by brute force, and so on.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import arcforge.synthetic as synthetic
from arcforge.synthetic.base import REGISTRY, resolve_difficulty

Checker = Callable[[np.ndarray, np.ndarray, dict], None]
CHECKERS: dict[str, Checker] = {}


def checker(name: str) -> Callable[[Checker], Checker]:
    def deco(fn: Checker) -> Checker:
        CHECKERS[name] = fn
        return fn

    return deco


# --- independent helpers ----------------------------------------------------------------------------------
def cells(g: np.ndarray):
    h, w = g.shape
    for r in range(h):
        for c in range(w):
            yield r, c


def components(g: np.ndarray) -> list[list[tuple[int, int]]]:
    """8-connected components of non-background cells (BFS)."""
    h, w = g.shape
    seen = np.zeros(g.shape, dtype=bool)
    comps = []
    for r, c in cells(g):
        if g[r, c] == 0 or seen[r, c]:
            continue
        comp, queue = [], deque([(r, c)])
        seen[r, c] = True
        while queue:
            y, x = queue.popleft()
            comp.append((y, x))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    ny, nx = y + dy, x + dx
                    if 0 <= ny < h and 0 <= nx < w and g[ny, nx] != 0 and not seen[ny, nx]:
                        seen[ny, nx] = True
                        queue.append((ny, nx))
        comps.append(comp)
    return comps


def enclosed(g: np.ndarray) -> np.ndarray:
    """Background cells that no 4-connected background path links to the grid's edge."""
    h, w = g.shape
    reach = np.zeros(g.shape, dtype=bool)
    queue = deque((r, c) for r, c in cells(g) if (r in (0, h - 1) or c in (0, w - 1)) and g[r, c] == 0)
    for r, c in queue:
        reach[r, c] = True
    while queue:
        y, x = queue.popleft()
        for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
            if 0 <= ny < h and 0 <= nx < w and g[ny, nx] == 0 and not reach[ny, nx]:
                reach[ny, nx] = True
                queue.append((ny, nx))
    return (g == 0) & ~reach


def neighbours8(g: np.ndarray, r: int, c: int) -> list[int | None]:
    """The 8 neighbours' colors, None where off the grid."""
    h, w = g.shape
    return [
        int(g[r + dy, c + dx]) if 0 <= r + dy < h and 0 <= c + dx < w else None
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
        if dy or dx
    ]


def bbox(g: np.ndarray) -> tuple[int, int, int, int]:
    pts = np.argwhere(g != 0)
    (r0, c0), (r1, c1) = pts.min(0), pts.max(0)
    return int(r0), int(c0), int(r1), int(c1)


def min_period_cols(g: np.ndarray) -> int:
    w = g.shape[1]
    return next(q for q in range(1, w + 1) if all((g[:, j] == g[:, j - q]).all() for j in range(q, w)))


# --- geometry -----------------------------------------------------------------------------------------------
@checker("flip")
def _flip(i, o, p):
    h, w = i.shape
    assert o.shape == i.shape
    for r, c in cells(i):
        assert o[r, c] == (i[r, w - 1 - c] if p["axis"] == "h" else i[h - 1 - r, c])


@checker("rotate")
def _rotate(i, o, p):
    h, w = i.shape
    k = p["quarter_turns"]
    assert o.shape == ((w, h) if k % 2 else (h, w))
    for r, c in cells(o):  # counter-clockwise quarter turns
        src = {1: (c, w - 1 - r), 2: (h - 1 - r, w - 1 - c), 3: (h - 1 - c, r)}[k]
        assert o[r, c] == i[src]


@checker("transpose")
def _transpose(i, o, p):
    assert o.shape == i.shape[::-1]
    for r, c in cells(o):
        assert o[r, c] == i[c, r]


@checker("scale_up")
def _scale_up(i, o, p):
    f = p["factor"]
    assert o.shape == (i.shape[0] * f, i.shape[1] * f)
    for r, c in cells(o):
        assert o[r, c] == i[r // f, c // f]


@checker("scale_down")
def _scale_down(i, o, p):
    _scale_up(o, i, p)


@checker("crop_object")
def _crop_object(i, o, p):
    assert len(components(i)) == 1
    r0, c0, r1, c1 = bbox(i)
    assert np.array_equal(o, i[r0 : r1 + 1, c0 : c1 + 1])


@checker("tile")
def _tile(i, o, p):
    ry, rx = p["reps"]
    h, w = i.shape
    assert o.shape == (h * ry, w * rx)
    for r, c in cells(o):
        assert o[r, c] == i[r % h, c % w]


@checker("mirror_concat")
def _mirror_concat(i, o, p):
    h, w = i.shape
    if p["axis"] == "h":
        assert o.shape == (h, 2 * w)
        for r, c in cells(i):
            assert o[r, c] == i[r, c] and o[r, 2 * w - 1 - c] == i[r, c]
    else:
        assert o.shape == (2 * h, w)
        for r, c in cells(i):
            assert o[r, c] == i[r, c] and o[2 * h - 1 - r, c] == i[r, c]


# --- color --------------------------------------------------------------------------------------------------
@checker("color_map")
def _color_map(i, o, p):
    mapping = {s: t for s, t in p["mapping"]}
    assert o.shape == i.shape
    for r, c in cells(i):
        assert o[r, c] == mapping.get(int(i[r, c]), i[r, c])


@checker("recolor_largest")
def _recolor_largest(i, o, p):
    comps = components(i)
    sizes = sorted(len(c) for c in comps)
    assert len(sizes) >= 2 and sizes[-1] > sizes[-2]  # a unique largest object
    for comp in comps:
        want = p["color_out"] if len(comp) == sizes[-1] else p["color_in"]
        assert all(i[y, x] == p["color_in"] and o[y, x] == want for y, x in comp)
    assert ((o == 0) == (i == 0)).all()


@checker("recolor_by_size")
def _recolor_by_size(i, o, p):
    table = dict(map(tuple, p["size_colors"]))
    for comp in components(i):
        assert all(i[y, x] == p["color_in"] and o[y, x] == table[len(comp)] for y, x in comp)
    assert ((o == 0) == (i == 0)).all()


@checker("denoise")
def _denoise(i, o, p):
    removed = 0
    for r, c in cells(i):
        isolated = i[r, c] != 0 and not any(v for v in neighbours8(i, r, c) if v is not None)
        assert o[r, c] == (0 if isolated else i[r, c])
        removed += isolated
    assert removed >= 1


# --- physics ------------------------------------------------------------------------------------------------
@checker("gravity")
def _gravity(i, o, p):
    assert o.shape == i.shape
    d = p["direction"]
    lines = (
        [(i[:, j], o[:, j]) for j in range(i.shape[1])]
        if d in ("down", "up")
        else [(i[r, :], o[r, :]) for r in range(i.shape[0])]
    )
    for src, dst in lines:
        colored = [int(v) for v in src if v != 0]
        gap = [0] * (len(src) - len(colored))
        want = gap + colored if d in ("down", "right") else colored + gap
        assert [int(v) for v in dst] == want


@checker("move_object")
def _move_object(i, o, p):
    dy, dx = p["dy"], p["dx"]
    assert o.shape == i.shape and np.count_nonzero(o) == np.count_nonzero(i) > 0
    for r, c in cells(i):
        if i[r, c]:
            assert o[r + dy, c + dx] == i[r, c]


@checker("slide_object")
def _slide_object(i, o, p):
    assert len(components(i)) == 1 and o.shape == i.shape
    a, b = bbox(i), bbox(o)
    assert np.array_equal(i[a[0] : a[2] + 1, a[1] : a[3] + 1], o[b[0] : b[2] + 1, b[1] : b[3] + 1])
    h, w = i.shape
    d = p["direction"]
    if d in ("up", "down"):
        assert b[1] == a[1] and (b[0] == 0 if d == "up" else b[2] == h - 1)
    else:
        assert b[0] == a[0] and (b[1] == 0 if d == "left" else b[3] == w - 1)


# --- fill ---------------------------------------------------------------------------------------------------
@checker("fill_enclosed")
def _fill_enclosed(i, o, p):
    inside = enclosed(i)
    assert inside.any()
    assert (o[inside] == p["fill"]).all()
    assert np.array_equal(o[~inside], i[~inside])


@checker("draw_lines")
def _draw_lines(i, o, p):
    dy, dx = {"right": (0, 1), "left": (0, -1), "down": (1, 0), "up": (-1, 0)}[p["direction"]]
    want = i.copy()
    h, w = i.shape
    for r, c in cells(i):
        if i[r, c]:
            y, x = r, c
            while 0 <= y < h and 0 <= x < w:
                assert want[y, x] in (0, i[r, c])  # lines never cross
                want[y, x] = i[r, c]
                y, x = y + dy, x + dx
    assert np.array_equal(o, want)


@checker("extend_pattern")
def _extend_pattern(i, o, p):
    if p["axis"] == "v":
        i, o = i.T, o.T
    assert o.shape == i.shape and (o != 0).all()
    shown = next(j for j in range(i.shape[1] + 1) if j == i.shape[1] or not i[:, j].all())
    assert shown < i.shape[1] and not i[:, shown:].any()
    q = min_period_cols(i[:, :shown])
    assert q < shown  # the visible part repeats at least once
    for r, c in cells(o):
        assert o[r, c] == i[r, c % q]


@checker("symmetry_complete")
def _symmetry_complete(i, o, p):
    if p["axis"] == "v":
        i, o = i.T, o.T
    w = i.shape[1]
    assert o.shape == i.shape and (o != 0).all() and (i == 0).any()
    for r, c in cells(o):
        assert o[r, c] == o[r, w - 1 - c]
        if i[r, c]:
            assert o[r, c] == i[r, c]
        else:
            assert i[r, w - 1 - c] != 0  # the hidden cell's mirror is visible: the answer is determined


@checker("border")
def _border(i, o, p):
    h, w = i.shape
    for r, c in cells(i):
        on_edge = r in (0, h - 1) or c in (0, w - 1)
        assert o[r, c] == (p["color"] if on_edge else i[r, c])


@checker("hollow")
def _hollow(i, o, p):
    for r, c in cells(i):
        nb = neighbours8(i, r, c)
        interior = i[r, c] != 0 and all(v == i[r, c] for v in nb)
        assert o[r, c] == (0 if interior else i[r, c])
    for comp in components(i):  # every object is a solid rectangle
        ys, xs = zip(*comp, strict=True)
        assert len(comp) == (max(ys) - min(ys) + 1) * (max(xs) - min(xs) + 1)


# --- counting -----------------------------------------------------------------------------------------------
@checker("count_to_bar")
def _count_to_bar(i, o, p):
    colored = [int(v) for v in i.ravel() if v]
    assert len(set(colored)) == 1
    assert o.shape == ((1, len(colored)) if p["orientation"] == "row" else (len(colored), 1))
    assert (o == colored[0]).all()


@checker("majority_color")
def _majority_color(i, o, p):
    counts = Counter(int(v) for v in i.ravel() if v).most_common()
    assert len(counts) == 1 or counts[0][1] > counts[1][1]
    assert o.shape == (p["out_side"], p["out_side"]) and (o == counts[0][0]).all()


@checker("count_objects")
def _count_objects(i, o, p):
    assert o.shape == (1, len(components(i))) and (o == p["bar_color"]).all()


# --- the tests ------------------------------------------------------------------------------------------
def test_every_family_has_an_independent_checker():
    assert set(CHECKERS) == set(synthetic.families())
    assert len(CHECKERS) >= 20


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_every_pair_obeys_its_family_rule(difficulty):
    per_family = 12 if difficulty == "medium" else 6
    n = per_family * len(synthetic.families())
    seen = Counter()
    for task in synthetic.generate(n, seed=7, difficulty=difficulty):
        fam, params = task.extra["family"], task.extra["params"]
        for k, pair in enumerate(task.pairs):
            try:
                CHECKERS[fam](pair.input, pair.output, params)
            except AssertionError as e:
                raise AssertionError(f"{task.id} pair {k} breaks {fam} {params}: {e}") from None
        seen[fam] += 1
    assert set(seen.values()) == {per_family}


def test_color_map_train_shows_every_mapped_and_test_color():
    for task in synthetic.generate(60, seed=3, families=["color_map"]):
        train_colors = {int(v) for p in task.train for v in np.unique(p.input)}
        test_colors = {int(v) for v in np.unique(task.test[0].input)}
        assert {s for s, _ in task.extra["params"]["mapping"]} <= train_colors
        assert test_colors <= train_colors


def test_size_and_majority_answers_are_demonstrated_in_train():
    for task in synthetic.generate(40, seed=5, families=["recolor_by_size", "majority_color"]):
        train_out = {int(v) for p in task.train for v in np.unique(p.output)}
        if task.extra["family"] == "recolor_by_size":  # every size the test needs was shown
            assert {int(v) for v in np.unique(task.test[0].output)} <= train_out
        else:  # "always answer X" does not fit the train pairs
            assert len(train_out) >= 2


def test_checkers_reject_a_corrupted_output():
    # The checkers can fail: changing any single output cell of any family breaks its rule.
    rng = np.random.default_rng(0)
    for task in synthetic.generate(3 * len(synthetic.families()), seed=11):
        pair, params = task.train[0], task.extra["params"]
        bad = pair.output.copy()
        r, c = int(rng.integers(bad.shape[0])), int(rng.integers(bad.shape[1]))
        bad[r, c] = (bad[r, c] + 1 + int(rng.integers(9))) % 10
        with pytest.raises(AssertionError):
            CHECKERS[task.extra["family"]](pair.input, bad, params)


def _d4(g: np.ndarray) -> list[np.ndarray]:
    """The 8 rotations/reflections of a grid, built from numpy alone."""
    rots = [np.rot90(g, k) for k in range(4)]
    return rots + [np.fliplr(r) for r in rots]


def _gravity_answer(g: np.ndarray, direction: str) -> np.ndarray:
    out = np.zeros_like(g)
    vertical = direction in ("down", "up")
    for k in range(g.shape[1] if vertical else g.shape[0]):
        line = g[:, k] if vertical else g[k, :]
        colored = [v for v in line if v]
        gap = [0] * (len(line) - len(colored))
        want = gap + colored if direction in ("down", "right") else colored + gap
        if vertical:
            out[:, k] = want
        else:
            out[k, :] = want
    return out


def test_symmetry_and_gravity_rules_are_unambiguous():
    # Exactly one candidate rule of the family's kind explains all train pairs, even on 2x2 grids
    # with two colors, where several symmetries or directions often agree on a single pair.
    tiny = synthetic.Difficulty("tiny", 2, 2, 1, 2)
    for task in synthetic.generate(
        200, seed=13, families=["flip", "rotate", "transpose", "gravity"], difficulty=tiny
    ):
        if task.extra["family"] == "gravity":
            fits = [
                d
                for d in ("down", "up", "left", "right")
                if all(np.array_equal(_gravity_answer(p.input, d), p.output) for p in task.train)
            ]
            assert fits == [task.extra["params"]["direction"]], task.id
        else:
            fits = [
                k
                for k in range(8)
                if all(
                    _d4(p.input)[k].shape == p.output.shape and np.array_equal(_d4(p.input)[k], p.output)
                    for p in task.train
                )
            ]
            assert len(fits) == 1, task.id


@settings(max_examples=200, deadline=None)
@given(
    fam=st.sampled_from(sorted(REGISTRY)),
    seed=st.integers(0, 2**63 - 1),
    index=st.integers(0, 10**6),
    difficulty=st.sampled_from(["easy", "medium", "hard"]),
)
def test_any_seed_and_index_gives_a_rule_abiding_task(fam, seed, index, difficulty):
    task = synthetic.make_task(REGISTRY[fam], index, seed, resolve_difficulty(difficulty))
    assert task.id == f"synthetic/{fam}/{index:06d}"
    for pair in task.pairs:
        CHECKERS[fam](pair.input, pair.output, task.extra["params"])
