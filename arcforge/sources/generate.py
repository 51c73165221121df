"""Generator sources: upstream programs that make examples, run in the sandbox, grouped into tasks.

For each generator key, attempts ``0, 1, 2, ...`` are drawn until ``n`` examples are kept (at most
``max_attempts(n)``: upstream's driver would loop for ever on a generator that never passes; a generator
that fails ``GIVE_UP`` times in a row is abandoned). Attempt ``i``
is seeded by ``(source, key, i)`` alone, so a key's examples do not depend on which worker runs it, on the
other keys, or on earlier runs: the output is byte-identical across runs and ``--workers``.

Filters are upstream's own (RE-ARC's ``main.py`` ``generate_dataset``): the verifier must reproduce the
output (``verifier_mismatch``), the output must differ from the input (``degenerate``), the input must be
new for its generator (``repeat``). These are counted per reason; they run in the sandbox worker,
cheapest first (grid, degenerate, repeat, verifier: the same examples are kept as in upstream's order).
A program that raises, loops past ``call_s`` of CPU time, runs out of memory, crashes or returns
something that is not a grid (``generator_error``, or the grid's validation reason) costs one
quarantined example with its reason, never the build.

The kept examples of a key are grouped in order into tasks of ``k`` demonstrations + 1 test
(``<source>/<split>/<key>/<nnnn>``); the last ``n mod (k+1)`` examples are counted as ``unused``.
"""

from __future__ import annotations

import hashlib
import math
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
from arcforge.sources.programs import SEED_NAME
from arcforge.sources.sandbox import Limits, Sandbox, escape
from arcforge.task import MAX_GRID_SIDE, Pair, Task, TaskFormatError, parse_grid

GENERATOR_ERROR = "generator_error"
FILTERS = ("verifier_mismatch", "degenerate", "repeat")
ARC1_TRAINING = "arc_agi_1/training/{}"  # the task id a generator key is derived from


GIVE_UP = 10  # failures in a row (errors, not filters) after which a generator is abandoned
# An attempt's limit is ``call_s`` of CPU time, kept by the worker (the output must not depend on how busy
# the machine is); the wall clock only stops a worker that makes no progress at all (sleeps, blocks).
WALL_FACTOR, MIN_WALL_S = 10, 30.0


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

    def job(self, key: str) -> dict[str, Any]:
        """What the sandbox worker runs per attempt (``sandbox_worker._attempt``): ``make`` (one call
        returning ``{"input", "output"}``) or ``make_input`` + ``solve``; optional ``verify``, ``reset``
        (attributes set before each attempt), ``mean_of`` and ``measure`` (difficulty measures),
        ``transpose`` (the programs index grids [x][y])."""
        raise NotImplementedError

    def path(self, key: str) -> str:
        """The upstream file that holds generator ``key`` (the tasks' ``path`` column)."""
        raise NotImplementedError

    def derived_from(self, key: str) -> tuple[str, ...]:
        return (ARC1_TRAINING.format(key.split("_", 1)[0]),)


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

    def job(self, key: str) -> dict[str, Any]:
        return {
            "make": ["generators", f"generate_{key}", [0, 1]],
            "verify": ["verifiers", f"verify_{key}"],
            "reset": {"utils.rng": []},
            "mean_of": {"rng_difficulty": "utils.rng"},
            "measure": {"pso_difficulty": ["main", "get_pso_difficulty"]},
        }


class BarcSeeds(Driver):
    """BARC's seeds: ``seeds/<arc id>[_suffix].py`` with ``generate_input()`` and ``main(grid)`` over
    ``common.py`` (numpy grids indexed [x][y], the transpose of ARC's rows: both grids are transposed into
    ARC's orientation). The program is its own solution: no verifier, no difficulty measure upstream.
    Helpers beside the seeds (``common.py``, ``template.py``) are not seeds."""

    name = "barc_seeds"
    quality = "program"
    FOLDER = "seeds"

    def keys(self) -> list[str]:
        return sorted(p.stem for p in (self.root / self.FOLDER).glob("*.py") if SEED_NAME.match(p.stem))

    def sandbox(self, key: str) -> Sandbox:
        return Sandbox(self.root / self.FOLDER, [key], self.limits, stubs=self.stubs)

    def path(self, key: str) -> str:
        return f"{self.FOLDER}/{key}.py"

    def job(self, key: str) -> dict[str, Any]:
        return {"make_input": [key, "generate_input"], "solve": [key, "main"], "transpose": True}


