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
3. ``warm``: on the cache the ``eval`` part left, ``build --exclude-eval --check-rules`` of every mirrored
   source beside the same build without the rule level (medians of alternated runs, wall and CPU): what a
   rebuild pays; and the stage alone for all 908 programs (catalogue, reference key, one summary read).

The machine is shared: wall times are what this run saw (the 1-min load average is recorded beside them);
the CPU seconds of the workers and of arcforge say what the check costs free cores. Each part is written to
the JSON as soon as it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
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
REARC = BARC = (
    Path()
)  # the fetched checkouts (``fetched``): programs run from the verified cache, as in a build
SPLITS = {
    ("arc_agi_1", "training"): SHARED / "fchollet" / "ARC-AGI" / "data" / "training",
    ("arc_agi_1", "evaluation"): SHARED / "fchollet" / "ARC-AGI" / "data" / "evaluation",
    ("arc_agi_2", "evaluation"): SHARED / "arcprize" / "ARC-AGI-2" / "data" / "evaluation",
}


def fetched(home: Path) -> None:
    """Fetch RE-ARC and BARC from the mirror into ``home`` (digest-checked, as `arcforge fetch` does)."""
    global REARC, BARC
    from arcforge import paths
    from arcforge.sources.fetch import fetch_sources
    from arcforge.sources.manifest import load_manifests

    os.environ["ARCFORGE_HOME"] = str(home)
    ms = load_manifests()
    got = fetch_sources([ms["re_arc"], ms["barc"]], mirror=SHARED)
    if any(r.status not in ("fetched", "cached") for r in got):
        raise SystemExit(f"fetch failed: {[(r.name, r.status, r.error) for r in got]}")
    REARC = paths.source_dir(ms["re_arc"].owner, ms["re_arc"].repo_name, ms["re_arc"].commit)
    BARC = paths.source_dir(ms["barc"].owner, ms["barc"].repo_name, ms["barc"].commit)


def reference(*splits: tuple[str, str]):
    from arcforge.build.rules import references

    return references(reference_table(*splits))


def reference_table(*splits: tuple[str, str]) -> pa.Table:
    rows = []
    for source, split in splits:
        for f in sorted(SPLITS[(source, split)].glob("*.json")):
            d = json.loads(f.read_text())
            rows.append(
                {
                    "id": f"{source}/{split}/{f.stem}",
                    "source": source,
                    "split": split,
                    "train": d["train"],
                    "test": d["test"],
                }
            )
    return pa.Table.from_pylist(rows)


LIMIT: int | None = None  # --limit: programs per family (a quick look, not the benchmark)


def programs(families: list[str]):
    from arcforge.sources import programs as P

    out = []
    if "re_arc" in families:
        out += P.re_arc_verifiers(REARC)[:LIMIT]
    if "barc_seeds" in families:
        out += P.barc_seeds(BARC)[:LIMIT]
    if "barc_synthetic" in families:
        out += P.barc_synthetic(BARC)[:LIMIT]
    return out


