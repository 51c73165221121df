"""The Hub formats on their own: JSONL read in blocks (lines across block edges, long lines, blank lines),
simon-arc's run-length grids (decoded and checked), Parquet rows."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from upstream_formats import arc_parquet, barc_jsonl, grids, rle, simon_line

from arcforge.formats import Member, RawTask, Rejected, get, jsonl
from arcforge.formats.simon_arc import decode_grid


def _member(data: bytes) -> Member:
    return Member("f.jsonl", lambda: data, open=lambda: io.BytesIO(data))


@pytest.mark.parametrize("block", [1, 7, 64, 1 << 20])
def test_jsonl_records_are_the_lines_whatever_the_block_size(monkeypatch, block):
    monkeypatch.setattr(jsonl, "BLOCK", block)
    data = b'{"a": 1}\n\n{"b": [1, 2]}\r\n  \n{bad\n{"c": "x"}'  # blank lines, CRLF, no final newline
    got = list(jsonl.records(io.BytesIO(data)))
    assert [(r.lineno, r.obj) for r in got] == [(1, {"a": 1}), (3, {"b": [1, 2]}), (5, None), (6, {"c": "x"})]
    assert "not valid JSON" in got[2][2]


def test_a_line_over_the_limit_is_refused_alone(monkeypatch):
    monkeypatch.setattr(jsonl, "BLOCK", 16)
    monkeypatch.setattr(jsonl, "MAX_LINE", 40)
    data = b'{"a": 1}\n' + b'{"x": "' + b"y" * 200 + b'"}\n{"b": 2}\n'
    got = list(jsonl.records(io.BytesIO(data)))
    assert [(r.lineno, r.obj) for r in got] == [(1, {"a": 1}), (2, None), (3, {"b": 2})]
    assert "longer than 40 bytes" in got[1][2]


def test_barc_jsonl_tasks_and_rejects():
    booly = json.dumps({"examples": [[[[True]], [[1]]], [[[1]], [[1]]]]})  # true is not a color, even fast
    data = barc_jsonl(
        3, bad_lines={1: "[1, 2]", 2: json.dumps({"uid": "p00000", "examples": "nope"}), 3: booly}
    )
    items = list(get("barc_jsonl").read(_member(data), {}))
    tasks = [i for i in items if isinstance(i, RawTask)]
    assert [t.key for t in tasks] == ["p00000", "p00001", "p00002"]
    a, b = grids(0)[-1]  # stored columns first ([x][y], as BARC writes them), read as ARC's rows
    assert np.array_equal(tasks[0].test[0].input, a) and np.array_equal(tasks[0].test[0].output, b)
    (kept,) = [i for i in get("barc_jsonl").read(_member(data), {"transpose": False}) if i.key == "p00000"]
    assert np.array_equal(kept.test[0].input, np.array(a).T)
    assert (
        len(tasks[0].train) == 3
        and tasks[0].extra["seeds"] == ["007bbfb7.py"]
        and "source" not in tasks[0].extra
    )
    bad = [i for i in items if isinstance(i, Rejected)]
    assert [(r.key, r.reason) for r in bad] == [
        ("l00000002", "bad_structure"),
        ("p00000_l00000003", "bad_structure"),
        ("l00000004", "bad_value"),
    ]


@pytest.mark.parametrize(
    "text, why",
    [
        ("3 2 a7", "1 rows, but the height is 2"),
        ("3 1 a7-0", "unexpected character '-'"),
        ("3 1 a70x", "ends with a run length and no color"),
        ("3 1 c7", "decodes to 4 cells, not 3"),
        ("3 2 ,7", "the first row is empty"),
        ("0 1 7", "outside 1..255"),
        ("x 1 7", "is not '<width> <height> <rows>'"),
    ],
)
def test_bad_run_length_grids_say_why(text, why):
    with pytest.raises(ValueError, match=why):
        decode_grid(text)


def test_run_length_grids_round_trip():
    for seed in range(20):
        g = np.random.default_rng(seed).integers(0, 3, size=(1 + seed % 5, 1 + seed % 7)).tolist()
        assert decode_grid(rle(g)).tolist() == g
    assert decode_grid("4 3 a7a3,,5").tolist() == [[7, 7, 3, 3], [7, 7, 3, 3], [5, 5, 5, 5]]


def test_simon_arc_lines():
    bad = dict(simon_line(1), input=simon_line(1)["input"].replace("I1\n", "I9T\n", 1))  # two test pairs
    data = b"\n".join(json.dumps(x).encode() for x in (simon_line(0), bad, {"input": 3}))
    items = list(get("simon_arc").read(_member(data), {}))
    task = items[0]
    assert isinstance(task, RawTask) and task.key == "l00000001" and len(task.train) == 2
    _, b = grids(0, n=3)[-1]
    assert task.test[0].output.tolist() == b and task.extra["instruction"].startswith("SimonsSolveColor")
    assert [(r.reason, r.detail.split(":")[0]) for r in items[1:]] == [
        ("bad_structure", "line 2"),
        ("bad_structure", "line 3"),
    ]


def test_arc_parquet_rows_and_a_file_that_is_not_parquet():
    items = list(get("arc_parquet").read(Member("x.parquet", lambda: arc_parquet(3, "a")), {}))
    assert [i.key for i in items] == ["a0000", "a0001", "a0002"] and all(
        isinstance(i, RawTask) for i in items
    )
    assert items[1].extra == {"id": "a0001", "row": 1}
    from arcforge.task import TaskFormatError

    with pytest.raises(TaskFormatError, match="not a readable Parquet file"):
        list(get("arc_parquet").read(Member("x.parquet", lambda: b"PAR1 nope"), {}))
