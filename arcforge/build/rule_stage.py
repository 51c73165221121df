"""The build's rule level: tasks made by a program that implements a reference task's rule.

When the build holds a program-backed source (its checkout ships programs:
``arcforge.sources.programs.catalogue``), every program is run on every reference task
(``arcforge.build.rules.check``, cached). Then:

- every match is one line of ``reports/rules.jsonl`` (``source, program, derived_from, eval_id, pairs``);
- with ``--exclude-eval``, the tasks the program's generator made are removed at level ``rule``
  (``reports/excluded.jsonl``: ``eval_ids`` the tasks it solves, ``similarity`` 1.0);
- a match whose program is declared from a task of the build that is not generated (an official split:
  RE-ARC's verifier of ARC-AGI-1 training ``d`` solving evaluation ``e``) is a rule shared between official
  splits: both tasks stay, and the training task is listed in ``reports/reported.jsonl``, level ``rule``;
- declared lineage is held against what execution found (``reports/rule_lineage.jsonl``, ``disagreement``):
  ``solves_reference`` (declared from a task outside the reference, or from nothing, and solves reference
  tasks), ``solves_nothing`` (declared from a reference task, solves none), ``solves_other`` (declared from
  a reference task, solves others but not it);
- programs that failed (time, memory, crash, a module that does not import) are ``reports/rule_errors.jsonl``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from arcforge import paths
from arcforge.build.decon import EXCLUDED_SCHEMA, REPORTED_SCHEMA
from arcforge.build.dedup import keep_rows
from arcforge.build.rules import CheckResult, Reference, RefTable, RuleCache, RuleConfig, check
from arcforge.progress import Progress
from arcforge.sources.programs import Program, catalogue

RULE_LEVEL = "rule"
SHARED_REASON = "rule shared between official splits (both kept): {program}"
_LIST = pa.list_(pa.string())
RULES_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("program", pa.string()),
        pa.field("derived_from", _LIST),
        pa.field("eval_id", pa.string()),
        pa.field("pairs", pa.int64()),
    ]
)
RULE_ERRORS_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("program", pa.string()),
        pa.field("derived_from", _LIST),
        pa.field("error", pa.string()),
        pa.field("failures", pa.int64()),
        pa.field("unchecked", pa.int64()),
    ]
)
LINEAGE_SCHEMA = pa.schema(
    [
        pa.field("source", pa.string()),
        pa.field("program", pa.string()),
        pa.field("derived_from", _LIST),
        pa.field("eval_ids", _LIST),
        pa.field("disagreement", pa.string()),
    ]
)


@dataclass
class RuleStage:
    table: pa.Table  # the kept rows, less those excluded here
    excluded: pa.Table  # EXCLUDED_SCHEMA, level ``rule``
    reported: pa.Table  # REPORTED_SCHEMA: rules shared between official splits
    rules: pa.Table
    errors: pa.Table
    lineage: pa.Table
    counts: dict[str, int] = field(default_factory=dict)
    result: CheckResult | None = None
    programs: list[Program] = field(default_factory=list)  # those that ran


def empty_reports() -> dict[str, pa.Table]:
    return {
        "rules": RULES_SCHEMA.empty_table(),
        "rule_errors": RULE_ERRORS_SCHEMA.empty_table(),
        "rule_lineage": LINEAGE_SCHEMA.empty_table(),
    }


def build_programs(
    sources: Sequence[tuple[str, str, Path]], cache: Path | None = None
) -> tuple[list[Program], dict[str, Path]]:
    """The programs of the build's ``(name, repo, checkout)`` sources, and each source's checkout; the
    catalogue is kept in ``cache`` (default ``ARCFORGE_HOME/rules/catalogue``)."""
    progs, dirs = [], {}
    cache = cache if cache is not None else paths.home() / "rules" / "catalogue"
    for name, repo, root in sources:
        found = catalogue(repo, root, name, cache)
        if found:
            progs += found
            dirs[name] = Path(root)
    return progs, dirs


def _row_keys(row: dict) -> set[tuple[str, str]]:
    """What made a task: ``("generator", key)`` when ``--generate`` did (its ``extra`` names the generator),
    ``("file", path)`` for a task read from an upstream file (BARC's ``synthetic_problems/<uid>.json``)."""
    keys = {("file", (row.get("path") or "").split("!")[-1])}
    try:
        extra = json.loads(row.get("extra") or "{}")
    except ValueError:
        extra = {}
    if isinstance(extra, dict) and isinstance(extra.get("generator"), str):
        keys.add(("generator", extra["generator"]))
    return keys


def _generated_by(table: pa.Table, programs: Sequence[Program]) -> dict[int, list[Program]]:
    """Row number -> the programs that made that row: of the same source, either its generator (the
    program's key) or, for a program beside a data file (``made_from``), the task read from that file.
    Other rows of the source (RE-ARC's copy of ARC-AGI-1) are made by no program."""
    by_key: dict[tuple[str, str, str], list[Program]] = defaultdict(list)
    for p in programs:
        by_key[(p.source, *(("file", p.made_from) if p.made_from else ("generator", p.key)))].append(p)
    sources = sorted({p.source for p in programs})
    rows = np.flatnonzero(_of_sources(table, sources))
    cols = [c for c in ("source", "path", "extra") if c in table.column_names]
    out: dict[int, list[Program]] = {}
    if not len(rows):
        return out
    # only the three small columns are taken (never the grids), and turned into Python a batch at a time
    sub, at = table.select(cols).take(pa.array(rows)), 0
    for batch in sub.to_batches(max_chunksize=_ROWS_AT_ONCE):
        for i, row in zip(rows[at : at + batch.num_rows], batch.to_pylist(), strict=True):
            hit = [p for k in sorted(_row_keys(row)) for p in by_key.get((row["source"], *k), ())]
            if hit:
                out[int(i)] = hit
        at += batch.num_rows
    return out


def _of_sources(table: pa.Table, sources) -> np.ndarray:
    """A boolean mask: the rows of ``table`` whose ``source`` is one of ``sources``."""
    hit = pc.is_in(table["source"], pa.array(sorted(sources), pa.string()))
    return np.asarray(hit.to_numpy(zero_copy_only=False), dtype=bool)


_ROWS_AT_ONCE = 65_536  # rows turned into Python objects at once (memory of a million-task build)


@dataclass(frozen=True)
class RuleRunOptions:
    """How the rule level runs: ``exclude_eval`` removes the tasks of a program that solves a reference
    task; with ``made`` (the build's rows before de-duplication), only the programs that made one of them
    are run; ``before_run`` is called once before the first program runs (the check of the checkouts
    against their pins), never when the cache answers."""

    exclude_eval: bool
    made: pa.Table | None = None
    config: RuleConfig | None = None
    cache: RuleCache | None = None
    progress: Progress | None = None
    before_run: Callable[[], None] | None = None


def run_rule_stage(
    kept: pa.Table,
    reference: pa.Table | None,
    is_ref: np.ndarray,
    programs: Sequence[Program],
    dirs: dict[str, Path],
    opts: RuleRunOptions,
) -> RuleStage | None:
    """The rule level over ``kept`` (``is_ref`` marks its reference rows; ``reference`` holds the
    reference-only tasks of ``--eval-local``) for ``programs`` (``build_programs``; ``dirs``: each source's
    checkout), run as ``opts`` says. None when there is no program or no reference task."""
    programs = _programs_that_made(programs, opts.made)
    if not programs:
        return None
    config = opts.config or RuleConfig()
    refs = RefTable(_reference_table(kept, reference, is_ref))
    if not len(refs):
        return None
    res = check(
        programs,
        dirs,
        refs,
        config=config,
        cache=opts.cache or RuleCache(config=config),
        progress=opts.progress,
        before_run=opts.before_run,
    )
    solved = _solved(res)
    excluded = _rule_excluded(kept, is_ref, programs, solved) if opts.exclude_eval else []
    stage = RuleStage(
        _without(kept, excluded),
        _excluded(kept, excluded),
        _shared(kept, is_ref, programs, res),
        _rules(res),
        _errors(res),
        _lineage(programs, refs, solved),
        result=res,
        programs=list(programs),
    )
    stage.counts = {
        f"excluded.{RULE_LEVEL}": stage.excluded.num_rows,
        "rules.matches": stage.rules.num_rows,
        "rules.errors": stage.errors.num_rows,
        "rules.shared_official": stage.reported.num_rows,
    }
    return stage


def _programs_that_made(programs: Sequence[Program], made: pa.Table | None) -> Sequence[Program]:
    """``programs``, or with ``made``, only those that made one of its rows."""
    if made is None:
        return programs
    used = {(p.source, p.path) for ps in _generated_by(made, programs).values() for p in ps}
    return [p for p in programs if (p.source, p.path) in used]


def _reference_table(kept: pa.Table, reference: pa.Table | None, is_ref: np.ndarray) -> pa.Table:
    """The reference rows of ``kept``, with the reference-only tasks of ``--eval-local`` appended."""
    ref_table = kept.filter(pa.array(is_ref))
    if reference is not None and reference.num_rows:
        cols = ["id", "source", "split", "train", "test"]
        ref_table = pa.concat_tables(
            [ref_table.select(cols), reference.select(cols).cast(ref_table.select(cols).schema)]
        )
    return ref_table


def _solved(res: CheckResult) -> dict[tuple[str, str], list[Reference]]:
    """Per program ``(source, path)``: the reference tasks it solves."""
    solved: dict[tuple[str, str], list[Reference]] = defaultdict(list)
    for p, r, _ in res.matches:
        solved[(p.source, p.path)].append(r)
    return solved


def _rule_excluded(
    kept: pa.Table,
    is_ref: np.ndarray,
    programs: Sequence[Program],
    solved: dict[tuple[str, str], list[Reference]],
) -> list[tuple[int, list]]:
    """The rows of ``kept`` (not reference rows) made by a program that solves reference tasks, each with
    ``(eval_id, Reference)`` of the tasks solved."""
    excluded = []
    for i, progs in _generated_by(kept, programs).items():
        hits = sorted({r.eval_id: r for p in progs for r in solved.get((p.source, p.path), ())}.items())
        if hits and not is_ref[i]:
            excluded.append((i, hits))
    return excluded


def _without(kept: pa.Table, excluded: list[tuple[int, list]]) -> pa.Table:
    """``kept`` less the ``excluded`` rows."""
    if not excluded:
        return kept
    drop = np.zeros(kept.num_rows, dtype=bool)
    drop[[i for i, _ in excluded]] = True
    return keep_rows(kept, ~drop)  # batch by batch: a batch with nothing dropped is not copied


def _excluded(kept: pa.Table, excluded: list[tuple[int, list]]) -> pa.Table:
    if not excluded:
        return EXCLUDED_SCHEMA.empty_table()
    rows = kept.select(["id", "source", "split"]).take(pa.array([i for i, _ in excluded])).to_pylist()
    return pa.Table.from_pylist(
        [
            {
                **row,
                "eval_ids": [e for e, _ in hits],
                "level": RULE_LEVEL,
                "similarity": 1.0,
                "eval_sources": [r.source for _, r in hits],
            }
            for row, (_, hits) in zip(rows, excluded, strict=True)
        ],
        schema=EXCLUDED_SCHEMA,
    )


def _shared(kept: pa.Table, is_ref: np.ndarray, programs: Sequence[Program], res: CheckResult) -> pa.Table:
    """Matches whose program is declared from a task of the build that no program made: both kept."""
    made = {p.source for p in programs}
    keep = ~_of_sources(kept, made) & ~np.asarray(is_ref, dtype=bool)
    others = kept.select(["id", "source", "split"]).filter(pa.array(keep))
    ids = {row["id"]: row for row in others.to_pylist()}  # the tasks no program made: not the generated ones
    lines = {}
    for p, r, _ in res.matches:
        for d in p.derived_from:
            if d in ids and d != r.eval_id:
                row = ids[d]
                lines[(d, r.eval_id, p.path)] = {
                    **row,
                    "eval_ids": [r.eval_id],
                    "level": RULE_LEVEL,
                    "similarity": 1.0,
                    "eval_sources": [r.source],
                    "reason": SHARED_REASON.format(program=f"{p.source}:{p.path}"),
                }
    return pa.Table.from_pylist([lines[k] for k in sorted(lines)], schema=REPORTED_SCHEMA)


def _rules(res: CheckResult) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "source": p.source,
                "program": p.path,
                "derived_from": list(p.derived_from),
                "eval_id": r.eval_id,
                "pairs": n,
            }
            for p, r, n in res.matches
        ],
        schema=RULES_SCHEMA,
    )


