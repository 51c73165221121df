"""The per-task difficulty estimate: each measure in [0, 1], larger for more cells, colors, change."""

from __future__ import annotations

import numpy as np

from arcforge.difficulty import MEASURES, estimate, measures
from arcforge.task import Pair, Task, tasks_to_table


def _g(rows):
    return np.array(rows, dtype=np.int8)


def test_measures_of_small_and_large_tasks():
    tiny = [(_g([[1]]), _g([[1]]))] * 3
    m = measures(tiny)
    assert set(m) == set(MEASURES)
    assert m["size_change"] == 0 and m["change"] == 0 and m["colors"] == 0.1
    assert m["cells"] == 2 / 1800
    rng = np.random.default_rng(0)
    big = [(rng.integers(0, 10, (30, 30)).astype(np.int8), rng.integers(0, 10, (20, 30)).astype(np.int8))
           for _ in range(3)]
    b = measures(big)
    assert b["colors"] == 1 and b["size_change"] == 1 and b["change"] == 1
    assert b["cells"] == 1500 / 1800 and 0.3 < b["compressed"] <= 1
    assert estimate(tiny) < 0.2 < 0.8 < estimate(big) <= 1


def test_hidden_test_output_counts_its_input_and_the_column_matches():
    t = Task("s/a", "s", "training", [Pair(_g([[1, 2]]), _g([[2, 1]]))], [Pair(_g([[3, 4]]), None)])
    assert 0 < t.difficulty < 1
    assert abs(tasks_to_table([t])["difficulty"][0].as_py() - t.difficulty) < 1e-6
