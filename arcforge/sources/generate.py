"""Generator sources: upstream programs that make examples, run in the sandbox, grouped into tasks.

For each generator key, attempts ``0, 1, 2, ...`` are drawn until ``n`` examples are kept (at most
``max_attempts(n)``: upstream's driver would loop for ever on a generator that never passes; a generator
that fails ``GIVE_UP`` times in a row is abandoned). Attempt ``i``
is seeded by ``(source, key, i)`` alone, so a key's examples do not depend on which worker runs it, on the
other keys, or on earlier runs: the output is byte-identical across runs and ``--workers``.

Filters are upstream's own (RE-ARC's ``main.py`` ``generate_dataset``): the verifier must reproduce the
output (``verifier_mismatch``), the output must differ from the input (``degenerate``), the input must be
new for its generator (``repeat``). These are counted per reason. A program that raises, loops, runs out
of memory, crashes or returns something that is not a grid (``generator_error``, or the grid's
validation reason) costs one quarantined example with its reason, never the build.

The kept examples of a key are grouped in order into tasks of ``k`` demonstrations + 1 test
(``<source>/<split>/<key>/<nnnn>``); the last ``n mod (k+1)`` examples are counted as ``unused``.
"""

from __future__ import annotations

import hashlib
import multiprocessing.util as mp_util
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcforge.errors import SandboxError
from arcforge.sources.sandbox import CallResult, Limits, Sandbox
from arcforge.task import MAX_GRID_SIDE, Pair, Task, TaskFormatError, parse_grid

GENERATOR_ERROR = "generator_error"
FILTERS = ("verifier_mismatch", "degenerate", "repeat")
ARC1_TRAINING = "arc_agi_1/training/{}"  # the task id a generator key is derived from


GIVE_UP = 10  # failures in a row (errors, not filters) after which a generator is abandoned


def max_attempts(n: int) -> int:
    return 4 * n + 20


def example_seed(source: str, key: str, index: int) -> int:
    """The seed of attempt ``index`` of generator ``key`` (63 bits of sha256, stable across versions)."""
    digest = hashlib.sha256(f"{source}\0{key}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


@dataclass
class Example:
    input: np.ndarray
    output: np.ndarray
    index: int  # the attempt that made it
    measures: dict[str, float] = field(default_factory=dict)  # upstream's difficulty measures


@dataclass
class Failure:
    reason: str  # a filter (counted) or a quarantine reason
    detail: str = ""


@dataclass
class KeyResult:
    """What generating one key gave: kept examples, counts per outcome, quarantine rows' material."""

    key: str
    examples: list[Example] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[int, Failure]] = field(default_factory=list)  # (attempt, failure) to quarantine


def to_grid(value: Any, where: str) -> np.ndarray:
    """A program's grid as int8, checked like the build checks files plus upstream's 30x30 bound."""
    grid = parse_grid(value, where)
    if max(grid.shape) > MAX_GRID_SIDE:
        raise TaskFormatError("bad_structure", f"{where} is {grid.shape[0]}x{grid.shape[1]}, over 30x30")
    return grid


# --- drivers: how one source's programs are called -------------------------------------------------------
class Driver:
    """How a generator source's programs are found and called. Subclasses: ``ReArc``, ``BarcSeeds``."""

    name = ""
    quality = ""

    def __init__(self, root: Path, settings: dict[str, Any]) -> None:
        self.root = root
        self.settings = settings
        self.limits = Limits(call_s=float(settings["call_s"]), memory_mb=int(settings["memory_mb"]))
        self.stubs = dict.fromkeys(settings.get("stubs", ()), "")

    def keys(self) -> list[str]:
        raise NotImplementedError

    def sandbox(self, key: str) -> Sandbox:
        raise NotImplementedError

    def shared_sandbox(self) -> bool:
        """True when one sandbox serves every key (RE-ARC: one module per kind of program)."""
        return False

    def attempt(self, sb: Sandbox, key: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict] | Failure:
        raise NotImplementedError

    def verify(self, sb: Sandbox, key: str, inp: list, out: list) -> Failure | None:
        """Upstream's check of a valid example (None: it passes)."""
        return None

    def path(self, key: str) -> str:
        """The upstream file that holds generator ``key`` (the tasks' ``path`` column)."""
        raise NotImplementedError

    def derived_from(self, key: str) -> tuple[str, ...]:
        return (ARC1_TRAINING.format(key.split("_", 1)[0]),)

    def measures(self, sb: Sandbox, key: str, inp: list, out: list, extra: dict) -> dict[str, float]:
        return {}


