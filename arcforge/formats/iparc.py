"""IPARC: each ``Task###.json`` is a JSON list of pairs with no train/test split.

Split rule (deterministic, documented in the README): pairs keep their file order; the LAST pair is the
test pair and all earlier pairs are train pairs. A per-pair ``subtask`` (CatB_Iteration, CatB_Sequence)
is kept in ``extra.pair_extra``. ``Task###_soln.json`` files hold the target program (a list of
``[band, operator, structuring_element]`` triples), not a task: they are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, Skipped, register
from arcforge.task import BAD_STRUCTURE, NO_TRAIN, TaskFormatError, may_have_bools, parse_pairs

_TASK_FILE = re.compile(r"(^|/)Task\d+(_soln)?\.json$")


def _is_solution(obj: Any) -> bool:
    return isinstance(obj, list) and len(obj) > 0 and all(isinstance(e, list) for e in obj)


@register("iparc")
class IparcFormat:
    name = "iparc"

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        data, obj = member.load()
        if member.path.endswith("_soln.json") or _is_solution(obj):
            yield Skipped("IPARC solution program (not a task)")
            return
        if not isinstance(obj, list):
            raise TaskFormatError(BAD_STRUCTURE, "expected a JSON list of {input, output} pairs")
        pairs = parse_pairs(obj, "pairs", check_bools=may_have_bools(data))
        if len(pairs) < 2:
            raise TaskFormatError(NO_TRAIN, f"{len(pairs)} pair(s): need at least 2 (train + test)")
        extra: dict[str, Any] = {"split_rule": "last pair is test"}
        pair_extra = [{k: v for k, v in p.items() if k not in ("input", "output")} for p in obj]
        if any(pair_extra):
            extra["pair_extra"] = {"train": pair_extra[:-1], "test": pair_extra[-1:]}
        yield RawTask("", pairs[:-1], pairs[-1:], extra)

    def sniff(self, path: str, obj: Any) -> bool:
        if not isinstance(obj, list) or not obj:
            return False
        if _TASK_FILE.search(path):
            return True
        return any(isinstance(e, dict) and "subtask" in e for e in obj[:3])
