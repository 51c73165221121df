"""The one record type: ``Task`` made of ``Pair``s, its Arrow schema, and validation of upstream JSON.

Every step of the pipeline takes and yields ``Task`` records (or Arrow batches of ``TASK_SCHEMA``).
Parsing is strict: anything that is not a rectangular, non-empty grid of integers 0-9 raises
``TaskFormatError`` with a short machine-readable ``reason`` (one of ``QUARANTINE_REASONS``) and a human
``detail`` naming where in the task the problem is. The build turns those into quarantine rows.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from arcforge.difficulty import estimate
from arcforge.errors import FormatError
from arcforge.grids import Grid, multiset_key, pair_key

# --- quarantine reasons -------------------------------------------------------------------------------
INVALID_JSON = "invalid_json"
BOM = "bom"
BAD_STRUCTURE = "bad_structure"  # not an object with train/test lists of {input, output}
NON_RECTANGULAR = "non_rectangular"
BAD_VALUE = "bad_value"  # a cell outside 0-9 or not an integer
EMPTY_GRID = "empty_grid"
NO_TRAIN = "no_train"
NO_TEST = "no_test"
OVERSIZE = "oversize"  # larger than --max-grid (dropped and reported, not an error in the data)
DUPLICATE_ID = "duplicate_id"  # two files of one source map to the same task id (the first one is kept)
BAD_ARCHIVE = "bad_archive"  # a zip (or one of its members) that is corrupt, unsafe, encrypted or unsupported
BAD_NAME = "bad_name"  # a file name that is not valid UTF-8 (it cannot be an id)
TOO_LARGE = "too_large"  # a file larger than the per-file limit (or inflating far beyond its compressed size)
BAD_RLE = "bad_rle"  # a run-length-encoded grid (simon-arc) that does not decode to its stated size
UNREADABLE = "unreadable"  # the file system refused to read the file (permissions, an I/O error)
DUPLICATE_KEY = "duplicate_key"  # a JSON object names a key twice ("test", "input"...): which one is meant?

QUARANTINE_REASONS: tuple[str, ...] = (
    INVALID_JSON,
    BOM,
    BAD_STRUCTURE,
    NON_RECTANGULAR,
    BAD_VALUE,
    EMPTY_GRID,
    NO_TRAIN,
    NO_TEST,
    DUPLICATE_ID,
    BAD_ARCHIVE,
    BAD_NAME,
    TOO_LARGE,
    BAD_RLE,
    UNREADABLE,
    DUPLICATE_KEY,
)

MAX_GRID_SIDE = 30  # the official ARC limit; larger grids are kept unless --max-grid is given


class TaskFormatError(FormatError):
    """A task failed validation. ``reason`` is a code from ``QUARANTINE_REASONS``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# --- records ------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pair:
    """One input->output example. ``output`` may be None only for a test pair whose answer is hidden."""

    input: Grid  # (rows, cols) int8
    output: Grid | None  # (rows, cols) int8

    @property
    def key(self) -> bytes:
        return pair_key(self.input, self.output)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Pair):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)

    def transposed(self) -> Pair:
        """The pair with both grids transposed: a ``grid[x][y]`` layout (BARC's programs index numpy grids
        by column first) becomes ARC's lists of rows, and back."""
        out = None if self.output is None else np.ascontiguousarray(self.output.T)
        return Pair(np.ascontiguousarray(self.input.T), out)


