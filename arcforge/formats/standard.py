"""The standard ARC task file: ``{"train": [{"input", "output"}...], "test": [...]}``.

Tolerates every variant seen upstream: ``test`` before ``train``, pretty-printing, extra top-level keys
(``name``, ``uuid``, ``metadata``, ``comment``) and per-pair keys (``id``), 1-row grids and grids larger
than 30x30. Unmodelled keys are kept in ``extra``. A test pair may lack its output (hidden answers).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, register
from arcforge.task import may_have_bools, parse_task_object


@register("standard")
class StandardFormat:
    name = "standard"

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        data, obj = member.load()
        train, test, extra = parse_task_object(obj, check_bools=may_have_bools(data))
        yield RawTask("", train, test, extra)

    def sniff(self, path: str, obj: Any) -> bool:
        return isinstance(obj, dict) and ("train" in obj or "test" in obj)
