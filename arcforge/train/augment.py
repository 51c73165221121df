"""On-the-fly augmentation, identical for every grid of a task: one of the 8 symmetries, a color
permutation (color 0, the usual background, fixed or not) and a shuffle of the train-pair order.

A ``Transform`` is invertible on grids (``invert``), which evaluation uses to vote over predictions made
under several transforms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from arcforge.grids import Grid, apply_symmetry, inverse_permutation, invert_symmetry, recolor
from arcforge.task import Pair, Task
from arcforge.train.config import AugmentConfig, EvalConfig

IDENTITY_PERM = np.arange(10, dtype=np.int8)


@dataclass(frozen=True)
class Transform:
    sym: int = 0  # index into arcforge.grids.SYMMETRY_NAMES
    perm: tuple[int, ...] = tuple(range(10))  # color c -> perm[c]
    order: tuple[int, ...] | None = None  # new order of the train pairs (None = unchanged)

    def grid(self, g: Grid) -> Grid:
        """Apply to one grid: recolor, then the symmetry."""
        return apply_symmetry(recolor(g, self.perm), self.sym)

    def invert(self, g: Grid) -> Grid:
        """Undo ``grid``: ``t.invert(t.grid(g)) == g``."""
        return recolor(invert_symmetry(g, self.sym), inverse_permutation(self.perm))

    def task(self, task: Task) -> Task:
        """The same transform on every grid of a task (train order permuted when ``order`` is set)."""
        train = [
            Pair(self.grid(p.input), None if p.output is None else self.grid(p.output)) for p in task.train
        ]
        if self.order is not None:
            train = [train[i] for i in self.order]
        test = [
            Pair(self.grid(p.input), None if p.output is None else self.grid(p.output)) for p in task.test
        ]
        return Task(task.id, task.source, task.split, train, test)

    @property
    def is_identity(self) -> bool:
        return self.sym == 0 and tuple(self.perm) == tuple(range(10)) and self.order is None


def random_transform(rng: np.random.Generator, n_train: int, cfg: AugmentConfig) -> Transform:
    """Draw one transform (a fixed number of draws whatever ``cfg`` says, so streams stay aligned)."""
    sym = int(rng.integers(8))
    perm = rng.permutation(10)
    perm_nz = np.concatenate([[0], 1 + rng.permutation(9)])
    order = rng.permutation(n_train)
    return Transform(
        sym=sym if cfg.symmetries else 0,
        perm=tuple(int(c) for c in ((perm_nz if cfg.keep_zero else perm) if cfg.colors else IDENTITY_PERM)),
        order=tuple(int(i) for i in order) if cfg.shuffle_train else None,
    )


def voting_transforms(
    n: int,
    seed: int = EvalConfig.seed,
    *,
    keep_zero: bool = AugmentConfig.keep_zero,
    symmetries: bool = EvalConfig.vote_symmetries,
) -> list[Transform]:
    """``n`` deterministic transforms for test-time voting: identity first, then each other symmetry
    (with a color permutation after the first 8). ``symmetries=False``: identity, then color permutations
    only (for a model fine-tuned on the task's own orientation)."""
    rng = np.random.default_rng(seed)
    out = [Transform()]
    for i in range(1, n):
        sym = i % 8 if symmetries else 0
        if i < 8 and symmetries:
            out.append(Transform(sym=sym))
        else:
            p = np.concatenate([[0], 1 + rng.permutation(9)]) if keep_zero else rng.permutation(10)
            out.append(Transform(sym=sym, perm=tuple(int(c) for c in p)))
    return out
