"""Mini-ARC: standard task files, next to user action traces that are not tasks.

A trace is ``{"id": int, "task_id": str, "user_id": str, "action_sequence": str}``; it is skipped
(reported, not quarantined). Everything else is read as a standard task.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, Skipped, register
from arcforge.task import may_have_bools, parse_task_object

TRACE_KEYS = frozenset({"task_id", "action_sequence"})


def is_trace(obj: Any) -> bool:
    return isinstance(obj, dict) and obj.keys() >= TRACE_KEYS and "train" not in obj


@register("mini_arc")
class MiniArcFormat:
    name = "mini_arc"

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        data, obj = member.load()
        if is_trace(obj):
            yield Skipped("Mini-ARC user action trace (not a task)")
            return
        train, test, extra = parse_task_object(obj, check_bools=may_have_bools(data))
        yield RawTask("", train, test, extra)

    def sniff(self, path: str, obj: Any) -> bool:
        return is_trace(obj)