@dataclass(slots=True)
class Task:
    """One ARC task with its provenance.

    ``id`` is stable and readable: ``<source>/<path inside the repo without extension>``.
    ``extra`` holds upstream keys that the schema does not model (stored as JSON text).
    """

    id: str
    source: str
    split: str
    train: list[Pair]
    test: list[Pair]
    repo: str = ""
    commit: str = ""
    path: str = ""
    license: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    derived_from: tuple[
        str, ...
    ] = ()  # ids of the tasks this one was made from (lineage), e.g. a generator's
    quality: str = ""  # upstream's word on it: "verified" (RE-ARC), BARC's annotation, ...; "" = none
    upstream_difficulty: float | None = None  # upstream's own difficulty measure, where it has one

    @property
    def difficulty(self) -> float:
        """arcforge's difficulty estimate (``arcforge.difficulty``), the same formula for every source."""
        return estimate([(p.input, p.output) for p in self.pairs])

    @property
    def pairs(self) -> list[Pair]:
        return [*self.train, *self.test]

    @property
    def fingerprint(self) -> str:
        """Order-invariant key of all pairs (train and test together, roles ignored), 32 hex chars."""
        return multiset_key(p.key for p in self.pairs).hex()

    def grids(self) -> Iterable[Grid]:
        for p in self.pairs:
            yield p.input
            if p.output is not None:
                yield p.output

    def max_side(self) -> int:
        return max(max(g.shape) for g in self.grids())


# --- validation of upstream JSON ------------------------------------------------------------------------
_CHAIN = itertools.chain.from_iterable
_COLORS = bytes(range(10))
_LIST_TYPE = {list}


def may_have_bools(data: bytes) -> bool:
    """False when JSON ``data`` cannot contain a ``true``/``false`` literal (lets parsing skip a check)."""
    return b"true" in data or b"false" in data


def parse_grid(obj: Any, where: str, *, check_bools: bool = True) -> Grid:
    """Validate one JSON grid (list of equal-length lists of ints 0-9) and return it as int8.

    The common case runs at C speed (``fast_grid``); any failure re-checks slowly for a precise detail.
    """
    g = fast_grid(obj, check_bools)
    return g if g is not None else _parse_grid_strict(obj, where)


def fast_grid(obj: Any, check_bools: bool = True) -> Grid | None:
    """The grid as int8 when ``obj`` is a valid grid, else None (``parse_grid`` then says why).

    Only C-level loops: the rows' lengths must be one positive width; ``bytearray`` of the flattened rows
    rejects non-integers and values outside 0-255, and ``translate`` finds values above 9. JSON
    ``true``/``false`` would pass as 1/0, so a type scan runs unless the caller knows the document has no
    boolean literal (``check_bools=False``, see ``may_have_bools``)."""
    if type(obj) is not list or not obj:
        return None
    if set(map(type, obj)) != _LIST_TYPE:
        return None
    try:
        widths = set(map(len, obj))
        cells = bytearray(_CHAIN(obj))
    except (TypeError, ValueError):
        return None
    if len(widths) != 1 or 0 in widths or cells.translate(None, _COLORS):
        return None
    if check_bools and bool in set(map(type, _CHAIN(obj))):
        return None
    return np.frombuffer(cells, dtype=np.int8).reshape(len(obj), len(obj[0]))


def _parse_grid_strict(obj: Any, where: str) -> Grid:
    """Cell-by-cell validation with a precise error (the slow path of ``parse_grid``)."""
    if not isinstance(obj, list) or not all(isinstance(r, list) for r in obj):
        raise TaskFormatError(BAD_STRUCTURE, f"{where} is not a list of rows")
    if len(obj) == 0 or any(len(r) == 0 for r in obj):
        raise TaskFormatError(EMPTY_GRID, f"{where} is empty")
    width = len(obj[0])
    for i, row in enumerate(obj):
        if len(row) != width:
            raise TaskFormatError(NON_RECTANGULAR, f"{where} row {i} has {len(row)} cells, row 0 has {width}")
    for i, row in enumerate(obj):
        for j, v in enumerate(row):
            # bool is an int subclass; JSON true/false is not a color.
            if type(v) is not int or not 0 <= v <= 9:
                raise TaskFormatError(BAD_VALUE, f"{where}[{i}][{j}] = {v!r} is not an integer 0-9")
    return np.asarray(obj, dtype=np.int8)


