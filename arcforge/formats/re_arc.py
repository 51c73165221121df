"""RE-ARC generated examples: one file per ARC-1 training task, a JSON list of ``{"input", "output"}``.

Grouping (deterministic): examples are taken in file order in consecutive chunks of ``k + 1``; the
first ``k`` of a chunk are train pairs, the last is the test pair. Task keys are the chunk index
(``0000``, ``0001``, ...). A trailing chunk with fewer than ``k + 1`` examples is not a task and is
reported as skipped. Options: ``k`` (default 3), ``max_tasks`` (default: all chunks).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, Rejected, Skipped, register
from arcforge.task import BAD_STRUCTURE, TaskFormatError, may_have_bools, parse_pair

DEFAULT_K = 3


@register("re_arc")
class ReArcFormat:
    name = "re_arc"

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        k = int(options.get("k", DEFAULT_K))
        if k < 1:
            raise TaskFormatError(BAD_STRUCTURE, f"option k={k} must be >= 1")
        max_tasks = options.get("max_tasks")
        data, obj = member.load()
        check_bools = may_have_bools(data)
        if not isinstance(obj, list):
            raise TaskFormatError(BAD_STRUCTURE, "expected a JSON list of {input, output} examples")
        n_chunks = len(obj) // (k + 1)
        if max_tasks is not None:
            n_chunks = min(n_chunks, int(max_tasks))
        for c in range(n_chunks):
            chunk = obj[c * (k + 1) : (c + 1) * (k + 1)]
            key = f"{c:04d}"
            try:
                pairs = [
                    parse_pair(e, f"example[{c * (k + 1) + i}]", check_bools=check_bools)
                    for i, e in enumerate(chunk)
                ]
            except TaskFormatError as e:
                yield Rejected(key, e.reason, e.detail)
                continue
            yield RawTask(key, pairs[:k], pairs[k:], {"k": k, "chunk": c})
        leftover = len(obj) - n_chunks * (k + 1)
        if max_tasks is None and leftover:
            yield Skipped(f"{leftover} trailing example(s) do not fill a task of k+1={k + 1}")

    def sniff(self, path: str, obj: Any) -> bool:
        return (
            isinstance(obj, list)
            and len(obj) > 0
            and all(isinstance(e, dict) and {"input", "output"} <= e.keys() for e in obj[:5])
        )