def _errors(res: CheckResult) -> pa.Table:
    return pa.Table.from_pylist(
        [
            {
                "source": e.program.source,
                "program": e.program.path,
                "derived_from": list(e.program.derived_from),
                "error": e.error,
                "failures": e.failures,
                "unchecked": e.unchecked,
            }
            for e in res.errors
        ],
        schema=RULE_ERRORS_SCHEMA,
    )


def disagreement(program: Program, ref_ids: set[str], solved: set[str]) -> str | None:
    """How ``program``'s declared lineage disagrees with the reference tasks it solves (None: it agrees)."""
    declared = set(program.derived_from) & ref_ids
    if not declared:
        return "solves_reference" if solved else None
    if not solved:
        return "solves_nothing"
    return None if declared & solved else "solves_other"


def _lineage(
    programs: Sequence[Program], refs: RefTable, solved: dict[tuple[str, str], list[Reference]]
) -> pa.Table:
    ref_ids = set(refs.ids)
    rows = []
    for p in programs:
        got = sorted({r.eval_id for r in solved.get((p.source, p.path), ())})
        kind = disagreement(p, ref_ids, set(got))
        if kind is not None:
            rows.append(
                {
                    "source": p.source,
                    "program": p.path,
                    "derived_from": list(p.derived_from),
                    "eval_ids": got,
                    "disagreement": kind,
                }
            )
    return pa.Table.from_pylist(rows, schema=LINEAGE_SCHEMA)