def parse_pair(obj: Any, where: str, *, output_required: bool = True, check_bools: bool = True) -> Pair:
    if not isinstance(obj, Mapping) or "input" not in obj:
        raise TaskFormatError(BAD_STRUCTURE, f"{where} is not an object with 'input' and 'output'")
    # fast_grid first: the ``where`` of a grid is only formatted when it is needed for an error
    inp = fast_grid(obj["input"], check_bools)
    if inp is None:
        inp = _parse_grid_strict(obj["input"], f"{where}.input")
    out_obj = obj.get("output")
    if out_obj is None:
        if output_required:
            raise TaskFormatError(BAD_STRUCTURE, f"{where} has no 'output'")
        return Pair(inp, None)
    out = fast_grid(out_obj, check_bools)
    if out is None:
        out = _parse_grid_strict(out_obj, f"{where}.output")
    return Pair(inp, out)


def parse_pairs(
    obj: Any, where: str, *, output_required: bool = True, check_bools: bool = True
) -> list[Pair]:
    if not isinstance(obj, list):
        raise TaskFormatError(BAD_STRUCTURE, f"'{where}' is not a list of pairs")
    fast = _fast_pairs(obj, check_bools)
    if fast is not None:
        return fast
    return [
        parse_pair(p, f"{where}[{i}]", output_required=output_required, check_bools=check_bools)
        for i, p in enumerate(obj)
    ]


def _fast_pairs(obj: list, check_bools: bool) -> list[Pair] | None:
    """Every pair of ``obj`` when each is an object with a valid input and output grid, else None (then
    ``parse_pair`` checks them one by one and says what is wrong).

    ``fast_grid``'s C-level checks, run once over all the grids' rows instead of once per grid: one
    ``bytearray`` of every cell, one ``translate``, one ``numpy`` buffer that each grid is a view of."""
    grids = _pair_grids(obj)
    if grids is None or set(map(type, grids)) != _LIST_TYPE:
        return None
    heights = list(map(len, grids))
    rows = list(_CHAIN(grids))
    if set(map(type, rows)) != _LIST_TYPE:
        return None
    cells = _color_cells(rows, check_bools)
    if cells is None:
        return None
    out_grids = _cut_grids(np.frombuffer(cells, dtype=np.int8), heights, list(map(len, rows)))
    if out_grids is None:
        return None
    return [Pair(out_grids[i], out_grids[i + 1]) for i in range(0, len(out_grids), 2)]


def _pair_grids(obj: list) -> list | None:
    """input, output, input, ... of the pairs, or None when one is not an object with both."""
    grids = []
    for p in obj:
        if type(p) is not dict:
            return None
        inp, out = p.get("input"), p.get("output")
        if inp is None or out is None:  # a hidden test output, or a broken pair: the per-pair path
            return None
        grids += (inp, out)
    return grids


def _color_cells(rows: list[list], check_bools: bool) -> bytearray | None:
    """Every cell of ``rows`` as one byte each, or None when one is not a color 0-9 (or is a bool)."""
    try:
        cells = bytearray(_CHAIN(rows))
    except (TypeError, ValueError):
        return None
    if cells.translate(None, _COLORS) or (check_bools and bool in set(map(type, _CHAIN(rows)))):
        return None
    return cells


def _cut_grids(flat: np.ndarray, heights: list[int], widths: list[int]) -> list[np.ndarray] | None:
    """The grids as views of ``flat``, or None when one is empty or not rectangular."""
    out_grids = []
    r = c = 0
    for h in heights:
        if not h:
            return None
        w = widths[r]
        if not w or widths[r : r + h].count(w) != h:
            return None
        out_grids.append(flat[c : c + h * w].reshape(h, w))
        r += h
        c += h * w
    return out_grids


