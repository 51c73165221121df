"""The synthetic source as a whole: determinism, no duplicates, balance, validity, knobs, stats."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

import arcforge.synthetic as synthetic
from arcforge.errors import BuildError
from arcforge.task import parse_task_object, task_to_row, tasks_from_batch, tasks_to_table

FAMS = synthetic.families()


@pytest.fixture(scope="module")
def tasks_2k():
    return list(synthetic.generate(2016, seed=0))  # 84 per family


def test_registry_has_at_least_20_families_in_five_groups():
    assert len(FAMS) >= 20 and sorted(FAMS) == FAMS
    groups = {row["group"] for row in synthetic.describe()}
    assert groups == {"geometry", "color", "physics", "fill", "counting"}
    easy = synthetic.families(easy_only=True)
    assert {"flip", "color_map", "gravity"} <= set(easy) < set(FAMS)
    assert synthetic.families(group="physics") == ["gravity", "move_object", "slide_object"]


def test_no_duplicate_tasks_and_balanced_families(tasks_2k):
    fps = [t.fingerprint for t in tasks_2k]
    assert len(set(fps)) == len(fps)
    assert len({t.id for t in tasks_2k}) == len(tasks_2k)
    assert synthetic.family_counts(tasks_2k) == dict.fromkeys(FAMS, 2016 // len(FAMS))


def test_no_duplicates_on_the_smallest_grids():
    # Easy grids are tiny, so collisions are likeliest here; the generator must re-draw them away.
    tasks = list(synthetic.generate(1200, seed=1, difficulty="easy"))
    assert len({t.fingerprint for t in tasks}) == 1200


def test_records_are_well_formed(tasks_2k):
    for t in tasks_2k:
        fam = t.extra["family"]
        assert re.fullmatch(rf"synthetic/{fam}/\d{{6}}", t.id)
        assert (t.source, t.split, t.license) == ("synthetic", "training", "Apache-2.0")
        assert 3 <= len(t.train) <= 4 and len(t.test) == 1
        assert isinstance(t.extra["params"], dict) and t.extra["params"]["difficulty"] == "medium"
        inputs = set()
        for p in t.pairs:
            for g in (p.input, p.output):
                assert g.dtype == np.int8 and g.ndim == 2
                assert min(g.shape) >= 1 and max(g.shape) <= 30
                assert g.min() >= 0 and g.max() <= 9
            assert not np.array_equal(p.input, p.output)  # no degenerate pair
            inputs.add(p.input.tobytes() + bytes(p.input.shape))
        assert len(inputs) == len(t.pairs)  # the test input differs from every train input


def test_index_order_follows_sorted_families():
    ids = [t.id for t in synthetic.generate(2 * len(FAMS), seed=0)]
    assert [i.split("/")[1] for i in ids] == FAMS * 2
    assert [int(i.split("/")[2]) for i in ids] == list(range(2 * len(FAMS)))


def test_deterministic_by_seed():
    a = [t.fingerprint for t in synthetic.generate(300, seed=42)]
    b = [t.fingerprint for t in synthetic.generate(300, seed=42)]
    c = [t.fingerprint for t in synthetic.generate(300, seed=43)]
    assert a == b
    assert len(set(a) & set(c)) < 10  # different seeds give (almost surely) different tasks


def test_task_i_does_not_depend_on_n():
    short = list(synthetic.generate(50, seed=9))
    long = list(synthetic.generate(200, seed=9))
    assert [t.fingerprint for t in short] == [t.fingerprint for t in long[:50]]
    assert [t.extra for t in short] == [t.extra for t in long[:50]]


def test_round_trips_through_the_row_format_and_arrow(tasks_2k):
    sample = tasks_2k[:: len(FAMS) - 1][:100]
    for t in sample:
        row = task_to_row(t)
        train, test, extra = parse_task_object(
            json.loads(json.dumps({"train": row["train"], "test": row["test"]}))
        )
        assert train == t.train and test == t.test and extra == {}
        assert json.loads(row["extra"]) == t.extra
    back = tasks_from_batch(tasks_to_table(sample))
    assert [b.fingerprint for b in back] == [t.fingerprint for t in sample]
    assert [b.extra for b in back] == [t.extra for t in sample]


def test_family_filter_and_counts_from_arrow_rows():
    tasks = list(synthetic.generate(30, seed=2, families=["flip", "gravity", "flip"]))
    assert synthetic.family_counts(tasks) == {"flip": 15, "gravity": 15}
    rows = tasks_to_table(tasks).to_pylist()  # extra as JSON text, the way shards store it
    assert synthetic.family_counts(rows) == {"flip": 15, "gravity": 15}
    assert synthetic.family_counts([{"extra": "{}"}]) == {}


def test_family_stats(tasks_2k):
    stats = synthetic.family_stats(tasks_2k)
    assert set(stats) == set(FAMS)
    for fam, s in stats.items():
        assert s["tasks"] == 84
        assert 3 <= s["train_pairs"] <= 4
        assert 1 <= s["mean_side"] <= s["max_side"] <= 30, fam
    assert stats["scale_up"]["max_side"] > stats["scale_down"]["mean_side"]


def _max_input_side(tasks) -> int:
    return max(max(p.input.shape) for t in tasks for p in t.pairs)


def test_difficulty_knobs_change_grid_sizes():
    easy = list(synthetic.generate(100, seed=4, families=["flip", "gravity", "color_map"], difficulty="easy"))
    hard = list(synthetic.generate(100, seed=4, families=["flip", "gravity", "color_map"], difficulty="hard"))
    assert _max_input_side(easy) <= 5
    assert _max_input_side(hard) > 10
    custom = synthetic.Difficulty("tiny", 3, 3, 1, 2)
    tiny = list(synthetic.generate(20, seed=0, families=["flip", "rotate"], difficulty=custom))
    assert {p.input.shape for t in tiny for p in t.pairs} == {(3, 3)}
    assert all(t.extra["params"]["difficulty"] == "tiny" for t in tiny)
    assert all(len(t.extra["params"]["palette"]) <= 2 for t in tiny)


def test_bad_arguments_raise_build_errors_at_call_time():
    with pytest.raises(BuildError, match="unknown synthetic family: nope"):
        synthetic.generate(5, families=["flip", "nope"])
    with pytest.raises(BuildError, match="difficulty"):
        synthetic.generate(5, difficulty="extreme")
    with pytest.raises(BuildError, match=">= 0"):
        synthetic.generate(-1)
    with pytest.raises(BuildError, match="seed"):
        synthetic.generate(5, seed=-3)
    with pytest.raises(BuildError, match="no synthetic families"):
        synthetic.generate(5, families=[])
    assert list(synthetic.generate(0)) == []


def test_progress_is_reported():
    events = []

    class Recorder:
        def start(self, key, description, total=None, *, unit="items"):
            events.append(("start", total))

        def advance(self, key, amount=1):
            events.append(("advance", amount))

        def update(self, key, *, completed=None, total=None):
            pass

        def finish(self, key):
            events.append(("finish", None))

    list(synthetic.generate(4, progress=Recorder()))
    assert events == [("start", 4), *[("advance", 1)] * 4, ("finish", None)]


def test_a_synthetic_build_carries_the_sources_card_strings(arcforge_home, tmp_path):
    """The source's title, license and citation reach the dataset card, the rows and provenance.json."""
    from arcforge.build.pipeline import build
    from arcforge.build.provenance import read_provenance
    from arcforge.shards import read_table

    out = tmp_path / "ds"
    build(out, sources=[synthetic.SOURCE_NAME], synthetic_tasks=8)
    card = (out / "README.md").read_text()
    assert synthetic.TITLE in card and synthetic.CITATION.strip() in card
    assert f"| `{synthetic.SOURCE_NAME}` | {synthetic.TITLE} | {synthetic.LICENSE} |" in card
    assert set(read_table(out)["license"].to_pylist()) == {synthetic.LICENSE}
    [src] = read_provenance(out).sources
    assert (src.name, src.license) == (synthetic.SOURCE_NAME, synthetic.LICENSE)
