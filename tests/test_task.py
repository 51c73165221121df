import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from arcforge.task import (
    BAD_STRUCTURE,
    BAD_VALUE,
    BOM,
    EMPTY_GRID,
    INVALID_JSON,
    NO_TEST,
    NO_TRAIN,
    NON_RECTANGULAR,
    TASK_SCHEMA,
    Pair,
    Task,
    TaskFormatError,
    loads_json,
    parse_grid,
    parse_task_object,
    tasks_from_batch,
    tasks_to_table,
)


def _task(train, test, **kw):
    return {
        "train": [{"input": i, "output": o} for i, o in train],
        "test": [{"input": i, "output": o} for i, o in test],
        **kw,
    }


@pytest.mark.parametrize(
    "obj,reason",
    [
        ([[1, 2], [3]], NON_RECTANGULAR),
        ([[1, 10]], BAD_VALUE),
        ([[1, -1]], BAD_VALUE),
        ([[1, 2.0]], BAD_VALUE),
        ([[True]], BAD_VALUE),
        ([["1"]], BAD_VALUE),
        ([], EMPTY_GRID),
        ([[]], EMPTY_GRID),
        ("x", BAD_STRUCTURE),
        ([1, 2], BAD_STRUCTURE),
    ],
)
def test_parse_grid_rejects(obj, reason):
    with pytest.raises(TaskFormatError) as e:
        parse_grid(obj, "train[0].input")
    assert e.value.reason == reason
    assert "train[0].input" in e.value.detail


def test_parse_task_variants_and_extra_keys():
    obj = {
        "test": [{"input": [[1]], "output": [[2]], "id": 7}],
        "train": [{"input": [[1, 1]], "output": [[2, 2]], "id": 3}],
        "name": "abc",
        "uuid": "u",
    }
    train, _test, extra = parse_task_object(obj)
    assert train[0].input.shape == (1, 2) and train[0].input.dtype == np.int8
    assert extra["name"] == "abc" and extra["uuid"] == "u"
    assert extra["pair_extra"] == {"train": [{"id": 3}], "test": [{"id": 7}]}


@pytest.mark.parametrize(
    "obj,reason",
    [
        ({"test": []}, NO_TRAIN),
        ({"train": []}, NO_TEST),
        (_task([], [([[1]], [[1]])]), NO_TRAIN),
        (_task([([[1]], [[1]])], []), NO_TEST),
        ([1], BAD_STRUCTURE),
        ({"train": [{"output": [[1]]}], "test": []}, BAD_STRUCTURE),
    ],
)
def test_parse_task_rejects(obj, reason):
    with pytest.raises(TaskFormatError) as e:
        parse_task_object(obj)
    assert e.value.reason == reason


def test_hidden_test_output_is_allowed_but_not_train():
    _train, test, _ = parse_task_object(
        {"train": [{"input": [[1]], "output": [[1]]}], "test": [{"input": [[1]]}]}
    )
    assert test[0].output is None
    with pytest.raises(TaskFormatError):
        parse_task_object({"train": [{"input": [[1]]}], "test": [{"input": [[1]]}]})


def test_loads_json_bom_and_garbage():
    with pytest.raises(TaskFormatError) as e:
        loads_json(b"\xef\xbb\xbf{}", "f.json")
    assert e.value.reason == BOM
    with pytest.raises(TaskFormatError) as e:
        loads_json(b"{not json", "f.json")
    assert e.value.reason == INVALID_JSON
    with pytest.raises(TaskFormatError) as e:
        loads_json(b"\xff\xfe", "f.json")
    assert e.value.reason == INVALID_JSON


def test_fingerprint_ignores_pair_order_and_roles():
    a, b, c = (Pair(np.full((1, 1), v, np.int8), np.full((2, 1), v, np.int8)) for v in (1, 2, 3))
    t1 = Task("s/1", "s", "training", [a, b], [c])
    t2 = Task("s/2", "s", "training", [c, a], [b])
    t3 = Task("s/3", "s", "training", [a, a], [c])
    assert t1.fingerprint == t2.fingerprint
    assert t1.fingerprint != t3.fingerprint


def test_arrow_round_trip_preserves_everything():
    obj = _task([([[1, 2], [3, 4]], [[4]])], [([[0]], None)], name="n")
    train, test, extra = parse_task_object(obj)
    t = Task("src/a", "src", "training", train, test, "o/r", "c" * 40, "a.json", "MIT", extra)
    table = tasks_to_table([t])
    assert table.schema.equals(TASK_SCHEMA)
    (back,) = tasks_from_batch(table)
    assert back.id == t.id and back.extra == {"name": "n"} and back.license == "MIT"
    assert back.train[0].input.tolist() == [[1, 2], [3, 4]] and back.test[0].output is None
    assert back.fingerprint == t.fingerprint


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-3, 12) | st.floats() | st.text(max_size=3),
        lambda c: (
            st.lists(c, max_size=4)
            | st.dictionaries(st.sampled_from(["train", "test", "input", "output", "x"]), c, max_size=4)
        ),
        max_leaves=30,
    )
)
def test_parser_fuzz_never_crashes(obj):
    """Any JSON value either parses into a valid task or raises TaskFormatError: never anything else."""
    try:
        train, test, _ = parse_task_object(obj)
    except TaskFormatError:
        return
    assert train and test
    json.dumps(obj)