def _failed(r: CallResult) -> Failure:
    return Failure(GENERATOR_ERROR, r.error)


class ReArc(Driver):
    """RE-ARC: ``generators.generate_<key>(0, 1)`` and ``verifiers.verify_<key>(input)``; difficulty as
    upstream's ``main.py`` measures it (RNG: the mean of the floats the generator drew; PSO: its own
    ``get_pso_difficulty``)."""

    name = "re_arc"
    quality = "verified"
    MODULES = ("generators", "verifiers", "utils", "main")
    _KEY_RE = re.compile(r"^def generate_([0-9a-f]{8})\(", re.M)

    def keys(self) -> list[str]:
        text = (self.root / "generators.py").read_text(encoding="utf-8")  # read, never imported here
        return sorted(set(self._KEY_RE.findall(text)))

    def shared_sandbox(self) -> bool:
        return True

    def path(self, key: str) -> str:
        return "generators.py"

    def sandbox(self, key: str) -> Sandbox:
        return Sandbox(self.root, self.MODULES, self.limits, stubs=self.stubs)

    def attempt(self, sb: Sandbox, key: str, seed: int) -> tuple[Any, Any, dict] | Failure:
        r = sb.call_seeded("generators", f"generate_{key}", [0, 1], seed=seed, reset={"utils.rng": []},
                           read=["utils.rng"])
        if not r.ok:
            return _failed(r)
        if not isinstance(r.value, dict) or not {"input", "output"} <= r.value.keys():
            return Failure("bad_structure", "the generator did not return {'input', 'output'}")
        return r.value["input"], r.value["output"], r.extra

    def verify(self, sb: Sandbox, key: str, inp: list, out: list) -> Failure | None:
        v = sb.call("verifiers", f"verify_{key}", [inp], grid_type="tuple")
        return None if v.ok and v.value == out else Failure("verifier_mismatch", v.error)

    def measures(self, sb: Sandbox, key: str, inp: list, out: list, extra: dict) -> dict[str, float]:
        rng = extra.get("utils.rng") or []
        got: dict[str, float] = {}
        if isinstance(rng, list) and rng and all(isinstance(x, (int, float)) for x in rng):
            got["rng_difficulty"] = float(sum(rng) / len(rng))
        pso = sb.call("main", "get_pso_difficulty", [{"input": inp, "output": out}], grid_type="tuple")
        if pso.ok and isinstance(pso.value, (int, float)):
            got["pso_difficulty"] = float(pso.value)
        return got


class BarcSeeds(Driver):
    """BARC's seeds: ``seeds/<key>.py`` with ``generate_input()`` and ``main(grid)`` over ``common.py``
    (numpy grids). The program is its own solution: no verifier, upstream has no difficulty measure."""

    name = "barc_seeds"
    quality = "program"
    FOLDER = "seeds"

    def keys(self) -> list[str]:
        return sorted(p.stem for p in (self.root / self.FOLDER).glob("*.py") if p.stem != "common")

    def sandbox(self, key: str) -> Sandbox:
        return Sandbox(self.root / self.FOLDER, [key], self.limits, stubs=self.stubs)

    def path(self, key: str) -> str:
        return f"{self.FOLDER}/{key}.py"

    def attempt(self, sb: Sandbox, key: str, seed: int) -> tuple[Any, Any, dict] | Failure:
        gi = sb.call_seeded(key, "generate_input", [], seed=seed, grid_type="numpy")
        if not gi.ok:
            return _failed(gi)
        out = sb.call_seeded(key, "main", [gi.value], seed=seed, grid_type="numpy")
        if not out.ok:
            return _failed(out)
        return gi.value, out.value, {}


DRIVERS: dict[str, type[Driver]] = {"re_arc": ReArc, "barc_seeds": BarcSeeds}


def driver(root: Path, settings: dict[str, Any]) -> Driver:
    return DRIVERS[settings["driver"]](root, settings)


