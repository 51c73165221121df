"""Exhaustive disguise benchmark for ``--exclude-eval``; results in benchmarks/results/decontamination.json.

    python benchmarks/bench_decon.py [--seed 0] [--synthetic 10000] [--build-reps 3]

1. Every one of the 520 ARC-AGI-1/2 evaluation tasks (../shared/arc-sources) gets every disguise below,
   fresh from the seed (nothing is tuned to a fixed probe file). Each disguise is scored in its own
   ``run_dedup`` over the whole real corpus (every mirrored source, 10,385 tasks) plus the disguised
   copies: recall per disguise and level, and false positives = real tasks excluded beyond the 379
   known copies. ``goal`` marks copies that keep at least one full evaluation test pair or all pairs.
2. False positives of the real corpus alone and of synthetic tasks (``arcforge.synthetic``).
3. The near-duplicate threshold: evaluation tasks are split in two halves by the seed; the threshold is
   chosen on the tune half (edited-output copies as positives, clean real and synthetic tasks split by id
   as negatives: the middle of the thresholds with no false positive and recall within 0.05 of the best)
   and scored on the report half. The curve goes to decontamination_threshold.png.
4. Cost: ``build`` of every mirrored source with and without ``--exclude-eval``, alternated in one run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]
SHARED = ROOT.parent / "shared" / "arc-sources"
RESULTS = HERE / "results"
OUT_JSON = RESULTS / "decontamination.json"
OUT_PNG = RESULTS / "decontamination_threshold.png"
EVAL = {("arc_agi_1", "evaluation"), ("arc_agi_2", "evaluation")}
LOW = 0.05  # run with this near threshold; any higher one is applied afterwards
PLATEAU = 0.05  # recall within this of the best counts as the plateau the threshold is chosen from


def known_copies(ids: list[str]) -> set[str]:
    """The real tasks an independent check finds to copy evaluation tasks: ARC-AGI-2 training tasks named
    after an ARC-AGI-1 evaluation task, and ARC-AGI-1 training 40853293 (= 070dd51e) and caa06a1f (+ its
    ARC-AGI-2 copy; it holds the test pair of 50a16a69)."""
    ev1 = {i.rsplit("/", 1)[1] for i in ids if i.startswith("arc_agi_1/evaluation/")}
    out = {i for i in ids if i.startswith("arc_agi_2/training/") and i.rsplit("/", 1)[1] in ev1}
    return out | {"arc_agi_1/training/40853293", "arc_agi_1/training/caa06a1f", "arc_agi_2/training/caa06a1f"}


# --- disguises --------------------------------------------------------------------------------------------
def _tf(pairs, k: int, perm: np.ndarray):
    from arcforge.grids import apply_symmetry, recolor
    from arcforge.task import Pair

    f = lambda g: None if g is None else recolor(apply_symmetry(g, k), perm)  # noqa: E731
    return [Pair(f(p.input), f(p.output)) for p in pairs]


def _perm(rng, keep0: bool) -> np.ndarray:
    if keep0:
        return np.r_[0, 1 + rng.permutation(9)]
    while True:
        p = rng.permutation(10)
        if p[0] != 0:
            return p


def _edit(g, rng):
    g = g.copy()
    for _ in range(int(rng.integers(1, 4))):
        i, j = rng.integers(0, g.shape[0]), rng.integers(0, g.shape[1])
        g[i, j] = (g[i, j] + 1 + rng.integers(0, 9)) % 10
    return g


def disguises(src, rng, donors) -> list[tuple[str, list, list, bool]]:
    """(disguise, train, test, goal) for one evaluation task. ``donors``: clean real tasks to plant into."""
    from arcforge.task import Pair

    n_tr, pairs = len(src.train), src.pairs
    ident = np.arange(10)
    out = []

    def split(ps, k_test=None):
        ps = list(ps)
        idx = rng.permutation(len(ps))
        ps = [ps[i] for i in idx]
        n_test = int(rng.integers(1, len(ps))) if (k_test is None and len(ps) > 1) else (k_test or 1)
        return ps[n_test:] or ps[:1], ps[:n_test] if len(ps) > 1 else []

    def add(name, ps, goal):
        tr, te = split(ps)
        out.append((name, tr, te, goal))

    add("shuffle", pairs, True)
    for k in range(1, 8):
        add(f"sym{k}", _tf(pairs, k, ident), True)
    add("recolor_keep0", _tf(pairs, 0, _perm(rng, True)), True)
    add("recolor_move0", _tf(pairs, 0, _perm(rng, False)), True)
    if len(pairs) >= 2:
        drop = int(rng.integers(0, len(pairs)))
        kept = [p for i, p in enumerate(pairs) if i != drop]
        add("drop_1", kept, any(i >= n_tr for i in range(len(pairs)) if i != drop))
    if len(pairs) >= 3:
        keep = sorted(rng.permutation(len(pairs))[: len(pairs) - len(pairs) // 2].tolist())
        add("drop_half", [pairs[i] for i in keep], any(i >= n_tr for i in keep))
    add("drop_tests", src.train, False)
    out.append(("swap_roles", list(src.test), list(src.train), True))
    for p in src.test:
        d = donors[int(rng.integers(len(donors)))]
        k, perm = int(rng.integers(0, 8)), _perm(rng, bool(rng.integers(2)))
        add("plant_test", [*d.pairs[:3], *_tf([p], k, perm)], True)
    d = donors[int(rng.integers(len(donors)))]
    leak = src.train[int(rng.integers(n_tr))]
    add("plant_train", [*d.pairs[:3], *_tf([leak], int(rng.integers(0, 8)), _perm(rng, False))], False)
    # combinations: symmetry + recoloring (0 moved) + shuffle + a dropped pair + a foreign pair
    k = int(rng.integers(1, 8))
    t = _tf(pairs, k, _perm(rng, False))
    tests = list(range(n_tr, len(pairs)))
    keep_test = int(rng.choice(tests))
    droppable = [i for i in range(len(pairs)) if i != keep_test]
    if droppable:
        t = [p for i, p in enumerate(t) if i != int(rng.choice(droppable))]
    foreign = donors[int(rng.integers(len(donors)))].pairs[0]
    out.append(("combo_drop_add", [*t[1:], foreign], t[:1], True))
    t = _tf(pairs, int(rng.integers(1, 8)), _perm(rng, True))
    add("combo_all_pairs", [*t, *donors[int(rng.integers(len(donors)))].pairs[:2]], True)
    near = [Pair(p.input, _edit(p.output, rng)) if p.output is not None else p for p in pairs]
    add("near_edit", _tf(near, int(rng.integers(0, 8)), _perm(rng, bool(rng.integers(2)))), False)
    return out


# --- scoring ----------------------------------------------------------------------------------------------
def _run(corpus: pa.Table, extra: list):
    from arcforge.build.dedup import run_dedup
    from arcforge.task import tasks_to_table

    table = pa.concat_tables([corpus, tasks_to_table(extra)]) if extra else corpus
    return run_dedup(table, eval_splits=EVAL, exclude_eval=True, near_threshold=LOW)


def _hit(x: dict, threshold: float) -> bool:
    return x["level"] != "near_duplicate" or x["similarity"] >= threshold


def score_disguises(
    corpus: pa.Table, evals: list, donors: list, seed: int, threshold: float, known: set[str]
):
    from arcforge.task import Task

    rng = np.random.default_rng(seed)
    by_kind: dict[str, list] = {}
    for src in evals:
        for name, tr, te, goal in disguises(src, rng, donors):
            lst = by_kind.setdefault(name, [])
            tid = f"disguised/{name}/{len(lst)}"
            lst.append((Task(tid, "disguised", "training", tr, te), src.id, goal))
    rows, near_sims, fps = {}, [], set()
    for name, items in by_kind.items():
        t0 = time.perf_counter()
        r = _run(corpus, [t for t, _, _ in items])
        ex = {x["id"]: x for x in r.excluded.to_pylist()}
        levels: Counter = Counter()
        missed, goal_n, goal_hit, hit = [], 0, 0, 0
        for t, origin, goal in items:
            x = ex.get(t.id)
            ok = x is not None and _hit(x, threshold) and origin in x["eval_ids"]
            hit += ok
            levels[x["level"] if ok else "kept"] += 1
            if goal:
                goal_n += 1
                goal_hit += ok
            if not ok and len(missed) < 5:
                missed.append(
                    {
                        "id": t.id,
                        "eval_id": origin,
                        "goal": goal,
                        "got": None if x is None else [x["level"], round(x["similarity"], 3)],
                    }
                )
            if name == "near_edit":
                near_sims.append(
                    (
                        origin,
                        x["similarity"]
                        if x and x["level"] == "near_duplicate"
                        else (1.0 if x and origin in x["eval_ids"] else 0.0),
                    )
                )
        fp = {
            i
            for i, x in ex.items()
            if not i.startswith("disguised/") and i not in known and _hit(x, threshold)
        }
        fps |= fp
        rows[name] = {
            "n": len(items),
            "recall": hit / len(items),
            "goal_n": goal_n,
            "goal_recall": goal_hit / goal_n if goal_n else None,
            "levels": dict(levels),
            "false_positives": len(fp),
            "missed": missed,
            "seconds": round(time.perf_counter() - t0, 2),
        }
        print(name, json.dumps({k: v for k, v in rows[name].items() if k != "missed"}), flush=True)
    return rows, near_sims, sorted(fps)


def _near_of(r) -> dict[str, float]:
    """Non-reference id -> its exclusion similarity (near duplicates) or 1.0 (levels 1-5)."""
    return {
        x["id"]: (x["similarity"] if x["level"] == "near_duplicate" else 1.0) for x in r.excluded.to_pylist()
    }


def tune_threshold(near_sims, negatives: dict[str, float], n_neg: int, tune_ids: set[str]):
    """Choose on the tune half, report on the other; returns (chosen, curve rows)."""
    grid = [round(t, 2) for t in np.arange(0.05, 0.96, 0.01)]

    def half(tune: bool):
        pos = [s for o, s in near_sims if (o in tune_ids) == tune]
        neg = [s for i, s in negatives.items() if (zlib.crc32(i.encode()) % 2 == 0) == tune]
        return pos, neg

    curve = []
    for t in grid:
        row = {"threshold": t}
        for tag, tune in (("tune", True), ("report", False)):
            pos, neg = half(tune)
            row[f"{tag}_recall"] = sum(s >= t for s in pos) / max(1, len(pos))
            row[f"{tag}_false_positives"] = sum(s >= t for s in neg)
        curve.append(row)
    ok = [r for r in curve if r["tune_false_positives"] == 0]
    best = max(r["tune_recall"] for r in ok)
    # the middle of the zero-false-positive thresholds within 0.05 of the best recall: as far from the
    # clean tasks' similarities as from the recall cliff
    plateau = [r["threshold"] for r in ok if r["tune_recall"] >= best - PLATEAU]
    chosen = plateau[len(plateau) // 2]
    return chosen, curve, {"plateau": [plateau[0], plateau[-1]], "negatives": n_neg}


def plot(curve, chosen: float) -> None:
    from experiments.plot import Panel, draw_panels

    xs = [r["threshold"] for r in curve]
    rec = Panel(
        f"near-duplicate recall (chosen {chosen})",
        "threshold",
        "recall",
        {h: (xs, [r[f"{h}_recall"] for r in curve]) for h in ("tune", "report")},
        y_range=(0, 1),
    )
    fp = Panel(
        "false positives (clean tasks)",
        "threshold",
        "tasks",
        {h: (xs, [r[f"{h}_false_positives"] for r in curve]) for h in ("tune", "report")},
    )
    draw_panels([rec, fp], OUT_PNG)


def build_cost(reps: int) -> dict:
    """Median build wall time with and without --exclude-eval, alternated in this run (build cache warm)."""
    from arcforge.build.pipeline import build
    from arcforge.sources.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    with tempfile.TemporaryDirectory(prefix="arcforge-decon-") as tmp:
        home = Path(tmp) / "home"
        os.environ["ARCFORGE_HOME"] = str(home)
        populate_cache(home, mirrored(load_manifests(), SHARED), SHARED)
        build(Path(tmp) / "warm")  # fills the build cache: parse costs are the same for both arms
        times: dict[bool, list[float]] = {False: [], True: []}
        for i in range(reps):
            for ex in (False, True) if i % 2 == 0 else (True, False):
                t0 = time.perf_counter()
                s = build(Path(tmp) / f"out-{ex}-{i}", exclude_eval=ex)
                times[ex].append(time.perf_counter() - t0)
                if ex:
                    excluded = s.excluded
    base, dec = statistics.median(times[False]), statistics.median(times[True])
    return {
        "reps": reps,
        "build_s": round(base, 2),
        "build_exclude_eval_s": round(dec, 2),
        "ratio": round(dec / base, 3),
        "times": {str(k): [round(x, 2) for x in v] for k, v in times.items()},
        "excluded": excluded,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--synthetic", type=int, default=10_000)
    ap.add_argument("--build-reps", type=int, default=3)
    ap.add_argument("--limit", type=int, default=0, help="only the first N evaluation tasks (a quick check)")
    a = ap.parse_args()
    from dedup_data import load_mirrored

    from arcforge.build.decon import COMMON_TASKS, INFO_BITS, NEAR_THRESHOLD
    from arcforge.synthetic import generate
    from arcforge.task import tasks_from_batch, tasks_to_table

    t_all = time.perf_counter()
    corpus = load_mirrored(SHARED)
    ids = corpus.column("id").to_pylist()
    known = known_copies(ids)
    tasks = tasks_from_batch(corpus)
    evals = [t for t in tasks if (t.source, t.split) in EVAL]
    ref_table = tasks_to_table(evals)
    evals = evals[: a.limit or None]
    donors = [
        t for t in tasks if (t.source, t.split) not in EVAL and t.id not in known and t.source != "arc_agi_2"
    ]
    rng = np.random.default_rng(a.seed)
    tune_ids = {evals[i].id for i in rng.permutation(len(evals))[: len(evals) // 2]}

    # the real corpus alone, and synthetic tasks
    r = _run(corpus, [])
    real = _near_of(r)
    real_ex = {i for i, s in real.items() if s >= NEAR_THRESHOLD}
    synth = list(generate(a.synthetic, seed=a.seed))
    rs = _run(ref_table, synth)
    syn = {i: s for i, s in _near_of(rs).items() if i.startswith("synthetic")}
    negatives = {**{i: s for i, s in real.items() if i not in known}, **syn}
    n_neg = len(ids) - len(evals) - len(known) + len(synth)

    rows, near_sims, fps = score_disguises(corpus, evals, donors, a.seed, NEAR_THRESHOLD, known)
    chosen, curve, tune_info = tune_threshold(near_sims, negatives, n_neg, tune_ids)
    at = next(c for c in curve if c["threshold"] == chosen)
    plot(curve, chosen)
    goal_rows = [v for v in rows.values() if v["goal_n"]]
    res = {
        "seed": a.seed,
        "near_threshold": NEAR_THRESHOLD,
        "info_bits": INFO_BITS,
        "common_tasks": COMMON_TASKS,
        "evaluation_tasks": len(evals),
        "evaluation_test_pairs": sum(len(t.test) for t in evals),
        "corpus_tasks": len(ids),
        "disguises": rows,
        "goal": {
            "copies": sum(v["goal_n"] for v in goal_rows),
            "recall": sum(v["goal_recall"] * v["goal_n"] for v in goal_rows)
            / sum(v["goal_n"] for v in goal_rows),
        },
        "false_positives_with_disguises": fps,
        "real_corpus": {
            "excluded": len(real_ex),
            "known": len(known),
            "false_positives": sorted(real_ex - known),
            "missed_known": sorted(known - real_ex),
            "by_level": dict(Counter(x["level"] for x in r.excluded.to_pylist() if _hit(x, NEAR_THRESHOLD))),
        },
        "synthetic": {
            "tasks": len(synth),
            "excluded": sorted(i for i, s in syn.items() if s >= NEAR_THRESHOLD),
            "reported": sum(1 for x in rs.reported.to_pylist() if x["id"].startswith("synthetic")),
        },
        "threshold": {
            "chosen_on_tune_half": chosen,
            **tune_info,
            "tune": {"recall": at["tune_recall"], "false_positives": at["tune_false_positives"]},
            "report": {"recall": at["report_recall"], "false_positives": at["report_false_positives"]},
            "curve": curve,
        },
    }
    if a.build_reps:
        res["build"] = build_cost(a.build_reps)
    res["seconds"] = round(time.perf_counter() - t_all, 1)
    RESULTS.mkdir(exist_ok=True)
    OUT_JSON.write_text(json.dumps(res, indent=1, default=lambda o: o.item()) + "\n")
    print(
        json.dumps(
            {k: v for k, v in res.items() if k not in ("disguises", "threshold")},
            indent=1,
            default=lambda o: o.item(),
        )
    )
    print(
        "threshold",
        json.dumps({k: v for k, v in res["threshold"].items() if k != "curve"}, default=lambda o: o.item()),
    )


if __name__ == "__main__":
    main()
