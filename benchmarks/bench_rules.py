"""Rule-level decontamination by execution; results in benchmarks/results/rules.json.

    nice python benchmarks/bench_rules.py [--workers 2] [--parts own,eval,warm] [--cache DIR]

Every program of RE-ARC (400 verifiers) and BARC (162 seeds, 346 synthetic-problem programs) from
../shared/arc-sources, run in the sandbox exactly as the build runs them (``arcforge.build.rules.check``):

1. ``own``: ARC-AGI-1 *training* as the reference (``--eval arc_agi_1:training``): the share of RE-ARC's
   verifiers and of BARC's seeds found to implement their own task's rule (the one named by their
   declared lineage), the misses by name, and every other training task they solve.
2. ``eval``: the default reference (ARC-AGI-1 evaluation, 400, + ARC-AGI-2 evaluation, 120) against every
   program, on a cold cache: wall time, CPU time of the sandbox workers (``RUSAGE_CHILDREN``), calls, and
   which programs solve which evaluation task.
3. ``warm``: the same check again on the warm cache (what a rebuild pays), beside ``build`` of every
   mirrored source without it (medians of alternated runs): the overhead ratio.

The machine is shared: wall times are what this run saw; the CPU seconds of the workers say what the
check costs a free core. Each part is written to the JSON as soon as it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]
SHARED = ROOT.parent / "shared" / "arc-sources"
RESULTS = HERE / "results"
OUT_JSON = RESULTS / "rules.json"
WORK = HERE / "_work"  # git-ignored
REARC = SHARED / "michaelhodel" / "re-arc"
BARC = SHARED / "xu3kev" / "BARC"
SPLITS = {
    ("arc_agi_1", "training"): SHARED / "fchollet" / "ARC-AGI" / "data" / "training",
    ("arc_agi_1", "evaluation"): SHARED / "fchollet" / "ARC-AGI" / "data" / "evaluation",
    ("arc_agi_2", "evaluation"): SHARED / "arcprize" / "ARC-AGI-2" / "data" / "evaluation",
}


def reference(*splits: tuple[str, str]):
    from arcforge.build.rules import references

    rows = []
    for source, split in splits:
        for f in sorted(SPLITS[(source, split)].glob("*.json")):
            d = json.loads(f.read_text())
            rows.append({"id": f"{source}/{split}/{f.stem}", "source": source, "split": split, "train": d["train"], "test": d["test"]})
    return references(pa.Table.from_pylist(rows))


def programs(families: list[str]):
    from arcforge.sources import programs as P

    out = []
    if "re_arc" in families:
        out += P.re_arc_verifiers(REARC)
    if "barc_seeds" in families:
        out += P.barc_seeds(BARC)
    if "barc_synthetic" in families:
        out += P.barc_synthetic(BARC)
    return out


def timed_check(progs, refs, cache_dir: Path, workers: int) -> tuple[object, dict]:
    from arcforge.build.rules import RuleCache, RuleConfig, check
    from arcforge.cli.logprogress import PlainProgress

    config = RuleConfig(workers=workers)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0 = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = check(progs, {"re_arc": REARC, "barc": BARC}, refs, config=config,
                cache=RuleCache(cache_dir, config), progress=PlainProgress(sys.stderr))
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    cost = {"wall_s": round(wall, 1), "worker_cpu_s": round(cpu, 1), "calls": res.calls, "checked": res.checked,
            "cached": res.cached, "load_avg_1min": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "workers": workers, "call_s": config.call_s, "memory_mb": config.memory_mb,
            "max_failures": config.max_failures}
    return res, cost


def family_of(p) -> str:
    return {"re_arc.verifiers": "re_arc", "barc.seeds": "barc_seeds", "barc.synthetic": "barc_synthetic"}[p.family]


def part_own(cache: Path, workers: int) -> dict:
    refs = reference(("arc_agi_1", "training"))
    progs = programs(["re_arc", "barc_seeds"])
    res, cost = timed_check(progs, refs, cache, workers)
    own = {(p.source, p.path) for p, r, _ in res.matches if r.eval_id in p.derived_from}
    errors = {(e.program.source, e.program.path): e for e in res.errors}
    out: dict = {"reference": "arc_agi_1:training (400 tasks)", "cost": cost}
    for fam in ("re_arc", "barc_seeds"):
        ps = [p for p in progs if family_of(p) == fam]
        misses = [p for p in ps if (p.source, p.path) not in own]
        out[fam] = {
            "programs": len(ps), "own_rule": len(ps) - len(misses),
            "share": round((len(ps) - len(misses)) / len(ps), 4),
            "misses": [{"program": p.path, "derived_from": p.derived_from[0],
                        "error": errors[(p.source, p.path)].error if (p.source, p.path) in errors else ""}
                       for p in misses],
            "other_training_tasks_solved": sorted(
                f"{p.path} -> {r.eval_id}" for p, r, _ in res.matches
                if family_of(p) == fam and r.eval_id not in p.derived_from),
        }
    return out


def part_eval(cache: Path, workers: int) -> dict:
    refs = reference(("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation"))
    progs = programs(["re_arc", "barc_seeds", "barc_synthetic"])
    res, cost = timed_check(progs, refs, cache, workers)
    solving: dict[str, list[str]] = {}
    for p, r, _ in res.matches:
        solving.setdefault(f"{p.source}:{p.path}", []).append(r.eval_id)
    by_fam = {}
    for fam in ("re_arc", "barc_seeds", "barc_synthetic"):
        ps = [p for p in progs if family_of(p) == fam]
        keys = {f"{p.source}:{p.path}" for p in ps}
        by_fam[fam] = {"programs": len(ps), "solving_an_eval_task": sum(1 for k in solving if k in keys),
                       "errors": sum(1 for e in res.errors if family_of(e.program) == fam),
                       "given_up": sum(1 for e in res.errors if family_of(e.program) == fam and e.unchecked)}
    return {"reference": "arc_agi_1:evaluation + arc_agi_2:evaluation (520 tasks)", "reference_tasks": len(refs),
            "programs": len(progs), "cost": cost, "by_family": by_fam,
            "programs_solving": len(solving), "eval_tasks_solved": len({e for v in solving.values() for e in v}),
            "solving": solving,
            "errors": [{"program": f"{e.program.source}:{e.program.path}", "error": e.error,
                        "failures": e.failures, "unchecked": e.unchecked} for e in res.errors]}


def save(results: dict) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    tmp = OUT_JSON.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(OUT_JSON)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parts", default="own,eval,warm")
    ap.add_argument("--cache", type=Path, default=None, help="rule cache folder (default: a fresh one)")
    ap.add_argument("--build-reps", type=int, default=3)
    args = ap.parse_args()
    WORK.mkdir(exist_ok=True)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="rules_", dir=WORK))
    results = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {}
    results["machine"] = {"cpus": os.cpu_count(), "note": "shared machine; load average in each part's cost"}
    parts = args.parts.split(",")
    if "own" in parts:
        results["own"] = part_own(cache / "own", args.workers)
        save(results)
    if "eval" in parts:
        results["eval"] = part_eval(cache / "eval", args.workers)
        save(results)
    if "warm" in parts:
        from bench_rules_warm import part_warm

        results["warm"] = part_warm(cache / "eval", args.workers, args.build_reps)
        save(results)


if __name__ == "__main__":
    main()
