"""BARC's annotated problems (``synthetic_problems/<uid>.json``): one task per file.

``{"uid", "annotations": {"example": "good"|"ok"|"bad", "code": ...}, "metadata": {"source_file"},
"examples": [{"input", "output"}, ...], "code": "<the generating program>"}``. The last example is the
test pair, the others are demonstrations. The annotations are kept (``extra.annotations``; ``quality`` is
the annotation of the examples). Options: ``drop`` (default ``["bad"]``): problems whose example
annotation is one of these are skipped and reported, not built; ``transpose`` (default true): upstream
stores these grids in its programs' ``[x][y]`` orientation (the program beside a problem reproduces its
outputs only untransposed), so they are transposed into ARC's lists of rows. The program text stays in the
repository's ``<uid>.py`` (not copied into ``extra``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from arcforge.formats import Item, Member, RawTask, Skipped, register
from arcforge.task import BAD_STRUCTURE, NO_TEST, TaskFormatError, may_have_bools, parse_pairs

DEFAULT_DROP = ("bad",)


@register("barc_problem")
class BarcProblemFormat:
    name = "barc_problem"

    def read(self, member: Member, options: Mapping[str, Any]) -> Iterator[Item]:
        data, obj = member.load()
        if not isinstance(obj, dict) or not isinstance(obj.get("examples"), list):
            raise TaskFormatError(BAD_STRUCTURE, "expected an object with an 'examples' list")
        annotations = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else {}
        quality = str(annotations.get("example", ""))
        if quality in tuple(options.get("drop", DEFAULT_DROP)):
            yield Skipped(
                f"BARC problem annotated example={quality!r} (dropped; see the manifest's drop option)"
            )
            return
        pairs = parse_pairs(obj["examples"], "examples", check_bools=may_have_bools(data))
        if len(pairs) < 2:
            raise TaskFormatError(NO_TEST, f"{len(pairs)} example(s): need a demonstration and a test")
        if options.get("transpose", True):
            pairs = [p.transposed() for p in pairs]
        extra = {k: obj[k] for k in ("uid", "annotations", "metadata") if k in obj}
        yield RawTask("", pairs[:-1], pairs[-1:], extra, quality=quality)

    def sniff(self, path: str, obj: Any) -> bool:
        return isinstance(obj, dict) and isinstance(obj.get("examples"), list) and "annotations" in obj
