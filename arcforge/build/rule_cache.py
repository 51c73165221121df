"""Where the execution check (``arcforge.build.rules``) keeps what it found, under ``ARCFORGE_HOME/rules/``.

- Per program, one JSON file: ``{reference task digest: [kind, pair, reason, limits]}``, so a program or a
  reference task that is new runs only its own checks. A failure, and a program given up, are kept with the
  limits they ran under (``RuleConfig.tag``) and run again under others.
- Per check, one *summary*: the whole outcome (matches, failures) under a key over every program (with its
  digest), every reference task (with its digest) and the limits. A rebuild of the same sources against the
  same reference reads this one small file and runs nothing; anything else falls back to the per-program
  files.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from arcforge import paths
from arcforge.build.rule_config import RuleConfig
from arcforge.sources.programs import Program

CACHE_VERSION = 1
SUMMARY_VERSION = 1
ERROR = "error"


def _write(f: Path, data: bytes) -> None:
    f.parent.mkdir(parents=True, exist_ok=True)
    tmp = f.with_name(f"{f.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, f)


def _read(f: Path) -> Any:
    try:
        return msgspec.json.decode(f.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None  # missing or damaged: the checks run again and rewrite it


class RuleCache:
    """The per-program results and the summaries of whole checks (see the module docstring)."""

    def __init__(self, root: Path | None = None, config: RuleConfig | None = None):
        self.root = Path(root) if root is not None else paths.home() / "rules"
        self.tag = (config or RuleConfig()).tag()

    def _file(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}.json"

    def load(self, program: Program) -> dict[str, list]:
        data = _read(self._file(program.digest))
        if not isinstance(data, dict) or data.get("version") != CACHE_VERSION:
            return {}
        res = data.get("results")
        if not isinstance(res, dict):
            return {}
        return {
            k: v
            for k, v in res.items()
            if isinstance(v, list) and len(v) == 4 and (v[0] != ERROR or v[3] == self.tag)
        }

    def store(self, program: Program, results: dict[str, list]) -> None:
        body = {"version": CACHE_VERSION, "program": program.path, "results": dict(sorted(results.items()))}
        _write(self._file(program.digest), msgspec.json.encode(body))

    # --- summaries ------------------------------------------------------------------------------------------
    def summary_key(self, programs: Sequence[Program], refs: Any) -> str:
        """A digest over the programs (every field, their digests included, in order), the reference tasks
        (``refs``: JSON-able, their ids, sources and contents in order) and the limits."""
        body = [SUMMARY_VERSION, self.tag, list(programs), refs]  # msgspec encodes a dataclass field by field
        return hashlib.sha256(msgspec.json.encode(body)).hexdigest()

    def _summary_file(self, key: str) -> Path:
        return self.root / "summary" / f"{key}.json"

    def load_summary(self, key: str, programs: int, refs: int) -> dict | None:
        """The stored outcome under ``key``, or None (missing, damaged, or not for these sizes)."""
        data = _read(self._summary_file(key))
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        try:
            matches = [(int(p), int(r), int(n)) for p, r, n in data["matches"]]
            errors = [(int(p), str(e), int(f), int(u)) for p, e, f, u in data["errors"]]
            answered = int(data["answered"])
        except (KeyError, TypeError, ValueError):
            return None
        if not all(0 <= p < programs and 0 <= r < refs for p, r, _ in matches) or not all(
            0 <= p < programs for p, *_ in errors
        ):
            return None
        return {"matches": matches, "errors": errors, "answered": answered}

    def store_summary(self, key: str, matches: list, errors: list, answered: int) -> None:
        _write(
            self._summary_file(key),
            msgspec.json.encode({"key": key, "matches": matches, "errors": errors, "answered": answered}),
        )