class Timed:
    """Cost of the checks run so far: wall, CPU of the sandbox workers (RUSAGE_CHILDREN) and of this process
    (RUSAGE_SELF: arcforge's side, comparing answers), calls, and the 1-min load average before and after."""

    def __init__(self, workers: int):
        from arcforge.build.rules import RuleConfig

        self.config = RuleConfig(workers=workers)
        self.wall = self.cpu = self.self_cpu = 0.0
        self.calls = self.checked = self.cached = self.run = self.sandboxes = 0
        self.load = [round(os.getloadavg()[0], 2)]

    def check(self, progs, refs, cache_dir: Path):
        from arcforge.build.rules import RuleCache, check
        from arcforge.cli.logprogress import PlainProgress

        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        res = check(
            progs,
            {"re_arc": REARC, "barc": BARC},
            refs,
            config=self.config,
            cache=RuleCache(cache_dir, self.config),
            progress=PlainProgress(sys.stderr),
        )
        self.wall += time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine2 = resource.getrusage(resource.RUSAGE_SELF)
        self.cpu += (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        self.self_cpu += (mine2.ru_utime - mine.ru_utime) + (mine2.ru_stime - mine.ru_stime)
        self.calls, self.checked, self.cached = (
            self.calls + res.calls,
            self.checked + res.checked,
            self.cached + res.cached,
        )
        self.run += res.programs_run
        self.sandboxes += res.sandboxes
        self.load.append(round(os.getloadavg()[0], 2))
        return res

    def cost(self) -> dict:
        c = self.config
        return {
            "wall_s": round(self.wall, 1),
            "worker_cpu_s": round(self.cpu, 1),
            "arcforge_cpu_s": round(self.self_cpu, 1),
            "calls": self.calls,
            "checked": self.checked,
            "cached": self.cached,
            "programs_run": self.run,
            "sandboxes": self.sandboxes,
            "load_avg_1min": self.load,
            "workers": c.workers,
            "call_s": c.call_s,
            "wall_limit_s": c.wall_s,
            "memory_mb": c.memory_mb,
            "max_failures": c.max_failures,
            "max_total_failures": c.max_total_failures,
            "program_s": c.program_s,
        }


def chunks(progs, size: int = 100):
    return [progs[i : i + size] for i in range(0, len(progs), size)]


def family_of(p) -> str:
    return {"re_arc.verifiers": "re_arc", "barc.seeds": "barc_seeds", "barc.synthetic": "barc_synthetic"}[
        p.family
    ]


def part_own(cache: Path, workers: int, results: dict) -> None:
    refs = reference(("arc_agi_1", "training"))
    progs = programs(["re_arc", "barc_seeds"])
    timed, matches, errors, done = Timed(workers), [], {}, []
    for chunk in chunks(progs):
        res = timed.check(chunk, refs, cache)
        matches += res.matches
        errors.update({(e.program.source, e.program.path): e for e in res.errors})
        done += chunk
        results["own"] = own_summary(done, len(progs), matches, errors, timed)
        save(results)


def own_summary(done, total, matches, errors, timed) -> dict:
    own = {(p.source, p.path) for p, r, _ in matches if r.eval_id in p.derived_from}
    out: dict = {
        "reference": "arc_agi_1:training (400 tasks)",
        "programs_done": len(done),
        "programs_total": total,
        "complete": len(done) == total,
        "cost": timed.cost(),
    }
    for fam in ("re_arc", "barc_seeds"):
        ps = [p for p in done if family_of(p) == fam]
        if not ps:
            continue
        misses = [p for p in ps if (p.source, p.path) not in own]
        out[fam] = {
            "programs": len(ps),
            "own_rule": len(ps) - len(misses),
            "share": round((len(ps) - len(misses)) / len(ps), 4),
            "misses": [
                {
                    "program": p.path,
                    "derived_from": p.derived_from[0],
                    "error": errors[(p.source, p.path)].error if (p.source, p.path) in errors else "",
                }
                for p in misses
            ],
            "other_training_tasks_solved": sorted(
                f"{p.path} -> {r.eval_id}"
                for p, r, _ in matches
                if family_of(p) == fam and r.eval_id not in p.derived_from
            ),
        }
    return out


def part_eval(cache: Path, workers: int, results: dict) -> None:
    """Every program against the 520 evaluation tasks in one check, as a build runs it (cold cache)."""
    refs = reference(("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation"))
    progs = programs(["re_arc", "barc_seeds", "barc_synthetic"])
    timed = Timed(workers)
    res = timed.check(progs, refs, cache)
    results["eval"] = eval_summary(progs, len(progs), refs, res.matches, res.errors, timed)
    save(results)


def eval_summary(done, total, refs, matches, errors, timed) -> dict:
    solving: dict[str, list[str]] = {}
    for p, r, _ in matches:
        solving.setdefault(f"{p.source}:{p.path}", []).append(r.eval_id)
    by_fam = {}
    for fam in ("re_arc", "barc_seeds", "barc_synthetic"):
        ps = [p for p in done if family_of(p) == fam]
        keys = {f"{p.source}:{p.path}" for p in ps}
        by_fam[fam] = {
            "programs": len(ps),
            "solving_an_eval_task": sum(1 for k in solving if k in keys),
            "with_failures": sum(1 for e in errors if family_of(e.program) == fam),
            "given_up": sum(1 for e in errors if family_of(e.program) == fam and e.unchecked),
            "unchecked": sum(e.unchecked for e in errors if family_of(e.program) == fam),
        }
    return {
        "reference": "arc_agi_1:evaluation + arc_agi_2:evaluation",
        "reference_tasks": len(refs),
        "programs_done": len(done),
        "programs_total": total,
        "complete": len(done) == total,
        "cost": timed.cost(),
        "by_family": by_fam,
        "checks": len(done) * len(refs),
        "unchecked": sum(e.unchecked for e in errors),
        "programs_solving": len(solving),
        "eval_tasks_solved": len({e for v in solving.values() for e in v}),
        "solving": solving,
        "errors": [
            {
                "program": f"{e.program.source}:{e.program.path}",
                "error": e.error,
                "failures": e.failures,
                "unchecked": e.unchecked,
            }
            for e in errors
        ],
    }


def _cpu() -> float:
    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def _timed(fn) -> tuple[float, float, object]:
    t0, c0 = time.perf_counter(), _cpu()
    out = fn()
    return time.perf_counter() - t0, _cpu() - c0, out


def part_warm(cache: Path, reps: int) -> dict:
    """What a rebuild pays for the rule level, on the warm cache the ``eval`` part left in
    ``warm_home/rules``: ``build --exclude-eval`` of every mirrored source with ``--check-rules`` beside the
    same build without it (medians of ``reps`` alternated runs, wall and CPU), and the stage alone (catalogue
    of all 908 programs, reference key, summary) beside the build."""
    from arcforge.build.pipeline import build
    from arcforge.build.rule_stage import build_programs
    from arcforge.build.rules import RefTable, RuleCache, RuleConfig, check
    from arcforge.sources.fetch import fetch_sources
    from arcforge.sources.manifest import load_manifests

    home = cache / "warm_home"
    os.environ["ARCFORGE_HOME"] = str(home)
    ms = [m for m in load_manifests().values() if (SHARED / m.owner / m.repo_name).is_dir()]
    fetch_sources(ms, mirror=SHARED)
    table = reference_table(("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation"))
    config = RuleConfig()
    checkouts = [("re_arc", "michaelhodel/re-arc", REARC), ("barc", "xu3kev/BARC", BARC)]

    def stage():
        progs, dirs = build_programs(checkouts)
        return check(progs, dirs, RefTable(table), config=config, cache=RuleCache(home / "rules", config))

    out = cache / "warm_out"
    first = build(out / "first", exclude_eval=True, check_rules=True)  # parse cache, catalogue, summary
    first_stage = stage()
    runs: dict[str, list] = {"build": [], "build_check": [], "stage": []}
    stats = None
    for i in range(reps):
        runs["build"].append(
            _timed(lambda i=i: build(out / f"b{i}", exclude_eval=True, check_rules=False))[:2]
        )
        *t, stats = _timed(lambda i=i: build(out / f"c{i}", exclude_eval=True, check_rules=True))
        runs["build_check"].append(t)
        *t, res = _timed(stage)
        runs["stage"].append(t)
        assert res.summary and res.calls == 0 and stats.rules["summary"] == 1, (res, stats.rules)
    med = {
        k: (statistics.median(w for w, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()
    }
    same = all(
        (out / "c0" / "reports" / f"{n}.jsonl").read_bytes()
        == (out / "first" / "reports" / f"{n}.jsonl").read_bytes()
        for n in ("excluded", "reported", "rules", "rule_errors", "rule_lineage")
    )
    return {
        "reps": reps,
        "load_avg_1min": round(os.getloadavg()[0], 2),
        "build_s": round(med["build"][0], 3),
        "build_cpu_s": round(med["build"][1], 3),
        "build_check_s": round(med["build_check"][0], 3),
        "build_check_cpu_s": round(med["build_check"][1], 3),
        "ratio": round(med["build_check"][0] / med["build"][0], 4),
        "cpu_ratio": round(med["build_check"][1] / med["build"][1], 4),
        "build_programs": stats.rules["programs"],
        "first_build_programs_run": first.rules["programs_run"],
        "reports_identical_to_first": same,
        "stage_s": round(med["stage"][0], 3),
        "stage_cpu_s": round(med["stage"][1], 3),
        "stage_programs": len(build_programs(checkouts)[0]),
        "stage_references": first_stage.references,
        "stage_ratio": round((med["build"][0] + med["stage"][0]) / med["build"][0], 4),
        "runs": {k: [[round(w, 3), round(c, 3)] for w, c in v] for k, v in runs.items()},
        "note": "build --exclude-eval of every mirrored source with --check-rules "
        f"({stats.rules['programs']} "
        f"programs made tasks of it) beside the same build without it; the stage alone: catalogue "
        f"of all programs, reference key, summary read; medians of {reps} alternated runs",
    }


def save(results: dict) -> None:
    """Merge this run's parts into the JSON (parts may run in separate processes, side by side)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    merged = json.loads(OUT_JSON.read_text()) if OUT_JSON.is_file() else {}
    merged.update(results)
    tmp = OUT_JSON.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(merged, indent=1) + "\n")
    tmp.replace(OUT_JSON)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--parts", default="own,eval,warm")
    ap.add_argument("--cache", type=Path, default=None, help="rule cache folder (default: a fresh one)")
    ap.add_argument("--build-reps", type=int, default=5)
    ap.add_argument("--limit", type=int, default=None, help="programs per family (a quick look)")
    args = ap.parse_args()
    global LIMIT
    LIMIT = args.limit
    WORK.mkdir(exist_ok=True)
    cache = args.cache or Path(tempfile.mkdtemp(prefix="rules_", dir=WORK))
    fetched(cache / "home")
    results: dict = {}
    results["machine"] = {"cpus": os.cpu_count(), "note": "shared machine; load average in each part's cost"}
    parts = args.parts.split(",")
    if "eval" in parts:
        part_eval(cache / "warm_home" / "rules", args.workers, results)  # the warm part's builds reuse it
    if "own" in parts:
        part_own(cache / "own", args.workers, results)
    if "warm" in parts:
        results["warm"] = part_warm(cache, args.build_reps)
        save(results)


if __name__ == "__main__":
    main()
