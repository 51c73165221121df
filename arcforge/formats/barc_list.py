"""BARC's combined file: a JSON list of ``{"name": "<id>.json", "data": <standard task>}``.

Each entry becomes a task whose id ends with the entry name (without ``.json``); a broken entry is
rejected on its own and the other entries still count.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, Rejected, register
from arcforge.task import BAD_STRUCTURE, TaskFormatError, may_have_bools, parse_task_object

_SAFE_KEY = re.compile(r"[^A-Za-z0-9_.-]+")


def _entry_key(entry: Any, index: int) -> str:
    name = entry.get("name") if isinstance(entry, dict) else None
    if not isinstance(name, str) or not name.strip():
        return f"{index:05d}"
    name = name.rsplit("/", 1)[-1]
    if name.endswith(".json"):
        name = name[: -len(".json")]
    return _SAFE_KEY.sub("_", name)


@register("barc_list")
class BarcListFormat:
    name = "barc_list"

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        data, obj = member.load()
        check_bools = may_have_bools(data)
        if not isinstance(obj, list):
            raise TaskFormatError(BAD_STRUCTURE, "expected a JSON list of {name, data} entries")
        seen: set[str] = set()
        for i, entry in enumerate(obj):
            key = _entry_key(entry, i)
            if key in seen:  # keep ids unique even if upstream repeats a name
                key = f"{key}_{i:05d}"
            seen.add(key)
            if not isinstance(entry, dict) or "data" not in entry:
                yield Rejected(key, BAD_STRUCTURE, f"entry {i} has no 'data' object")
                continue
            try:
                train, test, extra = parse_task_object(entry["data"], check_bools=check_bools)
            except TaskFormatError as e:
                yield Rejected(key, e.reason, f"entry {i}: {e.detail}")
                continue
            extra.update({k: v for k, v in entry.items() if k not in ("name", "data")})
            if isinstance(entry.get("name"), str):
                extra["name"] = entry["name"]
            yield RawTask(key, train, test, extra)

    def sniff(self, path: str, obj: Any) -> bool:
        return (
            isinstance(obj, list)
            and len(obj) > 0
            and all(isinstance(e, dict) and "data" in e and "name" in e for e in obj[:5])
        )
