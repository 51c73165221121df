"""BARC's generated problems on the Hub (barc0/*): JSON Lines, one problem per line.

Each line is an object whose ``examples`` is a list of ``[input grid, output grid]`` pairs; the last pair is
the test, the others are the demonstrations (as BARC's own loaders read it). Other fields are kept as
columns where they are small: ``seeds`` (the seed programs the problem came from) and ``uid``. The key of
line N is ``<uid>`` when the line has one, else ``l<N>`` (8 digits). A line that is not JSON, has no
``examples`` or a bad grid is quarantined on its own; the file goes on.

Orientation: BARC's pipeline writes these lines with ``generate_problems.py``'s ``Problem.to_dict``, which
stores ``grid.tolist()`` of the numpy grids its programs make, indexed ``grid[x][y]`` (the column first),
the transpose of ARC's lists of rows; BARC's own fine-tuning data (``gen_dataset.py``) transposes ARC's
tasks (``pair.x.T``) to match them. So both grids of every pair are transposed into ARC's rows, as for
``barc_problem`` and the generated seed tasks. Option ``transpose`` (default true): false keeps the lines'
own layout.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, Rejected, register
from arcforge.formats.jsonl import member_records
from arcforge.task import BAD_STRUCTURE, INVALID_JSON, TaskFormatError, parse_task_object

KEPT_FIELDS = ("seeds", "uid")
_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


def examples_to_task(examples: Any) -> dict[str, Any]:
    """``[[in, out], ...]`` -> a standard ``{"train": [...], "test": [last]}`` object (or structure error)."""
    if not isinstance(examples, list) or len(examples) < 2:
        raise TaskFormatError(BAD_STRUCTURE, "'examples' must list at least 2 [input, output] pairs")
    pairs = []
    for i, ex in enumerate(examples):
        if not isinstance(ex, list | tuple) or len(ex) != 2:
            raise TaskFormatError(BAD_STRUCTURE, f"examples[{i}] is not an [input, output] pair")
        pairs.append({"input": ex[0], "output": ex[1]})
    return {"train": pairs[:-1], "test": pairs[-1:]}


def _key(obj: Any, lineno: int) -> str:
    uid = obj.get("uid") if isinstance(obj, dict) else None
    if isinstance(uid, str) and uid.strip():
        return _SAFE_KEY.sub("_", uid.strip())[:120]
    return f"l{lineno:08d}"


@register("barc_jsonl")
class BarcJsonlFormat:
    name = "barc_jsonl"
    streaming = True
    splittable = True  # JSON Lines: the build may read a big file as several parts (jsonl.Part), in parallel

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        seen: set[str] = set()
        for lineno, obj, error, bools in member_records(member, options):
            key = _key(obj, lineno)
            if key in seen:
                key = f"{key}_l{lineno:08d}"
            seen.add(key)
            if obj is None:
                yield Rejected(key, INVALID_JSON, f"line {lineno}: {error}")
                continue
            try:
                if not isinstance(obj, dict) or "examples" not in obj:
                    raise TaskFormatError(BAD_STRUCTURE, "no 'examples' list")
                train, test, _ = parse_task_object(examples_to_task(obj["examples"]), check_bools=bools)
            except TaskFormatError as e:
                yield Rejected(key, e.reason, f"line {lineno}: {e.detail}")
                continue
            if options.get("transpose", True):
                train, test = [p.transposed() for p in train], [p.transposed() for p in test]
            extra = {k: obj[k] for k in KEPT_FIELDS if k in obj}
            extra["line"] = lineno
            yield RawTask(key, train, test, extra)

    def sniff(self, path: str, obj: Any) -> bool:
        return False  # a JSONL file is never one JSON document: it is never detected in --local folders
