"""The build's side of generator sources: which keys each work chunk runs, and the chunk's rows.

Each chunk runs whole generator keys (a key's attempts are sequential: its ``repeat`` filter needs the
examples before), so a key's tasks do not depend on the chunking or on the number of workers
(``arcforge.sources.generate``). Chunks are merged in order like any other source's. With
``--tasks-per-generator`` a key's examples are sampled into more tasks (``arcforge.build.sampling``) and
chunks hold fewer keys (``TASKS_PER_CHUNK``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pyarrow as pa

from arcforge import difficulty
from arcforge.build.sampling import sampling_seed, task_indices
from arcforge.errors import BuildError
from arcforge.grids import multiset_key, pair_key
from arcforge.sources.generate import (
    GENERATOR_ERROR,
    Driver,
    KeyResult,
    driver,
    example_task,
    generate_keys,
    group_tasks,
)
from arcforge.task import Task, tasks_to_table

KEYS_PER_CHUNK = 50  # at most; fewer for a small build, so that every worker gets some
EXAMPLES_PER_CHUNK = 500  # about: a chunk of a big build is one or a few generators
TASKS_PER_CHUNK = 10_000  # about, with --tasks-per-generator (memory of a chunk's rows)


def key_batches(plan, workers: int) -> Iterator[tuple[str, ...]]:
    """The generator keys of ``plan`` (a ``SourcePlan``) in chunks, about 2 per worker."""
    assert plan.manifest is not None and plan.root is not None
    keys = driver(plan.root, plan.manifest.settings).keys()
    wanted = plan.manifest.settings.get("keys") or keys
    missing = sorted(set(wanted) - set(keys))
    if missing:
        raise BuildError(
            f"{plan.manifest.path}: [generator] keys {', '.join(missing[:5])} are not generators "
            f"of {plan.name}"
        )
    keys = sorted(set(wanted))
    # about 2 chunks per worker, and about EXAMPLES_PER_CHUNK examples at most (progress, memory)
    step = max(
        1, min(KEYS_PER_CHUNK, -(-len(keys) // (2 * workers)), EXAMPLES_PER_CHUNK // max(1, plan.generate_n))
    )
    if plan.generate_tasks:
        step = max(1, min(step, TASKS_PER_CHUNK // plan.generate_tasks))
    for lo in range(0, len(keys), step):
        yield tuple(keys[lo : lo + step])


def run_generators(plan, keys: tuple[str, ...]) -> tuple[pa.Table, list[dict[str, str]], Counter, Counter]:
    """Generate ``plan.generate_n`` examples for each key: (tasks, quarantine rows, found, counts)."""
    m = plan.manifest
    settings = m.settings
    d = driver(plan.root, settings)
    split = settings["split"]
    results = generate_keys(d, plan.name, keys, plan.generate_n)
    tasks, quarantine, counts = [], [], Counter()
    known: tuple[list[str], list[float]] | None = ([], []) if plan.generate_tasks else None
    prov = {"repo": plan.repo, "commit": plan.commit, "license": plan.license}
    for res in results:
        counts.update(res.counts)
        if known is not None:
            made, unused = sample_tasks(res, d, plan, int(settings["k"]), prov, known)
            counts["sampled"] += max(0, len(made) - len(res.examples) // (int(settings["k"]) + 1))
        else:
            made, unused = group_tasks(
                res, d, source=plan.name, split=split, k=int(settings["k"]), provenance=prov
            )
        tasks += made
        counts["tasks"] += len(made)
        counts["unused"] += unused
        for attempt, failure in res.failures:
            quarantine.append(
                {
                    "source": plan.name,
                    "path": d.path(res.key),
                    "split": split,
                    "reason": failure.reason if failure.reason else GENERATOR_ERROR,
                    "detail": f"{res.key} attempt {attempt}: {failure.detail}",
                }
            )
    found = Counter({split: len(tasks)}) if tasks else Counter()
    if known is None:
        return tasks_to_table(tasks), quarantine, found, counts
    return tasks_to_table(tasks, fingerprints=known[0], difficulties=known[1]), quarantine, found, counts


def sample_tasks(
    res: KeyResult, d: Driver, plan, k: int, prov: dict[str, str], known: tuple[list[str], list[float]]
) -> tuple[list[Task], int]:
    """``plan.generate_tasks`` tasks of k demonstrations + 1 test from one key's examples (at most every set
    of k + 1 of them), and how many examples no task uses (``arcforge.build.sampling``).

    Each task's fingerprint and difficulty are appended to ``known``: made from its examples' pair keys and
    difficulty parts, computed once per example (an example is in many tasks), the same values as
    ``Task.fingerprint`` and ``Task.difficulty``."""
    ex = res.examples
    picks = task_indices(len(ex), k + 1, plan.generate_tasks, sampling_seed(plan.name, res.key))
    split = plan.manifest.settings["split"]
    keys = [pair_key(e.input, e.output) for e in ex]
    parts = [difficulty.pair_parts(e.input, e.output) for e in ex]
    tasks = []
    for c, idx in enumerate(picks):
        tasks.append(
            example_task(res, d, [ex[i] for i in idx], c, source=plan.name, split=split, provenance=prov)
        )
        known[0].append(multiset_key([keys[i] for i in idx]).hex())
        known[1].append(difficulty.from_measures(difficulty.combine([parts[i] for i in idx])))
    return tasks, len(ex) - len({i for idx in picks for i in idx})