# --- generation ---------------------------------------------------------------------------------------------
def _judge(d: Driver, sb: Sandbox, key: str, i: int, seed: int, seen: set[bytes]) -> Example | Failure:
    got = d.attempt(sb, key, seed)
    if isinstance(got, Failure):
        return got
    raw_in, raw_out, extra = got
    try:
        inp, out = to_grid(raw_in, "input"), to_grid(raw_out, "output")
    except TaskFormatError as e:
        return Failure(e.reason, e.detail)
    failed = d.verify(sb, key, raw_in, raw_out)  # upstream: the grids first, then the verifier
    if failed is not None:
        return failed
    if inp.shape == out.shape and np.array_equal(inp, out):
        return Failure("degenerate")
    ident = repr(inp.shape).encode() + inp.tobytes()
    if ident in seen:
        return Failure("repeat")
    seen.add(ident)
    return Example(inp, out, i, d.measures(sb, key, raw_in, raw_out, extra))


def generate_key(d: Driver, sb: Sandbox, source: str, key: str, n: int) -> KeyResult:
    """Up to ``n`` kept examples of one generator (see the module docstring)."""
    res = KeyResult(key)
    seen: set[bytes] = set()
    in_row = 0
    for i in range(max_attempts(n)):
        if len(res.examples) >= n:
            break
        if in_row >= GIVE_UP:
            res.counts["abandoned"] += 1
            break
        res.counts["attempts"] += 1
        got = _judge(d, sb, key, i, example_seed(source, key, i), seen)
        if isinstance(got, Example):
            res.examples.append(got)
            res.counts["kept"] += 1
            in_row = 0
        else:
            res.counts[got.reason] += 1
            in_row = 0 if got.reason in FILTERS else in_row + 1
            if got.reason not in FILTERS:
                res.failures.append((i, got))
    if len(res.examples) < n:
        res.counts["short"] += n - len(res.examples)
    return res


# One shared sandbox per driver per process, kept across work chunks (RE-ARC's modules take a second to
# import); a forked process never uses its parent's. Closed at the process's exit (multiprocessing runs
# the finalizer in pool workers too) or by ``close_sandboxes``.
_SANDBOXES: dict[tuple[str, str], Sandbox] = {}
_OWNER = [0]


def _shared(d: Driver) -> Sandbox:
    if _OWNER[0] != os.getpid():
        _SANDBOXES.clear()  # inherited across fork: the parent's workers, not ours
        _OWNER[0] = os.getpid()
        mp_util.Finalize(None, close_sandboxes, exitpriority=10)
    key = (str(d.root), d.name)
    if key not in _SANDBOXES:
        _SANDBOXES[key] = d.sandbox("")
    return _SANDBOXES[key]


def close_sandboxes() -> None:
    """Stop this process's shared sandboxes (their workers and temporary folders)."""
    if _OWNER[0] == os.getpid():
        for sb in _SANDBOXES.values():
            sb.close()
    _SANDBOXES.clear()


def generate_keys(d: Driver, source: str, keys: Sequence[str], n: int) -> list[KeyResult]:
    """Generate several keys: in this process's shared sandbox when the driver allows it, else one each."""
    out = []
    for key in keys:
        sb = _shared(d) if d.shared_sandbox() else d.sandbox(key)
        try:
            sb.start()
            out.append(generate_key(d, sb, source, key, n))
        except SandboxError as e:  # a program that does not even load: one row, the build goes on
            res = KeyResult(key)
            res.counts["attempts"] += 1
            res.counts[GENERATOR_ERROR] += 1
            res.failures.append((0, Failure(GENERATOR_ERROR, str(e))))
            out.append(res)
        finally:
            if not d.shared_sandbox():
                sb.close()
    return out


def group_tasks(res: KeyResult, d: Driver, *, source: str, split: str, k: int, provenance: dict[str, str]
                ) -> tuple[list[Task], int]:
    """The key's kept examples in tasks of k demonstrations + 1 test, and how many were left over.
    ``provenance``: the source's repo, commit and license."""
    tasks = []
    size = k + 1
    for c in range(len(res.examples) // size):
        chunk = res.examples[c * size : (c + 1) * size]
        pairs = [Pair(e.input, e.output) for e in chunk]
        extra: dict[str, Any] = {"generator": res.key, "attempts": [e.index for e in chunk]}
        for m in sorted({m for e in chunk for m in e.measures}):
            vals = [e.measures[m] for e in chunk if m in e.measures]
            extra[m] = round(sum(vals) / len(vals), 6)
        tasks.append(Task(f"{source}/{split}/{res.key}/{c:04d}", source, split, pairs[:k], pairs[k:],
                          provenance["repo"], provenance["commit"], d.path(res.key), provenance["license"],
                          extra, derived_from=d.derived_from(res.key), quality=d.quality,
                          upstream_difficulty=extra.get("pso_difficulty")))
    return tasks, len(res.examples) - len(tasks) * size
