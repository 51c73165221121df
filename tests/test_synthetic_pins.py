"""The synthetic tasks are pinned: the same seed gives the same tasks, byte for byte, as when the pins were
made (``tests/synthetic_pins.py`` recomputes all of them, with 2,000 tasks per family and difficulty)."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest

from arcforge import synthetic
from arcforge.synthetic.generator import generate_table
from tests.synthetic_pins import DIFFICULTIES, MIXED, PER_FAMILY, PINS, table_digest, tasks_digest

PINNED = json.loads(PINS.read_text())
N = PER_FAMILY[0]


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_every_family_draws_the_pinned_tasks(difficulty):
    got = {
        f"{difficulty}/{fam}/{N}": tasks_digest(
            synthetic.generate(N, seed=0, families=[fam], difficulty=difficulty)
        )
        for fam in synthetic.families()
    }
    assert got == {k: PINNED[k] for k in got}


@pytest.mark.parametrize("difficulty", DIFFICULTIES)
def test_all_families_together_with_redraws_are_pinned(difficulty):
    key = f"{difficulty}/all/{MIXED}"
    assert tasks_digest(synthetic.generate(MIXED, seed=7, difficulty=difficulty)) == PINNED[key]


def test_the_rows_the_build_stores_are_pinned():
    tables = [generate_table(lo, min(lo + 700, MIXED), 7) for lo in range(0, MIXED, 700)]  # as worker chunks
    assert table_digest(pa.concat_tables(tables)) == PINNED[f"table/medium/0-{MIXED}"]
