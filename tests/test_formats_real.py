"""Every upstream variant in ../shared, read through the format plug-ins; grids must equal the JSON."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from arcforge import formats
from arcforge.formats import Member, RawTask, Skipped
from arcforge.sources.members import ZipCache, glob_members


def _read(fmt: str, path: Path, options=None) -> list:
    return list(formats.get(fmt).read(Member(path.name, path.read_bytes), options or {}))


def _same_grids(raw: RawTask, obj: dict) -> None:
    for role, pairs in (("train", raw.train), ("test", raw.test)):
        assert len(pairs) == len(obj[role])
        for p, o in zip(pairs, obj[role], strict=True):
            assert p.input.dtype == np.int8
            assert np.array_equal(p.input, np.array(o["input"]))
            assert np.array_equal(p.output, np.array(o["output"]))


def _files_where(root: Path, pattern: str, pred) -> list[Path]:
    return [f for f in sorted(root.glob(pattern)) if pred(f.read_bytes())]


def test_test_before_train_and_name_key(shared_sources):
    root = shared_sources / "fchollet/ARC-AGI/data"
    test_first = _files_where(root, "*/*.json", lambda b: b.lstrip().startswith(b'{"test"'))
    named = _files_where(root, "*/*.json", lambda b: b'"name"' in b)
    assert len(test_first) == 81 and len(named) == 11  # as documented in SOURCES.json
    for f in test_first[:5] + named:
        (raw,) = _read("standard", f)
        obj = json.loads(f.read_bytes())
        _same_grids(raw, obj)
        assert raw.extra.get("name") == obj.get("name")


def test_uuid_one_row_and_wide_grids(shared_sources):
    files = _files_where(
        shared_sources / "khalil-research/1D-ARC/dataset", "*/*.json", lambda b: b'"uuid"' in b
    )
    assert len(files) == 450
    for f in files[:20]:
        (raw,) = _read("standard", f)
        obj = json.loads(f.read_bytes())
        _same_grids(raw, obj)
        assert raw.extra == {"uuid": obj["uuid"]}
        assert all(p.input.shape[0] == 1 for p in raw.train)
    widest = max(
        (max(len(p["input"][0]) for p in json.loads(f.read_bytes())["train"]), f)
        for f in sorted((shared_sources / "khalil-research/1D-ARC/dataset").glob("*/*.json"))
    )
    (raw,) = _read("standard", widest[1])
    assert max(p.input.shape[1] for p in raw.train) == widest[0] > 30


def test_metadata_and_grids_over_30(shared_sources):
    f = shared_sources / "neoneye/arc-dataset-tama/dataset/color/color_11.json"
    (raw,) = _read("standard", f)
    obj = json.loads(f.read_bytes())
    _same_grids(raw, obj)
    assert raw.extra == {"metadata": obj["metadata"]}
    assert raw.extra["metadata"]["dataset_id"] == "solve_color"
    assert max(max(p.input.shape) for p in raw.train + raw.test) > 30


def test_comment_key_and_per_pair_id(shared_sources):
    for f in sorted(
        (shared_sources / "neoneye/arc-dataset-collection/dataset/arc-dataset-bad/data").glob("*.json")
    ):
        (raw,) = _read("standard", f)
        assert isinstance(raw.extra["comment"], str) and raw.extra["comment"]
    f = shared_sources / "arc-community/arc/levels/npeter/lgfdp77k6.json"
    (raw,) = _read("standard", f)
    obj = json.loads(f.read_bytes())
    _same_grids(raw, obj)
    assert raw.extra["name"] == "lgfdp77k6"
    assert raw.extra["pair_extra"]["train"] == [{"id": p["id"]} for p in obj["train"]]


def test_pretty_printed(shared_sources):
    pretty = _files_where(
        shared_sources / "arcprize/ARC-AGI-2/data/evaluation", "*.json", lambda b: b.count(b"\n") > 5
    )
    assert len(pretty) == 14
    for f in pretty:
        (raw,) = _read("standard", f)
        _same_grids(raw, json.loads(f.read_bytes()))


def test_zip_members_from_frankaging(shared_sources):
    root = shared_sources / "frankaging/ARC_synthetic_extend"
    with ZipCache() as zips:
        members = list(
            glob_members(root, ("easy_l1.zip!easy_l1/*.json", "easy_l2.zip!easy_l2/*.json"), zips=zips)
        )
        assert len(members) == 196 + 223
        assert members[0].path.startswith("easy_l1.zip!easy_l1/") and members[0].inner_path.startswith(
            "easy_l1/"
        )
        fmt = formats.get("standard")
        for m in members[::40]:
            (raw,) = list(fmt.read(m, {}))
            with zipfile.ZipFile(root / m.path.split("!")[0]) as zf:
                obj = json.loads(zf.read(m.inner_path))
            _same_grids(raw, obj)


def test_iparc_split_and_solutions_skipped(shared_sources):
    root = shared_sources / "ac20/IPARC_ChallengeV2/Dataset"
    f = root / "CatB_Sequence/Task000.json"
    (raw,) = _read("iparc", f)
    obj = json.loads(f.read_bytes())
    assert len(raw.train) == len(obj) - 1 and len(raw.test) == 1  # the last pair is the test pair
    assert np.array_equal(raw.test[0].input, np.array(obj[-1]["input"]))
    assert raw.extra["pair_extra"]["test"] == [{"subtask": obj[-1]["subtask"]}]
    soln = root / "CatA_Hard/Task000_soln.json"
    items = list(formats.get("iparc").read(Member(f"CatA_Hard/{soln.name}", soln.read_bytes), {}))
    assert len(items) == 1 and isinstance(items[0], Skipped)


def test_mini_arc_traces_skipped(shared_sources):
    root = shared_sources / "KSB21ST/MINI-ARC/data"
    traces = sorted((root / "MiniARC_traces").glob("*.json"))
    assert len(traces) == 10
    for f in traces:
        assert [type(i) for i in _read("mini_arc", f)] == [Skipped]
    task = sorted((root / "MiniARC").glob("*.json"))[0]
    (raw,) = _read("mini_arc", task)
    _same_grids(raw, json.loads(task.read_bytes()))


@pytest.mark.parametrize("fmt", ["standard", "mini_arc", "barc_list", "iparc", "re_arc"])
def test_detect_picks_the_right_format(fmt, shared_sources):
    samples = {
        "standard": {"train": [], "test": []},
        "mini_arc": {"id": 1, "task_id": "t", "user_id": "u", "action_sequence": "[]"},
        "barc_list": [{"name": "a.json", "data": {}}],
        "iparc": [{"input": [[1]], "output": [[1]], "subtask": 1}],
        "re_arc": [{"input": [[1]], "output": [[1]]}],
    }
    assert formats.detect("x.json", samples[fmt]).name == fmt
