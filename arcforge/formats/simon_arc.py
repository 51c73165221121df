"""neoneye's simon-arc-* datasets on the Hub: JSON Lines of ``{"instruction", "input", "output", ...}``,
the puzzle's grids run-length encoded (RLE), as simon-arc-lab writes them.

``input`` holds the puzzle, a line naming each grid and a line with its RLE::

    I0            <- input of pair 0       (a trailing ``T`` marks the test pair: I3T, O3T)
    3 2 a70,      <- RLE: "<width> <height> <rows>"
    O0
    ...
    I3T
    3 1 4a7

and ``output`` is the RLE of the test output (the text's own ``O<n>T`` line, a placeholder, is then
ignored). A row is a run of ``[letter]digit`` items: a letter a-z
repeats the next color 2-27 times; a single digit fills the whole row; an empty row repeats the row
above. Every grid is decoded and checked against its stated width and height: one that does not decode
is quarantined with reason ``bad_rle``; a line that is not a puzzle (simon-arc also has histogram and
other non-grid tasks) with ``bad_structure``. The key of line N is ``l<N>`` (8 digits).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from arcforge.formats import Item, Member, RawTask, Rejected, register
from arcforge.formats.jsonl import member_records
from arcforge.task import BAD_RLE, BAD_STRUCTURE, INVALID_JSON, Pair, TaskFormatError

MAX_SIDE = 255  # a stated size beyond this is refused before any decoding (memory bound)
_MARKER = re.compile(r"^([IO])(\d+)(T?)$")


def decode_row(row: str, width: int) -> list[int]:
    """One RLE row -> its colors (``ValueError`` when it does not decode to ``width`` cells)."""
    if len(row) == 1:
        if not row.isdigit():
            raise ValueError(f"row {row!r} is not a color")
        return [int(row)] * width
    out: list[int] = []
    count = 1
    for ch in row:
        if "0" <= ch <= "9":
            out.extend([ord(ch) - 48] * count)
            count = 1
        elif "a" <= ch <= "z":
            count = ord(ch) - ord("a") + 2
        else:
            raise ValueError(f"unexpected character {ch!r}")
        if len(out) > width:
            break
    if count != 1:
        raise ValueError(f"row {row!r} ends with a run length and no color")
    if len(out) != width:
        raise ValueError(f"row {row!r} decodes to {len(out)} cells, not {width}")
    return out


def decode_grid(text: str) -> np.ndarray:
    """``"<width> <height> <row>,<row>,..."`` -> an int8 grid (``ValueError`` naming what is wrong)."""
    parts = text.strip().split(" ")
    if len(parts) != 3 or not parts[0].isdigit() or not parts[1].isdigit():
        raise ValueError(f"{text[:40]!r} is not '<width> <height> <rows>'")
    width, height = int(parts[0]), int(parts[1])
    if not (1 <= width <= MAX_SIDE and 1 <= height <= MAX_SIDE):
        raise ValueError(f"size {width}x{height} is outside 1..{MAX_SIDE}")
    rows = parts[2].split(",")
    if len(rows) != height:
        raise ValueError(f"{len(rows)} rows, but the height is {height}")
    grid: list[list[int]] = []
    for y, row in enumerate(rows):
        if not row:
            if y == 0:
                raise ValueError("the first row is empty (nothing to repeat)")
            grid.append(grid[-1])
        else:
            grid.append(decode_row(row, width))
    return np.asarray(grid, dtype=np.int8)


def parse_puzzle(text: str, answer: str | None) -> tuple[list[Pair], list[Pair]]:
    """The ``input`` text (+ the ``output`` answer) -> (train, test) pairs."""
    grids = _named_grids(text, answer)
    test_key = _test_key(grids)
    if answer is not None and "O" not in grids[test_key]:
        grids[test_key]["O"] = _decode(answer, "output")
    return _pairs(grids)


_Grids = dict[tuple[int, bool], dict[str, np.ndarray]]  # (pair number, is test) -> {"I"/"O": grid}


def _named_grids(text: str, answer: str | None) -> _Grids:
    """Each (name, RLE) line pair of the text decoded; the test output from ``answer`` when there is one."""
    lines = text.strip().split("\n")
    if len(lines) % 2:
        raise TaskFormatError(BAD_STRUCTURE, "the puzzle text does not alternate grid names and grids")
    grids: _Grids = {}
    for name, body in zip(lines[::2], lines[1::2], strict=True):
        m = _MARKER.match(name.strip())
        if m is None:
            raise TaskFormatError(BAD_STRUCTURE, f"{name[:30]!r} is not a grid name like I0, O0 or I3T")
        if m[1] == "O" and m[3] and answer is not None:
            body, name = (
                answer,
                "output",
            )  # the test answer is the row's 'output' (the text holds a placeholder)
        grids.setdefault((int(m[2]), bool(m[3])), {})[m[1]] = _decode(body, name.strip())
    return grids


def _decode(body: str, name: str) -> np.ndarray:
    """One grid's RLE; a ``bad_rle`` error naming the grid when it does not decode."""
    try:
        return decode_grid(body)
    except ValueError as e:
        raise TaskFormatError(BAD_RLE, f"{name}: {e}") from None


def _test_key(grids: _Grids) -> tuple[int, bool]:
    """The one test pair's key; refuses a puzzle without demonstration pairs or with not one test pair."""
    tests = [k for k in grids if k[1]]
    if len(tests) != 1 or not any(not k[1] for k in grids):
        raise TaskFormatError(BAD_STRUCTURE, "expected demonstration pairs and exactly one test pair (I<n>T)")
    return tests[0]


def _pairs(grids: _Grids) -> tuple[list[Pair], list[Pair]]:
    """(train, test) pairs in pair order; refuses a pair without its input or output."""
    train, test = [], []
    for key in sorted(grids):
        g = grids[key]
        if "I" not in g or "O" not in g:
            raise TaskFormatError(
                BAD_STRUCTURE, f"pair {key[0]} lacks its {'input' if 'I' not in g else 'output'}"
            )
        (test if key[1] else train).append(Pair(g["I"], g["O"]))
    return train, test


@register("simon_arc")
class SimonArcFormat:
    name = "simon_arc"
    streaming = True
    splittable = True  # JSON Lines: the build may read a big file as several parts (jsonl.Part), in parallel

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        for lineno, obj, error, _ in member_records(member, options):
            key = f"l{lineno:08d}"
            if obj is None:
                yield Rejected(key, INVALID_JSON, f"line {lineno}: {error}")
                continue
            try:
                if not isinstance(obj, dict) or not isinstance(obj.get("input"), str):
                    raise TaskFormatError(BAD_STRUCTURE, "no 'input' text")
                answer = obj.get("output") if isinstance(obj.get("output"), str) else None
                train, test = parse_puzzle(obj["input"], answer)
            except TaskFormatError as e:
                yield Rejected(key, e.reason, f"line {lineno}: {e.detail}")
                continue
            extra = {k: obj[k] for k in ("instruction", "benchmark") if isinstance(obj.get(k), str)}
            extra["line"] = lineno
            yield RawTask(key, train, test, extra)

    def sniff(self, path: str, obj: Any) -> bool:
        return False  # JSONL: never detected in --local folders
