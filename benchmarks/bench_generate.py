"""RE-ARC generation: arcforge's `build --generate` against upstream's own driver, same machine, same run.

    python benchmarks/bench_generate.py [--mirror ../shared/arc-sources] [--keys 400] [--examples 25]

RE-ARC's generators (all 400 by default: their costs differ a lot, so a subset misjudges the whole) make N
examples each:

- **upstream**: `main.py`'s `generate_dataset` (its filters: verifier passes, input != output, new input)
  in a subprocess, on a temporary copy of the pinned code (matplotlib stubbed: it is not installed and
  only plots), its key list limited to the subset. Nothing of upstream is written into the project.
- **arcforge**: `build --source re_arc --generate re_arc=N` with the `[generator] keys` set to the same subset
  (the same filters; generators in the sandbox), with `--workers 1` and `--workers 2`, no build cache.

Kept examples per second end to end (imports, and for arcforge the whole build: its arc_original splits,
dedup, shards), and at the margin (the fixed cost taken off: upstream's import of its modules, arcforge's
same build without generation); the CPU time of each run's process tree (user + system), split for arcforge
into the build's own process and its children (with ``--workers 1`` the children are the sandbox workers
alone: upstream's code plus the worker's framing); the 1-minute load average around each run; the peak
memory of each run's whole process tree (sampled every 0.1 s from /proc: the driver, the build's workers
and the sandbox workers), and whether the two arcforge builds wrote byte-identical shards. The published
size (1,000 examples x 400 generators) is extrapolated from the measured rates, labelled as such, next to
the floor that upstream's own code sets (its CPU time per kept example x 400,000 / 2 cores).
Writes ``benchmarks/results/generate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
from benchmarks.bench_scale import TreePeak  # noqa: E402  (after the path is set)

CODE = ("generators.py", "verifiers.py", "dsl.py", "utils.py", "main.py")
MATPLOTLIB_STUB = {
    "matplotlib/__init__.py": "",
    "matplotlib/pyplot.py": "",
    "matplotlib/colors.py": "class ListedColormap:\n    pass\n\nclass Normalize:\n    pass\n",
}
UPSTREAM_DRIVER = textwrap.dedent("""
    import json, sys, time
    keys, n, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    t0 = time.perf_counter()
    import main
    t1 = time.perf_counter()
    everything = main.get_generators()
    main.get_generators = lambda: {k: everything[k] for k in keys}
    main.generate_dataset(path=out, seed=42, n_examples=n)
    print(json.dumps({"import_s": t1 - t0, "generate_s": time.perf_counter() - t1}))
""")


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_measured(cmd: list[str], **kw) -> tuple[subprocess.CompletedProcess, float, float, dict]:
    """Run ``cmd``; (result, wall seconds, peak MB of the summed RSS of it and all its descendants, and
    ``{"cpu_s": CPU seconds of the whole tree, "load_before", "load_after"}``)."""
    load_before, cpu0 = os.getloadavg()[0], _children_cpu()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    t0 = time.perf_counter()
    with TreePeak(proc.pid, 0.1) as peak:
        out, err = proc.communicate(timeout=4 * 3600)
        wall = time.perf_counter() - t0
    info = {
        "cpu_s": round(_children_cpu() - cpu0, 2),
        "load_before": round(load_before, 1),
        "load_after": round(os.getloadavg()[0], 1),
    }
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err), wall, peak.rss_kb / 1024, info


# --- the two runs ------------------------------------------------------------------------------------------
def run_upstream(code: Path, keys: list[str], n: int, tmp: Path) -> dict:
    work = tmp / "upstream"
    work.mkdir()
    for name in CODE:
        shutil.copy(code / name, work / name)
    for rel, text in MATPLOTLIB_STUB.items():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_text(text)
    (work / "driver.py").write_text(UPSTREAM_DRIVER)
    res, wall, peak, info = run_measured(
        [sys.executable, "driver.py", json.dumps(keys), str(n), "re_arc_out"], cwd=work
    )
    if res.returncode:
        raise SystemExit(f"upstream failed: {res.stderr[-2000:]}")
    meta = json.loads((work / "re_arc_out" / "metadata.json").read_text())
    kept = sum(len(json.loads((work / "re_arc_out" / "tasks" / f"{k}.json").read_text())) for k in keys)
    gens = sum(m["n_generations"] for m in meta.values())
    inner = json.loads(res.stdout.strip().splitlines()[-1])
    return {
        "seconds": round(wall, 2),
        "kept": kept,
        "examples_per_s": round(kept / wall, 1),
        "fixed_s": round(wall - inner["generate_s"], 2),
        "marginal_examples_per_s": round(kept / inner["generate_s"], 1),
        "generations": gens,
        "verified": sum(m["n_verified"] for m in meta.values()),
        "peak_mb": round(peak, 1),
        **info,
        "cpu_ms_per_kept": round(1000 * info["cpu_s"] / kept, 2),
    }


BUILD = textwrap.dedent("""
    import json, resource, sys
    from pathlib import Path
    from arcforge.build.pipeline import build
    mdir, out, n, workers = sys.argv[1:5]
    s = build(Path(out), sources=["re_arc"], manifests_dir=Path(mdir), generate={"re_arc": int(n)},
              workers=int(workers), use_cache=False)
    me = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({**s.generated.get("re_arc", {}), "build_process_cpu_s": me.ru_utime + me.ru_stime}))
