"""The dataset card: YAML front matter that `datasets` and the Hub read, generated from the real schema."""

from __future__ import annotations

import pytest

from arcforge.build import card
from arcforge.task import TASK_SCHEMA


def _front_matter(text: str) -> dict:
    yaml = pytest.importorskip("yaml")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


def test_features_equal_datasets_yaml():
    datasets = pytest.importorskip("datasets")
    assert card.features_yaml(TASK_SCHEMA) == datasets.Features.from_arrow_schema(TASK_SCHEMA)._to_yaml_list()


def test_card_of_the_full_build(full_build, shared_sources, mirrored_names):
    from tests.helpers import tasks_in_mirror

    out, stats = full_build
    text = (out / "README.md").read_text()
    fm = _front_matter(text)
    configs = {c["config_name"]: c for c in fm["configs"]}
    assert configs["default"]["default"] is True
    splits = {split for counts in stats.tasks.values() for split in counts}
    assert {d["split"]: d["path"] for d in configs["default"]["data_files"]} == {
        split: f"*/{split}-*.parquet" for split in splits
    }
    assert {"evaluation", "training"} <= splits
    assert configs["arc_agi_1"]["data_files"] == [
        {"split": "evaluation", "path": "arc_agi_1/evaluation-*.parquet"},
        {"split": "training", "path": "arc_agi_1/training-*.parquet"},
    ]
    assert set(configs) == {"default", *stats.tasks}
    infos = {i["config_name"]: i for i in fm["dataset_info"]}
    assert {s["name"]: s["num_examples"] for s in infos["neoneye_tama"]["splits"]} == {"training": 5000}
    assert fm["license"] == "other"  # Apache-2.0, MIT and unknown are mixed
    assert "| `arc_community` | arc-community levels | unknown |" in text
    assert "@article{chollet2019measure" in text and "@article{xu2023llms" in text
    # Every valid task of the mirrored sources is written, or dropped by within-collection dedup (always on).
    found = sum(sum(c.values()) for c in tasks_in_mirror(shared_sources, mirrored_names).values())
    assert found >= 10385  # the 11 sources the mirror first held
    assert stats.total_tasks + stats.duplicates + stats.excluded == found - stats.total_quarantined
    assert stats.duplicates > 0
    assert card.MARKER in text and f"Total: {stats.total_tasks} tasks." in text


def test_single_license_and_yaml_quoting():
    src = card.SourceInfo("mine", "My: tasks", "MIT", counts={"training": 2}, num_bytes={"training": 10})
    fm = _front_matter(card.render_card(card.CardData([src], quarantined={"bom": 1})))
    assert fm["license"] == "mit" and fm["configs"][1]["config_name"] == "mine"
    assert card.to_yaml({"a": "yes", "b": "1x", "c": "ok"}) == 'a: "yes"\nb: "1x"\nc: ok'