def parse_task_object(obj: Any, *, check_bools: bool = True) -> tuple[list[Pair], list[Pair], dict[str, Any]]:
    """Validate a standard ``{"train": [...], "test": [...], ...}`` object.

    Returns (train, test, extra) where ``extra`` holds every other top-level key and any extra per-pair
    keys (as ``pair_extra``), so nothing upstream is silently lost.
    """
    if not isinstance(obj, Mapping):
        raise TaskFormatError(BAD_STRUCTURE, f"top level is {type(obj).__name__}, expected an object")
    if "train" not in obj:
        raise TaskFormatError(NO_TRAIN, "no 'train' key")
    if "test" not in obj:
        raise TaskFormatError(NO_TEST, "no 'test' key")
    train = parse_pairs(obj["train"], "train", check_bools=check_bools)
    test = parse_pairs(obj["test"], "test", output_required=False, check_bools=check_bools)
    if not train:
        raise TaskFormatError(NO_TRAIN, "'train' is empty")
    if not test:
        raise TaskFormatError(NO_TEST, "'test' is empty")
    extra = {k: v for k, v in obj.items() if k not in ("train", "test")}
    pair_extra = {
        role: [{k: v for k, v in p.items() if k not in ("input", "output")} for p in obj[role]]
        for role in ("train", "test")
    }
    if any(any(d) for d in pair_extra.values()):
        extra["pair_extra"] = pair_extra
    return train, test, extra


_DECODER = msgspec.json.Decoder()


def loads_json(data: bytes, where: str = "file") -> Any:
    """Parse JSON bytes; a UTF-8 BOM or invalid JSON raises ``TaskFormatError``.

    msgspec parses (3-4x faster than ``json``; chosen over orjson, which is as fast but turns integers
    beyond 64 bits into floats: ``benchmarks/bench_scale.py``). What msgspec refuses goes through ``json``
    again, so the accepted documents and the error messages are exactly the standard library's: msgspec
    is stricter (NaN, 1e400, lone surrogates, UTF-16 input) but never looser.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        raise TaskFormatError(BOM, f"{where} starts with a UTF-8 byte-order mark")
    try:
        obj = _DECODER.decode(data)
    except (msgspec.DecodeError, RecursionError):
        pass
    else:
        _check_duplicate_keys(data, obj, where)
        return obj
    try:
        obj = json.loads(data)
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError, an int of more than 4300 digits
        raise TaskFormatError(INVALID_JSON, f"{where}: {e}") from None
    except RecursionError:
        raise TaskFormatError(INVALID_JSON, f"{where}: nested too deeply") from None
    _check_duplicate_keys(data, obj, where)
    return obj


_TASK_KEYS = ("train", "test", "input", "output")
_QUOTED_KEYS = re.compile(rb'"(train|test|input|output)"')  # one pass (4x faster than 4 bytes.count)


def _key_counts(obj: Any, counts: dict[str, int]) -> None:
    """How often each of ``_TASK_KEYS`` is a key of an object in ``obj``. Only objects and lists of objects
    are entered: a grid (a list of lists of numbers) holds no key."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in counts:
                counts[k] += 1
            if isinstance(v, dict) or (isinstance(v, list) and v and isinstance(v[0], dict)):
                _key_counts(v, counts)
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict):
                _key_counts(v, counts)


def _check_duplicate_keys(data: bytes, obj: Any, where: str) -> None:
    """Refuse an object that names a task key twice (a parser keeps the last and drops the first silently).

    Cheap first: each key's quoted name is counted in the bytes and compared with the keys parsed; only
    when the bytes hold more (a duplicate, or the name inside a string) is the text parsed again, keeping
    every pair, to tell which."""
    found = _QUOTED_KEYS.findall(data)
    if not found:
        return
    counts = dict.fromkeys(_TASK_KEYS, 0)
    _key_counts(obj, counts)
    if all(n <= counts[k.decode()] for k, n in Counter(found).items()):
        return

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: set[str] = set()
        for k, _ in items:
            if k in seen:
                raise TaskFormatError(
                    DUPLICATE_KEY,
                    f"{where}: the key {k!r} appears twice in one object (only one of them could be kept)",
                )
            seen.add(k)
        return dict(items)

    with contextlib.suppress(ValueError, RecursionError):  # a TaskFormatError from pairs() goes through
        json.loads(data, object_pairs_hook=pairs)