""")


def run_arcforge(mdir: Path, out: Path, n: int, workers: int, env: dict) -> dict:
    res, wall, peak, info = run_measured(
        [sys.executable, "-c", BUILD, str(mdir), str(out), str(n), str(workers)], env=env, cwd=ROOT
    )
    if res.returncode:
        raise SystemExit(f"arcforge build failed: {res.stderr[-2000:]}")
    counts = json.loads(res.stdout.strip().splitlines()[-1])
    own = round(counts.pop("build_process_cpu_s"), 2)
    kept = counts.get("kept", 0)
    return {
        "seconds": round(wall, 2),
        "kept": kept,
        "examples_per_s": round(kept / wall, 1),
        "tasks": counts.get("tasks", 0),
        "counts": counts,
        "peak_mb": round(peak, 1),
        **info,
        "build_process_cpu_s": own,
        "children_cpu_s": round(info["cpu_s"] - own, 2),
    }


def _runs(code: Path, mdir: Path, keys: list[str], n: int, tmp: Path, env: dict) -> dict:
    """Upstream, then arcforge without generating (its fixed cost, per worker count), with --workers 1, 2."""
    upstream = run_upstream(code, keys, n, tmp)
    fixed = {w: run_arcforge(mdir, tmp / f"f{w}", 0, w, env) for w in (1, 2)}
    runs = {"upstream": upstream, "fixed": fixed}
    for w in (1, 2):
        x = runs[f"arcforge_workers_{w}"] = run_arcforge(mdir, tmp / f"o{w}", n, w, env)
        x["fixed_s"] = fixed[w]["seconds"]
        x["marginal_examples_per_s"] = round(x["kept"] / max(0.01, x["seconds"] - fixed[w]["seconds"]), 1)
    runs["byte_identical_workers_1_2"] = _shards(tmp / "o1") == _shards(tmp / "o2")
    return runs


def _profile(runs: dict) -> dict:
    """CPU milliseconds per kept example: upstream's whole driver (its generators, verifiers and difficulty
    measures: the floor), arcforge's sandbox workers (upstream's code + the worker's part) and its build
    process (reading the workers' frames, tasks, dedup, shards), both with --workers 1, fixed costs apart."""
    up, w1, f1 = runs["upstream"], runs["arcforge_workers_1"], runs["fixed"][1]
    kept = w1["kept"]
    sandbox = 1000 * w1["children_cpu_s"] / kept
    build_ms = 1000 * (w1["build_process_cpu_s"] - f1["build_process_cpu_s"]) / kept
    return {
        "upstream_driver_cpu_ms_per_kept": up["cpu_ms_per_kept"],
        "sandbox_workers_cpu_ms_per_kept": round(sandbox, 2),
        "build_process_cpu_ms_per_kept": round(build_ms, 2),
        "arcforge_total_cpu_ms_per_kept": round(sandbox + build_ms, 2),
        "arcforge_over_upstream_cpu": round((sandbox + build_ms) / up["cpu_ms_per_kept"], 3),
        "fixed_build_cpu_s": round(f1["cpu_s"], 2),
    }


def _report(runs: dict, keys: list[str], all_keys: list[str], n: int, load_before: float) -> dict:
    up, w1, w2 = runs["upstream"], runs["arcforge_workers_1"], runs["arcforge_workers_2"]
    full = 400 * 1000
    prof = _profile(runs)
    every = f"every {len(all_keys) // len(keys)}th key" if len(keys) < len(all_keys) else "all"
    return {
        "what": f"RE-ARC, {len(keys)} generators ({every}) x {n} kept examples: upstream main.py "
        "generate_dataset vs arcforge build --generate, same filters",
        "machine": f"{os.cpu_count()} CPUs shared with other work "
        f"(1-min load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after: rates vary from run to run)",
        "upstream": up,
        "arcforge_workers_1": w1,
        "arcforge_workers_2": w2,
        "profile": prof,
        "ratio_workers_2_vs_upstream": round(w2["examples_per_s"] / up["examples_per_s"], 2),
        "ratio_workers_1_vs_upstream": round(w1["examples_per_s"] / up["examples_per_s"], 2),
        "marginal_ratio_workers_2_vs_upstream": round(
            w2["marginal_examples_per_s"] / up["marginal_examples_per_s"], 2
        ),
        "byte_identical_workers_1_2": runs["byte_identical_workers_1_2"],
        "extrapolated_published_size": {
            "label": "EXTRAPOLATED, not measured: 1,000 examples x 400 generators = fixed cost + "
            "examples at the "
            f"measured marginal rate ({len(keys)} keys x {n} examples)",
            "examples": full,
            "upstream_minutes": round((up["fixed_s"] + full / up["marginal_examples_per_s"]) / 60, 1),
            "arcforge_workers_2_minutes": round(
                (w2["fixed_s"] + full / w2["marginal_examples_per_s"]) / 60, 1
            ),
            "floor_minutes_2_cores": round(full * up["cpu_ms_per_kept"] / 1000 / 2 / 60, 1),
            "arcforge_cpu_minutes_2_cores": round(
                (prof["fixed_build_cpu_s"] + full * prof["arcforge_total_cpu_ms_per_kept"] / 1000) / 2 / 60, 1
            ),
        },
    }


def _shards(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.parquet"))}


def limit_keys(src: Path, dst: Path, keys: list[str]) -> Path:
    """``dst``: a copy of the manifests folder ``src`` whose re_arc manifest runs only ``keys``."""
    if src != dst:
        shutil.copytree(src, dst)
    text = (dst / "re_arc.toml").read_text()
    (dst / "re_arc.toml").write_text(
        text.replace("memory_mb = 1024\n", f"memory_mb = 1024\nkeys = {json.dumps(keys)}\n")
    )
    return dst


def prepare(tmp: Path, mirror: str) -> tuple[dict, Path, object, Path, list[str]]:
    """A private ARCFORGE_HOME under ``tmp`` with re_arc fetched from ``mirror``: (the environment for the
    runs, a manifests folder holding re_arc alone, its manifest, the checkout, every generator key)."""
    env = {**os.environ, "ARCFORGE_HOME": str(tmp / "home"), "PYTHONPATH": str(ROOT)}
    os.environ["ARCFORGE_HOME"] = env["ARCFORGE_HOME"]
    from arcforge.sources.fetch import fetch_sources
    from arcforge.sources.generate import driver
    from arcforge.sources.manifest import MANIFEST_DIR, load_manifests

    mdir = tmp / "manifests"
    mdir.mkdir()
    for name in ("re_arc.toml", "digests.lock"):
        shutil.copy(MANIFEST_DIR / name, mdir / name)
    m = load_manifests(mdir)["re_arc"]
    (r,) = fetch_sources([m], mirror=mirror)
    assert r.ok, r
    code = Path(r.path)
    return env, mdir, m, code, driver(code, m.settings).keys()


def re_arc_pin(m, code: Path) -> dict:
    from arcforge.sources.fetch import read_marker

    return {"commit": m.commit, "digest": (read_marker(code) or {}).get("digest", "")}


def parser(doc: str) -> argparse.ArgumentParser:
    """The command line's parser, with the ``--mirror`` option both RE-ARC benchmarks take."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--mirror", default=os.environ.get("ARCFORGE_MIRROR") or str(ROOT.parent / "shared" / "arc-sources")
    )
    return ap


def main() -> int:
    ap = parser(__doc__)
    ap.add_argument("--keys", type=int, default=400, help="generators: every (400 / KEYS)-th key")
    ap.add_argument("--examples", type=int, default=25, help="kept examples per generator")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "generate.json")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        env, mdir, m, code, all_keys = prepare(tmp, args.mirror)
        keys = all_keys[:: max(1, len(all_keys) // args.keys)][: args.keys]
        limit_keys(mdir, mdir, keys)
        load_before = os.getloadavg()[0]
        runs = _runs(code, mdir, keys, args.examples, tmp, env)
        pin = re_arc_pin(m, code)
    report = _report(runs, keys, all_keys, args.examples, load_before)
    report["re_arc"] = pin
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    print(json.dumps(report, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