DRIVERS: dict[str, type[Driver]] = {"re_arc": ReArc, "barc_seeds": BarcSeeds}


def driver(root: Path, settings: dict[str, Any]) -> Driver:
    return DRIVERS[settings["driver"]](root, settings)


# --- generation ---------------------------------------------------------------------------------------------
def _decode(cells: Any, where: str) -> np.ndarray:
    """A grid the worker sent as ``[height, width, digits]``, checked (a worker can send only data)."""
    h, w, text = cells
    if not (
        type(h) is int
        and type(w) is int
        and 0 < h <= MAX_GRID_SIDE
        and 0 < w <= MAX_GRID_SIDE
        and isinstance(text, str)
        and len(text) == h * w
        and text.isascii()
    ):
        raise TaskFormatError("bad_structure", f"{where}: malformed grid from the worker")
    grid = np.frombuffer(text.encode("ascii"), dtype=np.uint8) - 48
    if (grid > 9).any():
        raise TaskFormatError("bad_structure", f"{where}: malformed grid from the worker")
    return grid.astype(np.int8).reshape(h, w)


def _measures(x: Any, names: set[str]) -> dict[str, float]:
    if not isinstance(x, dict):
        return {}
    return {k: float(v) for k, v in x.items() if k in names and type(v) in (int, float) and math.isfinite(v)}


class _KeyRun:
    """One key's attempts as the worker reports them: counts, kept examples, failures (see ``generate_key``).
    The worker applies the filters; the grids it sends are checked again here, and so are ``degenerate``
    and ``repeat`` (cheap), so a worker cannot smuggle a malformed or repeated example in."""

    def __init__(self, d: Driver, source: str, key: str, n: int) -> None:
        self.source, self.key, self.n, self.job = source, key, n, d.job(key)
        self.measure_names = {*(self.job.get("mean_of") or {}), *(self.job.get("measure") or {})}
        self.res = KeyResult(key)
        self.seen: dict[tuple, None] = {}  # identities of kept inputs, in order
        self.next = 0  # the next attempt
        self.in_row = 0  # failures in a row
        self.limit = max_attempts(n)

    def wanted(self) -> bool:
        return len(self.res.examples) < self.n and self.next < self.limit and self.in_row < GIVE_UP

    def request(self) -> dict[str, Any]:
        need = self.n - len(self.res.examples)
        stop = min(
            self.limit, self.next + need + need // 4 + 8
        )  # about the attempts it takes, more on demand
        return {
            "op": "gen",
            "job": self.job,
            "start": self.next,
            "need": need,
            "give_up": GIVE_UP - self.in_row,
            "seeds": [example_seed(self.source, self.key, i) for i in range(self.next, stop)],
            "seen": [list(s) for s in self.seen] if self.seen and self.next else [],
        }

    def take(self, frame: dict[str, Any]) -> bool:
        """Count one frame; False when it breaks the protocol (the stream is then dropped)."""
        if "dead" in frame:
            self.count(Failure(GENERATOR_ERROR, str(frame["dead"])))
            return True
        if frame.get("end") is True:
            return True
        if frame.get("i") != self.next:
            self.count(Failure(GENERATOR_ERROR, "malformed reply"))
            return False
        self.count(self._judge(frame))
        return True

    def _judge(self, frame: dict[str, Any]) -> Example | Failure:
        if "k" in frame:
            try:
                ki, ko = frame["k"][:3], frame["k"][3:]
                inp, out = _decode(ki, "input"), _decode(ko, "output")
            except (TaskFormatError, TypeError, ValueError) as e:
                return Failure(
                    "bad_structure", e.detail if isinstance(e, TaskFormatError) else "malformed reply"
                )
            ident = tuple(ki)
            if inp.shape == out.shape and np.array_equal(inp, out):
                return Failure("degenerate")
            if ident in self.seen:
                return Failure("repeat")
            self.seen[ident] = None
            return Example(inp, out, self.next, _measures(frame.get("x"), self.measure_names))
        if "bad" in frame:
            where = "output" if frame.get("w") == "output" else "input"
            try:
                to_grid(frame["bad"], where)
            except TaskFormatError as e:
                return Failure(e.reason, e.detail)
            return Failure("bad_structure", f"{where} is not a grid")
        reason = frame.get("r")
        if reason in FILTERS:
            return Failure(reason)
        return Failure(GENERATOR_ERROR, escape(str(frame.get("e", ""))) or "failed")

    def count(self, got: Example | Failure) -> None:
        res = self.res
        res.counts["attempts"] += 1
        if isinstance(got, Example):
            res.examples.append(got)
            res.counts["kept"] += 1
            self.in_row = 0
        else:
            res.counts[got.reason] += 1
            self.in_row = 0 if got.reason in FILTERS else self.in_row + 1
            if got.reason not in FILTERS:
                res.failures.append((self.next, got))
        self.next += 1