# --- Arrow -------------------------------------------------------------------------------------------------
GRID_TYPE = pa.list_(pa.list_(pa.int8()))
PAIR_TYPE = pa.struct([pa.field("input", GRID_TYPE), pa.field("output", GRID_TYPE)])
PAIRS_TYPE = pa.list_(PAIR_TYPE)

TASK_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("split", pa.string(), nullable=False),
        pa.field("train", PAIRS_TYPE),
        pa.field("test", PAIRS_TYPE),
        pa.field("repo", pa.string()),
        pa.field("commit", pa.string()),
        pa.field("path", pa.string()),
        pa.field("license", pa.string()),
        pa.field("fingerprint", pa.string()),
        pa.field("extra", pa.string()),
        pa.field("derived_from", pa.list_(pa.string())),
        pa.field("difficulty", pa.float32()),
        pa.field("quality", pa.string()),
        pa.field("upstream_difficulty", pa.float32()),
    ]
)
# Columns that older datasets do not have: a reader fills them with these values.
OPTIONAL_COLUMNS: dict[str, Any] = {
    "derived_from": [],
    "difficulty": None,
    "quality": "",
    "upstream_difficulty": None,
}

QUARANTINE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("path", pa.string()),
        pa.field("reason", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("split", pa.string()),  # the split the file would have gone to
    ]
)


def _pairs_to_py(pairs: Sequence[Pair]) -> list[dict[str, Any]]:
    return [
        {"input": p.input.tolist(), "output": None if p.output is None else p.output.tolist()} for p in pairs
    ]


def task_to_row(task: Task) -> dict[str, Any]:
    return {
        "id": task.id,
        "source": task.source,
        "split": task.split,
        "train": _pairs_to_py(task.train),
        "test": _pairs_to_py(task.test),
        "repo": task.repo,
        "commit": task.commit,
        "path": task.path,
        "license": task.license,
        "fingerprint": task.fingerprint,
        "extra": json.dumps(task.extra, sort_keys=True, separators=(",", ":")) if task.extra else "{}",
        "derived_from": list(task.derived_from),
        "difficulty": task.difficulty,
        "quality": task.quality,
        "upstream_difficulty": task.upstream_difficulty,
    }


def tasks_to_table(
    tasks: Iterable[Task],
    *,
    fingerprints: Sequence[str] | None = None,
    difficulties: Sequence[float] | None = None,
) -> pa.Table:
    """Tasks as a ``TASK_SCHEMA`` table, built column-wise from the grids' bytes (no per-cell Python).

    ``fingerprints`` / ``difficulties``: the tasks' ``fingerprint`` and ``difficulty`` when the caller has
    them already (tasks made of pairs it has seen before); computed here otherwise."""
    tasks = list(tasks)
    cols: dict[str, list[Any]] = {
        n: [] for n in ("id", "source", "split", "repo", "commit", "path", "license", "fingerprint", "extra")
    }
    for t in tasks:
        cols["id"].append(t.id)
        cols["source"].append(t.source)
        cols["split"].append(t.split)
        cols["repo"].append(t.repo)
        cols["commit"].append(t.commit)
        cols["path"].append(t.path)
        cols["license"].append(t.license)
        if fingerprints is None:
            cols["fingerprint"].append(t.fingerprint)
        cols["extra"].append(json.dumps(t.extra, sort_keys=True, separators=(",", ":")) if t.extra else "{}")
    if fingerprints is not None:
        cols["fingerprint"] = list(fingerprints)
    arrays = {n: pa.array(v, pa.string()) for n, v in cols.items()}
    arrays["derived_from"] = pa.array([list(t.derived_from) for t in tasks], pa.list_(pa.string()))
    arrays["difficulty"] = pa.array(
        [t.difficulty for t in tasks] if difficulties is None else difficulties, pa.float32()
    )
    arrays["quality"] = pa.array([t.quality for t in tasks], pa.string())
    arrays["upstream_difficulty"] = pa.array([t.upstream_difficulty for t in tasks], pa.float32())
    arrays["train"] = _pairs_array([t.train for t in tasks])
    arrays["test"] = _pairs_array([t.test for t in tasks])
    return pa.Table.from_arrays([arrays[f.name] for f in TASK_SCHEMA], schema=TASK_SCHEMA)


