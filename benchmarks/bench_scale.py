"""Scale of `arcforge build`: JSON parser choice, the 11 mirrored sources against the stdlib-JSON floor,
100k and 1M tasks end to end, and scaling with the worker count. Writes benchmarks/results/scale.json.

    python benchmarks/bench_scale.py                       # every part, default sizes
    python benchmarks/bench_scale.py --parts json,sources  # some parts (results are merged into the file)
    python benchmarks/bench_scale.py --parts local,synthetic --sizes 100000,1000000 --big-workers all

Parts:
- ``json``: stdlib ``json``, orjson and msgspec decoding the bytes of every file the 11-source build reads
  (in memory, CPU seconds, best of ``--repeat``); the fastest is the one ``arcforge.task.loads_json`` uses.
- ``sources``: the floor (enumerate + read + stdlib ``json.loads`` of exactly the files the build reads,
  serial) and ``build --no-cache --exclude-eval`` with 1, 2 and all workers, alternated ``--repeat`` times
  in one run; medians and ratios to the floor of the same run.
- ``local``: a folder of N generated tasks (distinct random grids) built end to end with the two ARC-AGI
  evaluation sets as the reference (parse, validate, dedup with ``--exclude-eval``, write). Up to 100k
  tasks: one standard JSON file per task; above: RE-ARC-style files of 1000 tasks each.
- ``synthetic``: ``--synthetic-tasks N`` end to end the same way.

Every build runs in its own process. Wall time; CPU time of the build and its workers (rusage of waited
children); peak memory = the largest sum over the build's process tree of RSS and of PSS (PSS shares
copy-on-write pages between the parent and its forked workers fairly; RSS counts them twice), sampled
every 0.2 s; and the load average (others' work on the shared machine) before and after.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "scale.json"
sys.path.insert(0, str(ROOT))


# --- measuring one process tree -----------------------------------------------------------------------------
def proc_tree(pid: int) -> list[int]:
    """``pid`` and its live descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):  # the process ended meanwhile
            for task in Path(f"/proc/{p}/task").iterdir():  # children of every thread, not only the main one
                with contextlib.suppress(OSError):
                    todo += [int(c) for c in (task / "children").read_text().split()]
    return out


