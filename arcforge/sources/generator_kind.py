"""The ``generator`` source kind: a repository at a pinned commit whose programs make tasks.

Its ``[generator]`` table (checked here when the manifest is loaded)::

    [generator]
    driver = "re_arc"            # how the programs are called: a driver in arcforge.sources.drivers
    code = ["generators.py", "verifiers.py", "dsl.py", "utils.py"]   # upstream files the programs need
    stubs = ["matplotlib"]       # modules upstream imports only for plotting: replaced by empty modules
    split = "generated"          # the split generated tasks go to
    k = 3                        # demonstrations per task (+ 1 test pair)
    call_s = 5.0                 # per-example limits of a program (sandbox Limits)
    memory_mb = 1024
    keys = []                    # run only these generators (default: every one upstream has)

The code files must be among the manifest's ``files`` (so they are pinned by ``digests.lock``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from arcforge.errors import ManifestError
from arcforge.sources.kinds import register

DRIVERS = ("re_arc", "barc_seeds")
DEFAULTS: dict[str, Any] = {
    "stubs": [],
    "split": "generated",
    "k": 3,
    "call_s": 5.0,
    "memory_mb": 1024,
    "keys": [],
}


def _positive(settings: Mapping[str, Any], key: str, kind: type, where: Path) -> Any:
    value = settings[key]
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int) or value <= 0:
        raise ManifestError(f"{where}: [generator] '{key}' must be a positive {kind.__name__}, got {value!r}")
    return kind(value)


@register("generator")
class GeneratorKind:
    name = "generator"
    table = "generator"

    def check(self, settings: Mapping[str, Any], where: Path) -> dict[str, Any]:
        unknown = set(settings) - {"driver", "code", *DEFAULTS}
        if unknown:
            raise ManifestError(f"{where}: [generator] has unknown field(s) {', '.join(sorted(unknown))}")
        driver = settings.get("driver")
        if driver not in DRIVERS:
            raise ManifestError(
                f"{where}: [generator] 'driver' = {driver!r} must be one of {', '.join(DRIVERS)}"
            )
        out: dict[str, Any] = {**DEFAULTS, **settings}
        for key in ("code", "stubs", "keys"):
            v = out.get(key)
            if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                raise ManifestError(f"{where}: [generator] '{key}' must be a list of non-empty strings")
        if not out["code"]:
            raise ManifestError(f"{where}: [generator] 'code' must name at least one file")
        if not isinstance(out["split"], str) or not out["split"]:
            raise ManifestError(f"{where}: [generator] 'split' must be a non-empty string")
        out["k"] = _positive(out, "k", int, where)
        out["call_s"] = _positive(out, "call_s", float, where)
        out["memory_mb"] = _positive(out, "memory_mb", int, where)
        return out