def generate_key(d: Driver, sb: Sandbox, source: str, key: str, n: int) -> KeyResult:
    """Up to ``n`` kept examples of one generator (see the module docstring): the worker runs the attempts
    back to back and streams one frame per attempt; a worker that dies costs the attempt it was on, and the
    run goes on from the next attempt in a new worker."""
    run = _KeyRun(d, source, key, n)
    while run.wanted():
        before = run.next
        for frame in sb.stream(run.request(), frame_s=max(MIN_WALL_S, WALL_FACTOR * sb.limits.call_s)):
            if not run.take(frame):
                break
        if run.next == before:  # the worker ended the run without an attempt: count one, never spin
            run.count(Failure(GENERATOR_ERROR, "the worker stopped without an attempt"))
    res = run.res
    if len(res.examples) < n and run.in_row >= GIVE_UP:
        res.counts["abandoned"] += 1
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


def group_tasks(
    res: KeyResult, d: Driver, *, source: str, split: str, k: int, provenance: dict[str, str]
) -> tuple[list[Task], int]:
    """The key's kept examples in tasks of k demonstrations + 1 test, and how many were left over.
    ``provenance``: the source's repo, commit and license."""
    size = k + 1
    tasks = [
        example_task(
            res,
            d,
            res.examples[c * size : (c + 1) * size],
            c,
            source=source,
            split=split,
            provenance=provenance,
        )
        for c in range(len(res.examples) // size)
    ]
    return tasks, len(res.examples) - len(tasks) * size


def example_task(
    res: KeyResult,
    d: Driver,
    chunk: Sequence[Example],
    number: int,
    *,
    source: str,
    split: str,
    provenance: dict[str, str],
) -> Task:
    """Task ``number`` of key ``res.key``: ``chunk``'s examples as demonstrations, the last one as test."""
    pairs = [Pair(e.input, e.output) for e in chunk]
    extra: dict[str, Any] = {"generator": res.key, "attempts": [e.index for e in chunk]}
    for m in sorted({m for e in chunk for m in e.measures}):
        vals = [e.measures[m] for e in chunk if m in e.measures]
        extra[m] = round(sum(vals) / len(vals), 6)
    return Task(
        f"{source}/{split}/{res.key}/{number:04d}",
        source,
        split,
        pairs[:-1],
        pairs[-1:],
        provenance["repo"],
        provenance["commit"],
        d.path(res.key),
        provenance["license"],
        extra,
        derived_from=d.derived_from(res.key),
        quality=d.quality,
        upstream_difficulty=extra.get("pso_difficulty"),
    )