def mem_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in kB; zeros once it has ended."""
    rss = pss = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Rss:"):
                rss = int(line.split()[1])
            elif line.startswith("Pss:"):
                pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class TreePeak:
    """``with TreePeak(pid, every):`` samples the summed RSS and PSS of ``pid`` and its descendants every
    ``every`` seconds in a thread; ``rss_kb`` and ``pss_kb`` are the peaks seen."""

    def __init__(self, pid: int, every: float) -> None:
        self.pid, self.every = pid, every
        self.rss_kb = self.pss_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            mems = [mem_kb(p) for p in proc_tree(self.pid)]
            self.rss_kb = max(self.rss_kb, sum(m[0] for m in mems))
            self.pss_kb = max(self.pss_kb, sum(m[1] for m in mems))
            self._stop.wait(self.every)

    def __enter__(self) -> TreePeak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(cmd: list[str], env: dict) -> dict:
    """Run ``cmd``; wall, CPU (user+sys of it and its children), peak tree RSS/PSS, load averages."""
    load0 = os.getloadavg()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with TreePeak(proc.pid, 0.2) as peak:
        out, err = proc.communicate()
        wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{err[-3000:]}")
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    res = {
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": round(peak.rss_kb / 1024),
        "peak_pss_mb": round(peak.pss_kb / 1024),
        "load_before": round(load0[0], 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    try:
        res["report"] = json.loads(out)
    except ValueError:
        res["stdout"] = out[-2000:]
    return res


# --- inputs -------------------------------------------------------------------------------------------------
def mirror_home(tmp: Path, shared: Path) -> Path:
    from arcforge.sources.manifest import load_manifests
    from tests.helpers import mirrored, populate_cache

    home = tmp / "home"
    populate_cache(home, mirrored(load_manifests(), shared), shared)
    return home


def _examples(rng: np.random.Generator, n: int) -> list[dict]:
    """``n`` random {input, output = input rotated} examples, sides 3-12, colors 0-9 (vectorized draws)."""
    hw = rng.integers(3, 13, size=(n, 2))
    cells = rng.integers(0, 10, size=int((hw[:, 0] * hw[:, 1]).sum()), dtype=np.int8)
    out, at = [], 0
    for h, w in hw.tolist():
        g = cells[at : at + h * w].reshape(h, w)
        at += h * w
        out.append({"input": g.tolist(), "output": np.rot90(g).tolist()})
    return out


def make_folder(root: Path, n: int, seed: int = 0, layout: str = "auto") -> str:
    """``n`` distinct random tasks of 4 examples (3 train + 1 test) drawn from a pool of 50,000 random
    examples (pre-encoded, so that making a million tasks takes seconds, not minutes): one standard file
    per task (``layout`` files; auto: up to 100k tasks), or RE-ARC-style lists of 1000 tasks (4000
    examples) per file (``layout`` lists; auto: above 100k)."""
    import msgspec

    rng = np.random.default_rng(seed)
    pool = [msgspec.json.encode(e) for e in _examples(rng, 50_000)]
    per_file = 1 if layout == "files" or (layout == "auto" and n <= 100_000) else 1000
    for f in range(-(-n // per_file)):
        d = root / f"part{f // 1000:04d}"
        d.mkdir(parents=True, exist_ok=True)
        k = min(per_file, n - f * per_file)
        ex = [pool[i] for i in rng.integers(0, len(pool), size=4 * k).tolist()]
        if per_file == 1:
            doc = b'{"train":[' + b",".join(ex[:3]) + b'],"test":[' + ex[3] + b"]}"
        else:
            doc = b"[" + b",".join(ex) + b"]"
        (d / f"t{f:07d}.json").write_bytes(doc)
    return (
        "one standard JSON file per task" if per_file == 1 else "RE-ARC-style lists, 1000 tasks per file"
    ) + "; examples drawn from a pool of 50,000 random grids (sides 3-12)"


# --- parts --------------------------------------------------------------------------------------------------
def part_json(home: Path, repeat: int) -> dict:
    os.environ["ARCFORGE_HOME"] = str(home)
    from arcforge.build.pipeline import plan_sources
    from arcforge.sources.manifest import load_manifests
    from arcforge.sources.members import ZipCache, glob_members, plain_files

    blobs = []
    for p in plan_sources(load_manifests(None), None, [], [], 0, 0):
        files = plain_files(p.root)
        with ZipCache() as zips:
            for tg in p.manifest.tasks:
                blobs += [
                    m.read() for m in glob_members(p.root, tg.include, tg.exclude, zips=zips, files=files)
                ]
    import re

    import msgspec

    parsers = {"json (stdlib)": json.loads, "msgspec": msgspec.json.Decoder().decode}
    try:  # not a dependency: measured when installed (pip install orjson)
        import orjson

        long_int = re.compile(rb"[0-9]{19}")

        def orjson_exact(b: bytes):  # orjson makes floats of integers beyond 64 bits: exactness needs a scan
            return json.loads(b) if long_int.search(b) else orjson.loads(b)

        parsers |= {"orjson": orjson.loads, "orjson + 64-bit guard": orjson_exact}
    except ImportError:
        pass
    best = {name: float("inf") for name in parsers}
    for _ in range(repeat):  # alternate, so a busy moment hurts all parsers alike
        for name, fn in parsers.items():
            t = time.process_time()
            for b in blobs:
                fn(b)
            best[name] = min(best[name], time.process_time() - t)
    base = best["json (stdlib)"]
    exact = {k: v for k, v in best.items() if k != "orjson"}  # results equal to json's for every input
    return {
        "files": len(blobs),
        "mb": round(sum(map(len, blobs)) / 1e6, 1),
        "repeat": repeat,
        "cpu_s": {k: round(v, 3) for k, v in best.items()},
        "x_stdlib": {k: round(v / base, 3) for k, v in best.items()},
        "fastest": min(best, key=best.get),
        "fastest_exact": min(exact, key=exact.get),
    }


def part_sources(home: Path, tmp: Path, repeat: int, worker_counts: list[int]) -> dict:
    """In-process timings (``work_*``: after the interpreter started and imported arcforge, as the floor) and
    whole-process ones (``wall_s``/``cpu_s``: what a user waits for, interpreter start included)."""
    env = {**os.environ, "ARCFORGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    load_start = [round(x, 2) for x in os.getloadavg()]  # 1, 5 and 15 min: others' work on the machine
    floor_cmd = [sys.executable, str(ROOT / "benchmarks" / "bench_build.py"), "--child", "floor", "-", ""]
    runs: dict[str, list[dict]] = {"floor": [], **{f"build_w{w}": [] for w in worker_counts}}
    for _ in range(repeat):  # alternate, so a busy moment on the shared machine hurts every variant alike
        r = measure(floor_cmd, env)
        rep = r.pop("report")
        runs["floor"].append(
            {**r, "work_wall_s": rep["wall"], "work_cpu_s": rep.get("cpu"), "files": rep["files"]}
        )
        for w in worker_counts:
            cmd = [sys.executable, __file__, "--child-build", str(tmp / f"src{w}"), str(w)]
            r = measure(cmd, env)
            rep = r.pop("report")
            runs[f"build_w{w}"].append(
                {
                    **r,
                    "work_wall_s": rep["wall"],
                    "work_cpu_s": rep["cpu"],
                    "tasks_found": rep["found"],
                    "tasks_written": rep["tasks"],
                }
            )
    keys = ("work_wall_s", "work_cpu_s", "wall_s", "cpu_s", "peak_rss_mb", "peak_pss_mb", "load_before")
    med = {
        k: {m: round(statistics.median(x[m] for x in v), 3) for m in keys if v[0].get(m) is not None}
        for k, v in runs.items()
    }
    f = med["floor"]
    for v in med.values():
        v["x_floor_work_wall"] = round(v["work_wall_s"] / f["work_wall_s"], 2)
        v["x_floor_wall"] = round(v["wall_s"] / f["wall_s"], 2)
        v["x_floor_cpu"] = round(v["cpu_s"] / f["cpu_s"], 2)
    b = runs[f"build_w{worker_counts[0]}"][0]
    same = len({json.dumps(_tree_digest(tmp / f"src{w}")) for w in worker_counts}) == 1
    return {
        "repeat": repeat,
        "loadavg_start": load_start,
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
        "files": runs["floor"][0]["files"],
        "tasks_found": b["tasks_found"],
        "tasks_written": b["tasks_written"],
        "median": med,
        "runs": runs,
        "identical_output_across_workers": same,
    }


def child_build(out: str, workers: int) -> dict:
    """``build --no-cache --exclude-eval`` of every fetched source, timed after the imports (as the floor)."""
    from arcforge.build.pipeline import build

    t, c = time.perf_counter(), _cpu()
    stats = build(Path(out), exclude_eval=True, use_cache=False, workers=workers)
    return {
        "wall": time.perf_counter() - t,
        "cpu": _cpu() - c,
        "tasks": stats.total_tasks,
        "found": sum(sum(s.values()) for s in stats.found.values()),
    }


def child_big(out: str, workers: int, kwargs: dict) -> dict:
    """One big build (``--no-cache --exclude-eval``), with the time of its stages."""
    from arcforge.build.pipeline import build

    marks: dict[str, float] = {}

    class Stages:  # arcforge.progress.Progress that notes when the parse and write stages start and end
        def start(self, key, description, total=None, *, unit="items"):
            marks[f"{key}.start"] = time.perf_counter()

        def finish(self, key):
            marks[f"{key}.end"] = time.perf_counter()

        def advance(self, key, amount=1):
            pass

        def update(self, key, **kw):
            pass

    t = time.perf_counter()
    kwargs["local"] = [Path(p) for p in kwargs.get("local", [])]
    stats = build(Path(out), exclude_eval=True, use_cache=False, workers=workers, progress=Stages(), **kwargs)
    wall = time.perf_counter() - t
    parse = marks["parse.end"] - marks["parse.start"]
    write = marks["write.end"] - marks["write.start"]
    return {
        "wall": wall,
        "tasks": stats.total_tasks,
        "found": sum(sum(s.values()) for s in stats.found.values()),
        "stages": {
            "parse": round(parse, 1),
            "dedup_and_counts": round(marks["write.start"] - marks["parse.end"], 1),
            "write": round(write, 1),
            "imports_and_rest": round(wall - parse - write - (marks["write.start"] - marks["parse.end"]), 1),
        },
    }


def _cpu() -> float:
    """CPU seconds of this process and of its finished children (the build's workers once it returns)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def _tree_digest(folder: Path) -> dict:
    import hashlib

    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def part_big(
    kind: str, home: Path, tmp: Path, sizes: list[int], worker_counts: list[int], layout: str = "auto"
) -> list[dict]:
    env = {**os.environ, "ARCFORGE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    rows = []
    layout_arg = layout
    for n in sizes:
        layout = f"--synthetic-tasks {n}"
        folder = tmp / f"local{n}"
        if kind == "local":
            t = time.perf_counter()
            layout = make_folder(folder, n, layout=layout_arg)
            made = time.perf_counter() - t
        for w in worker_counts:
            # ARC-AGI-1/2 come along as the evaluation reference of --exclude-eval
            kwargs = (
                {"sources": ["arc_agi_1", "arc_agi_2"], "local": [str(folder)]}
                if kind == "local"
                else {"sources": ["arc_agi_1", "arc_agi_2", "synthetic"], "synthetic_tasks": n}
            )
            cmd = [
                sys.executable,
                __file__,
                "--child-big",
                str(tmp / f"{kind}{n}_w{w}"),
                str(w),
                json.dumps(kwargs),
            ]
            r = measure(cmd, env)
            rep = r.pop("report")
            r.update(
                tasks_found=rep["found"],
                tasks_written=rep["tasks"],
                stages_s=rep["stages"],
                tasks_per_s=round(rep["found"] / r["wall_s"]),
            )
            rows.append({"kind": kind, "tasks": n, "workers": w, "input": layout, **r})
            print(json.dumps(rows[-1]), flush=True)
            if kind == "local":
                rows[-1]["folder_made_s"] = round(made, 1)
        for w in worker_counts:
            import shutil

            shutil.rmtree(tmp / f"{kind}{n}_w{w}", ignore_errors=True)
        if kind == "local":
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
    return rows


def main() -> None:
    from arcforge.build.parallel import available_cpus

    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=str(ROOT.parent / "shared" / "arc-sources"))
    ap.add_argument("--parts", default="json,sources,local,synthetic")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument(
        "--big-workers", default="1,all", help="worker counts for the big builds (all = every CPU)"
    )
    ap.add_argument("--tmp", default=None, help="scratch folder (default: a temp dir)")
    ap.add_argument(
        "--layout",
        default="auto",
        choices=["auto", "files", "lists"],
        help="local folders: one file per task (files), RE-ARC-style lists of 1000 (lists), "
        "or files up to 100k tasks and lists above (auto)",
    )
    ap.add_argument("--results", default=str(RESULTS), help="results file (merged into when it exists)")
    args = ap.parse_args()
    results = Path(args.results)
    cpus = available_cpus()
    counts = sorted({1, 2, cpus})
    big_counts = sorted({cpus if w == "all" else int(w) for w in args.big_workers.split(",")})
    sizes = [int(s) for s in args.sizes.split(",")]
    result = json.loads(results.read_text()) if results.is_file() else {}
    result["machine"] = {
        "cpus_available": cpus,
        "cpu_count": os.cpu_count(),
        "note": "shared machine: others' load is recorded with each run",
    }
    with tempfile.TemporaryDirectory(prefix="arcforge-scale-", dir=args.tmp) as tmp:
        tmp = Path(tmp)
        home = mirror_home(tmp, Path(args.shared).resolve())
        parts = args.parts.split(",")
        if "json" in parts:
            result["json"] = part_json(home, args.repeat)
            print(json.dumps(result["json"]), flush=True)
        if "sources" in parts:
            result["sources"] = part_sources(home, tmp, args.repeat, counts)
            print(json.dumps(result["sources"]["median"]), flush=True)
        for kind in ("local", "synthetic"):
            if kind in parts:
                new = part_big(kind, home, tmp, sizes, big_counts, args.layout)
                same = {(r["kind"], r["tasks"], r["workers"], r["input"]) for r in new}
                old = [
                    r
                    for r in result.get("big", [])
                    if (r["kind"], r["tasks"], r["workers"], r["input"]) not in same
                ]
                result["big"] = old + new
                result["big"].sort(key=lambda r: (r["kind"], r["tasks"], r["input"], r["workers"]))
                results.write_text(json.dumps(result, indent=1) + "\n")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child-build":
        print(json.dumps(child_build(sys.argv[2], int(sys.argv[3]))))
    elif len(sys.argv) > 1 and sys.argv[1] == "--child-big":
        print(json.dumps(child_big(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))))
    else:
        main()