def _grids_array(grids: list[Grid | None]) -> pa.Array:
    """``list<list<int8>>`` from grids (None -> null) via offsets: rows of width w repeated h times."""
    n = len(grids)
    present = [g for g in grids if g is not None]
    shapes = np.array([g.shape for g in present], dtype=np.int32).reshape(-1, 2)
    heights = np.zeros(n, dtype=np.int32)
    widths = np.zeros(n, dtype=np.int32)
    valid = np.fromiter((g is not None for g in grids), dtype=bool, count=n)
    heights[valid], widths[valid] = shapes[:, 0], shapes[:, 1]
    # axis=None: every grid flattened in C order, cast to int8 as np.ascontiguousarray(g, np.int8) would
    values = (
        np.concatenate(present, axis=None, dtype=np.int8, casting="unsafe")
        if present
        else np.zeros(0, np.int8)
    )
    row_offsets = np.zeros(int(heights.sum()) + 1, dtype=np.int32)
    np.cumsum(np.repeat(widths, heights), out=row_offsets[1:])
    grid_offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(heights, out=grid_offsets[1:])
    rows = pa.ListArray.from_arrays(pa.array(row_offsets), pa.array(values, pa.int8()))
    mask = None if valid.all() else pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(grid_offsets), rows, type=GRID_TYPE, mask=mask)


def _pairs_array(per_task: list[list[Pair]]) -> pa.Array:
    """``list<struct<input, output>>`` for one column (train or test) of many tasks."""
    flat = [p for pairs in per_task for p in pairs]
    struct = pa.StructArray.from_arrays(
        [_grids_array([p.input for p in flat]), _grids_array([p.output for p in flat])],
        fields=list(PAIR_TYPE),
    )
    offsets = np.zeros(len(per_task) + 1, dtype=np.int32)
    np.cumsum([len(pairs) for pairs in per_task], out=offsets[1:])
    return pa.ListArray.from_arrays(pa.array(offsets), struct, type=PAIRS_TYPE)


def _pairs_from_py(pairs: list[dict[str, Any]] | None) -> list[Pair]:
    return [
        Pair(
            np.asarray(p["input"], dtype=np.int8),
            None if p["output"] is None else np.asarray(p["output"], dtype=np.int8),
        )
        for p in pairs or []
    ]


def task_from_row(row: Mapping[str, Any]) -> Task:
    extra = row.get("extra") or "{}"
    return Task(
        id=row["id"],
        source=row["source"],
        split=row["split"],
        train=_pairs_from_py(row["train"]),
        test=_pairs_from_py(row["test"]),
        repo=row.get("repo") or "",
        commit=row.get("commit") or "",
        path=row.get("path") or "",
        license=row.get("license") or "",
        extra=json.loads(extra),
        derived_from=tuple(row.get("derived_from") or ()),
        quality=row.get("quality") or "",
        upstream_difficulty=row.get("upstream_difficulty"),
    )


def tasks_from_batch(batch: pa.RecordBatch | pa.Table) -> list[Task]:
    return [task_from_row(r) for r in batch.to_pylist()]
