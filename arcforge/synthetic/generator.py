"""Drive the families: one seeded, well-posed, de-duplicated Task per index.

Task ``i`` of ``generate(n, seed)`` belongs to family ``families[i % len(families)]`` and draws all its
randomness from ``np.random.default_rng([seed, i, attempt])``, so it does not depend on ``n`` (the first
100 tasks of ``generate(1000)`` are ``generate(100)``). ``attempt`` starts at 0 and is bumped when a draw
is ill-posed or its fingerprint repeats an earlier task of the same call.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from arcforge.errors import BuildError
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.synthetic.base import (
    DEFAULT_DIFFICULTY,
    MAX_SIDE,
    REGISTRY,
    Difficulty,
    Family,
    RawPair,
    randint,
    resolve_difficulty,
    same_grid,
)
from arcforge.task import Pair, Task, tasks_to_table

SOURCE_NAME = "synthetic"
LICENSE = "Apache-2.0"
SPLIT = "training"
MAX_ATTEMPTS = 64  # per task: ill-posed draws and fingerprint collisions both count
PAIR_TRIES = 40  # per task: pair draws that may be rejected before the attempt is abandoned


def families(*, easy_only: bool = False, group: str | None = None) -> list[str]:
    """Names of the registered families, sorted (the order ``generate`` cycles through)."""
    return sorted(
        name
        for name, f in REGISTRY.items()
        if (f.easy or not easy_only) and (group is None or f.group == group)
    )


EASY = "easy"  # in a list of family names: every family marked easy


def resolve_families(selected: Sequence[str] | None) -> tuple[str, ...] | None:
    """Family names as given (None = all), the word ``easy`` expanded to every easy family, de-duplicated
    in order. Raises ``BuildError`` naming unknown families, or when none is left."""
    if selected is None:
        return None
    names = [m for n in selected for m in (families(easy_only=True) if n == EASY else [n])]
    hint = f"known families: {', '.join(families())} (or `{EASY}`)"
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise BuildError(
            f"unknown synthetic famil{'y' if len(unknown) == 1 else 'ies'}: {', '.join(unknown)}", hint=hint
        )
    if not names:
        raise BuildError("no synthetic families selected", hint=hint)
    return tuple(dict.fromkeys(names))


def _resolve_families(selected: Sequence[str] | None) -> list[Family]:
    names = resolve_families(selected)
    return [REGISTRY[n] for n in (families() if names is None else names)]


def _valid(g: np.ndarray) -> bool:
    return g.ndim == 2 and 1 <= g.shape[0] <= MAX_SIDE and 1 <= g.shape[1] <= MAX_SIDE


def _draw(
    fam: Family, rng: np.random.Generator, d: Difficulty
) -> tuple[dict[str, Any], list[RawPair]] | None:
    """One attempt at a task: params, then 3-4 train pairs + 1 test pair with distinct inputs."""
    params = fam.params(rng, d)
    want = randint(rng, 3, 4) + 1
    pairs: list[RawPair] = []
    seen: set[bytes] = set()
    for _ in range(PAIR_TRIES):
        raw = fam.pair(rng, d, params)
        if raw is None:
            continue
        inp, out = raw
        if not (_valid(inp) and _valid(out)):
            continue
        if not fam.identity_like and same_grid(inp, out):
            continue
        key = bytes(inp.shape) + inp.tobytes()
        if key in seen:
            continue
        seen.add(key)
        pairs.append((inp, out))
        if len(pairs) == want:
            break
    else:
        return None
    if fam.check is not None and not fam.check(params, pairs[:-1], pairs[-1:]):
        return None
    return params, pairs


def _rng(seed: int, index: int, attempt: int) -> np.random.Generator:
    """``np.random.default_rng([seed, index, attempt])``: the same generator, made faster from 32-bit words
    when the three fit (the list form coerces them to exactly those words; larger ones take that path)."""
    if seed < _U32 and index < _U32 and attempt < _U32:
        return np.random.Generator(
            np.random.PCG64(np.random.SeedSequence(np.array((seed, index, attempt), dtype=np.uint32)))
        )
    return np.random.default_rng([seed, index, attempt])


_U32 = 1 << 32


def _as_grid(g: np.ndarray) -> np.ndarray:
    # Families build grids from palettes of 1-9 on a 0 background, so values need no check here
    # (the tests check every cell of thousands of tasks).
    return np.ascontiguousarray(g, dtype=np.int8)


def make_task(fam: Family, index: int, seed: int, d: Difficulty, taken: set[str] | None = None) -> Task:
    """Task ``index`` of family ``fam``; ``taken`` holds fingerprints to avoid (and gets the new one)."""
    for attempt in range(MAX_ATTEMPTS):
        rng = _rng(seed, index, attempt)
        drawn = _draw(fam, rng, d)
        if drawn is None:
            continue
        params, pairs = drawn
        task = Task(
            id=f"{SOURCE_NAME}/{fam.name}/{index:06d}",
            source=SOURCE_NAME,
            split=SPLIT,
            train=[Pair(_as_grid(i), _as_grid(o)) for i, o in pairs[:-1]],
            test=[Pair(_as_grid(i), _as_grid(o)) for i, o in pairs[-1:]],
            path=f"{fam.group}/{fam.name}",
            license=LICENSE,
            extra={"family": fam.name, "params": {**params, "difficulty": d.name, "seed": seed}},
        )
        if taken is None:
            return task
        fp = task.fingerprint
        if fp not in taken:
            taken.add(fp)
            return task
    raise BuildError(
        f"synthetic family {fam.name!r} produced no new well-posed task for index {index} "
        f"after {MAX_ATTEMPTS} attempts",
        hint="ask for fewer tasks or a harder --difficulty (bigger grids leave more room)",
    )


def generate(
    n: int,
    seed: int = 0,
    *,
    families: Sequence[str] | None = None,
    difficulty: str | Difficulty = DEFAULT_DIFFICULTY,
    progress: Progress | None = None,
) -> Iterator[Task]:
    """An iterator of ``n`` synthetic tasks, cycling through ``families`` (all by default, in sorted
    order) so that per-family counts are balanced.

    Arguments are checked here (``BuildError``), before any task is made. Task ``i`` depends only on
    (seed, families, difficulty, i); no two tasks of one call share a fingerprint.
    """
    if n < 0:
        raise BuildError(f"the number of synthetic tasks must be >= 0, got {n}")
    if seed < 0:
        raise BuildError(f"the synthetic seed must be >= 0, got {seed}")
    try:
        d = resolve_difficulty(difficulty)
    except ValueError as e:
        raise BuildError(str(e)) from None
    fams = _resolve_families(families)
    return _iterate(n, seed, fams, d, progress or NULL_PROGRESS)  # arguments checked before iteration


def _iterate(n: int, seed: int, fams: list[Family], d: Difficulty, progress: Progress) -> Iterator[Task]:
    progress.start("synthetic", "generating synthetic tasks", total=n, unit="tasks")
    taken: set[str] = set()
    try:
        for i in range(n):
            yield make_task(fams[i % len(fams)], i, seed, d, taken)
            progress.advance("synthetic")
    finally:
        progress.finish("synthetic")


# --- parallel generation -----------------------------------------------------------------------------
# ``generate`` is serial because task i avoids the fingerprints of tasks 0..i-1. The build splits the
# work: workers draw each task of a range as if nothing were taken (``generate_table``), and the ordered
# merge keeps a draw whose fingerprint is new, or re-draws task i with ``regenerate``, which is exactly
# what ``generate`` does for it. So the tasks are the same for any number of workers or chunk size.
def generate_table(
    first: int,
    last: int,
    seed: int,
    *,
    families: Sequence[str] | None = None,
    difficulty: str | Difficulty = DEFAULT_DIFFICULTY,
) -> pa.Table:
    """Tasks ``first..last-1`` of ``generate(n, seed, ...)`` each as its first well-posed draw, as rows."""
    d = resolve_difficulty(difficulty)
    fams = _resolve_families(families)
    return tasks_to_table([make_task(fams[i % len(fams)], i, seed, d) for i in range(first, last)])


def regenerate(
    index: int, seed: int, *, families: Sequence[str] | None, difficulty: str | Difficulty, taken: set[str]
) -> Task:
    """Task ``index`` avoiding the fingerprints in ``taken`` (which gets the new one), as ``generate``."""
    fams = _resolve_families(families)
    return make_task(fams[index % len(fams)], index, seed, resolve_difficulty(difficulty), taken)


# --- per-family statistics -----------------------------------------------------------------------------
def family_of(task: Task | Mapping[str, Any]) -> str | None:
    """The family of a synthetic Task (or of a TASK_SCHEMA row dict whose ``extra`` is JSON text)."""
    extra = task.extra if isinstance(task, Task) else task.get("extra")
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    fam = (extra or {}).get("family")
    return fam if isinstance(fam, str) else None


def family_counts(tasks: Iterable[Task | Mapping[str, Any]]) -> dict[str, int]:
    """Number of tasks per family (tasks without a family are not counted), sorted by family name."""
    counts: dict[str, int] = {}
    for t in tasks:
        fam = family_of(t)
        if fam is not None:
            counts[fam] = counts.get(fam, 0) + 1
    return dict(sorted(counts.items()))


def family_stats(tasks: Iterable[Task]) -> dict[str, dict[str, float]]:
    """Per family: ``tasks``, mean ``train_pairs``, mean and max grid side (``mean_side``, ``max_side``)."""
    acc: dict[str, list[float]] = {}
    for t in tasks:
        fam = family_of(t)
        if fam is None:
            continue
        sides = [max(g.shape) for g in t.grids()]
        a = acc.setdefault(fam, [0, 0, 0, 0, 0])
        a[0] += 1
        a[1] += len(t.train)
        a[2] += sum(sides)
        a[3] += len(sides)
        a[4] = max(a[4], max(sides))
    return {
        fam: {"tasks": int(a[0]), "train_pairs": a[1] / a[0], "mean_side": a[2] / a[3], "max_side": int(a[4])}
        for fam, a in sorted(acc.items())
    }
