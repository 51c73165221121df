"""Generate every benchmark table in the docs from ``benchmarks/results/*.json``, so they cannot drift.

    python benchmarks/tables.py          # rewrite the generated parts of README.md and docs/*.md
    python benchmarks/tables.py --check  # exit 1 (and name the file) if any of them is out of date

Two kinds of output:
- ``docs/benchmarks.md`` is generated whole: one section per results file, with a renderer below for the
  files we know and a plain key/value (or list-of-records) table for any other JSON file.
- In README.md and docs/*.md, the text between ``<!-- tables:NAME -->`` and ``<!-- /tables:NAME -->`` is
  replaced by the block ``NAME`` (``BLOCKS`` below).
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
sys.path.insert(0, str(HERE))

import data_value_tables as dvt  # noqa: E402  (sibling script)
import decon_tables  # noqa: E402  (sibling script)
import experiments_tables as exp  # noqa: E402  (sibling script)
import export_tables  # noqa: E402  (sibling script)
import million_tables  # noqa: E402  (sibling script)
import rules_tables  # noqa: E402  (sibling script)
import scale_tables  # noqa: E402  (sibling script)

MARK = re.compile(r"(<!-- tables:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /tables:(?P=name) -->)", re.S)


def _load(name: str):
    return json.loads((RESULTS / f"{name}.json").read_text())


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list | dict):
        return json.dumps(v, sort_keys=True)
    return "-" if v is None else str(v)


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


# --- blocks used in README.md / docs ------------------------------------------------------------------
def _source_url(s: dict) -> str:
    if s.get("kind") == "hub":
        return f"https://huggingface.co/datasets/{s['repo']}/tree/{s['commit'] or s.get('revision')}"
    return f"https://github.com/{s['repo']}/tree/{s['commit']}"


def sources_block() -> str:
    r = _load("sources")
    lines = [
        "| name | kind | repo@commit | license | tasks (after `--exclude-eval`) |",
        "|---|---|---|---|---|",
    ]
    for s in r["sources"]:
        tasks = f"{s['tasks_written']:,}" if s["status"] in ("fetched", "cached") else "not in the mirror"
        pin = s["commit"][:7] or f"{s.get('revision')} (branch; its commit is locked on first fetch)"
        lines.append(
            f"| `{s['name']}` | {s.get('kind', 'repo')} | [{s['repo']}]({_source_url(s)})"
            f"@{pin} | {s['license']} | {tasks} |"
        )
    lines += [
        "",
        f"Tasks: a build of the {sum(s['status'] in ('fetched', 'cached') for s in r['sources'])} "
        f"sources in the offline mirror with default options and `--exclude-eval` "
        f"({r['total_tasks']:,} tasks; {r['excluded']} excluded as copies of evaluation tasks, "
        f"{r['duplicates']:,} duplicates dropped, {r['quarantined']} quarantined; build "
        f"{r['build_s']:.0f} s; `benchmarks/results/sources.json`).",
    ]
    return "\n".join(lines)


def hub_jsonl_block() -> str:
    """Parsing a multi-GB BARC JSONL file: memory added and throughput vs a bare msgspec loop."""
    r = _load("hub_jsonl")
    f, ours, bare, m = r["file"], r["arcforge_barc_jsonl"], r["bare_msgspec_lines"], r["machine"]
    return "\n".join(
        [
            "| parser | seconds | MB/s | records | peak memory added |",
            "|---|---|---|---|---|",
            f"| `barc_jsonl` (decode + validate every grid into a task) | {ours['seconds']:.1f} | "
            f"{ours['mb_per_s']:.1f} "
            f"| {ours['tasks']:,} tasks | {ours['extra_peak_rss_mb']:.0f} MB |",
            f"| bare `msgspec` line loop (baseline) | {bare['seconds']:.1f} | {bare['mb_per_s']:.1f} "
            f"| {bare['records']:,} lines | {bare['extra_peak_rss_mb']:.0f} MB |",
            "",
            f"A {f['gb']:.2f} GB file ({f['lines']:,} lines) on {m['cpus']} CPUs, one thread each: "
            "`barc_jsonl` runs at "
            f"{r['throughput_vs_bare']:.2f}x the bare loop's throughput and adds "
            f"{ours['extra_peak_rss_mb']:.0f} MB of "
            f"peak memory (goal: at most {r['memory_goal_mb']} MB; `benchmarks/results/hub_jsonl.json`).",
        ]
    )


def _ttt_recipe(t: dict) -> str:
    """How the TTT examples were made and the attempts chosen, in words (older results lack the fields)."""
    aug = [
        name
        for name, on in (("symmetries", t.get("symmetries", True)), ("colors", t.get("colors", True)))
        if on
    ]
    out = f" on {' and '.join('random ' + a for a in aug)}" if aug else " on each task as it is"
    return out + (", the base model's answer second" if t.get("base_attempt") else "")


def demo_block() -> str:
    """The demo's per-family scores, without and with test-time training (benchmarks/results/demo.json)."""
    r = _load("demo")
    c = r["config"]
    lines = [
        "| family | pass@2, TTT | pass@2, no TTT | exact, TTT | exact, no TTT | baseline |",
        "|---|---|---|---|---|---|",
    ]
    for fam, f in r["per_family"].items():
        lines.append(
            f"| `{fam}` | {_pct(f['pass2_rate'])} ({f['pass2']}/{f['tasks']}) | "
            f"{_pct(f['pass2_rate_no_ttt'])} | {_pct(f['exact_match'])} | {_pct(f['exact_match_no_ttt'])} | "
            f"{_pct(f['baseline_exact'])} |"
        )
    lines.append(
        f"| all | **{_pct(r['pass2_all'])}** | {_pct(r['pass2_no_ttt'])} | {_pct(r['exact_all'])} | "
        f"{_pct(r['exact_no_ttt'])} | {_pct(r['baseline_exact'])} |"
    )
    e = c["eval"]
    m = c["model"]
    lines += [
        "",
        f"{c['steps']:,} steps in {r['train_seconds']:.0f} s ({r['s_per_step']:.3f} s/step) on "
        f"{c['torch_threads']} CPU thread(s) (d_model {m['d_model']}, {m['n_layers']} layers, "
        f"{'bf16' if c.get('bf16') else 'fp32'}), {c['tasks']:,} training tasks; {c['eval_tasks']} held-out "
        f"tasks scored in {r['eval_seconds']:.0f} s ({e['votes']} votes, rank {e['rank']}, "
        f"{e['ttt']['steps']} TTT steps{_ttt_recipe(e['ttt'])}); total {r['total_seconds']:.0f} s wall; "
        f"{r.get('measured_on', 'on a shared, busy machine')} (`benchmarks/results/demo.json`).",
    ]
    return "\n".join(lines)


def demo_real_block() -> str:
    """The demo's synthetic score next to its model's score on real ARC: the tasks the demo scores (the
    ``arcforge.demo.real.REAL_TASKS`` smallest ARC-AGI-1 evaluation tasks, the first of
    ``arc1_smallest40_cpu.json``'s per-task records, which keep its smallest-first order) and all 40 there."""
    from arcforge.demo.real import REAL_TASKS

    demo, real = _load("demo"), _load("arc1_smallest40_cpu")
    first = list(dict.fromkeys(p["task"] for p in real["per_task"]))[:REAL_TASKS]
    sub = [p for p in real["per_task"] if p["task"] in first]
    m = real["metrics"]

    def count(recs: list[dict], key: str) -> str:
        k = sum(bool(p[key]) for p in recs)
        return f"{_pct(k / max(1, len(recs)))} ({k} of {len(recs)} test inputs)"

    return (
        f"The demo's model trains on its {len(demo['per_family'])} synthetic families only: pass@2 "
        f"**{_pct(demo['pass2_all'])}** on held-out tasks of those families, and (an earlier `make demo` run "
        "of the "
        f"same model configuration) **{count(sub, 'pass2')}** on the {len(first)} smallest real ARC-AGI-1 "
        f"evaluation tasks, the real set `arcforge demo` scores and "
        f"prints beside the synthetic one when ARC-AGI-1 arrives ({count(sub, 'pass2_before')} without "
        f"test-time training; on the {real['tasks']} smallest {count(real['per_task'], 'pass2')}, "
        f"teacher-forced token accuracy {_pct(m['token_accuracy'])}: "
        f"`benchmarks/results/arc1_smallest40_cpu.json`). Offline it has no real task and says so."
    )


def install_block() -> str:
    r = _load("install")
    lines = ["| install | wheels | size (MB) | largest |", "|---|---|---|---|"]
    for name, x in r["installs"].items():
        big = ", ".join(
            f"{w.split('-')[0]} {b / 1e6:.0f}"
            for w, b in sorted(x["largest"].items(), key=lambda kv: -kv[1])[:3]
        )
        lines.append(f"| `{name}` | {x['wheels']} | {x['mb']:.1f} | {big} |")
    return "\n".join([*lines, "", f"({r['how']}; `benchmarks/results/install.json`)"])


def inference_block(stem: str = "inference") -> str:
    r = _load(stem)
    names = {
        "sequential": "sequential (previous evaluator)",
        "sequential_preallocated": "sequential, preallocated KV cache",
        "batched_votes": "batched, votes",
        "batched_poe": "batched, product of experts",
        "batched_votes_bf16": "batched, votes, bf16",
        "batched_poe_bf16": "batched, product of experts, bf16",
    }
    same = r.get("same_attempts_as_sequential", {})
    by_cpu = r.get("speedup_vs_sequential_cpu", {})
    # against the fastest of the sequential variants timed (cache, threads), each at its best round
    fastest = min(min(v) for k, v in r["seconds"].items() if k.startswith("sequential"))
    seq = r["seconds"]["sequential"]  # each round times every decoder back to back: its own ratio
    per_round = {
        k: statistics.median(a / b for a, b in zip(seq, v, strict=True)) for k, v in r["seconds"].items()
    }
    lines = [
        "| decoder | test inputs/s | vs sequential | (by CPU time) | (median of rounds) | vs fastest "
        "sequential "
        "| pass@2 | same attempts as sequential |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for k, v in r["test_inputs_per_s"].items():
        if k.startswith("sequential_") and k.endswith("_threads"):
            names[k] = f"sequential, {k.split('_')[1]} threads"
        lines.append(
            f"| {names.get(k, k)} | {v:.2f} | **{r['speedup_vs_sequential'][k]:.2f}x** | "
            f"{f'{by_cpu[k]:.2f}x' if k in by_cpu else '-'} | {per_round[k]:.2f}x | "
            f"{fastest / min(r['seconds'][k]):.2f}x | "
            f"{_pct(r['pass@2'][k])} | {_pct(same[k]) if k in same else '-'} |"
        )
    load = r.get("load_average_1min")
    threads = r["threads"], r.get("batched_threads", r["threads"])
    how = (
        f"{r['tasks']} tasks, {r['test_inputs']} test inputs x {r['votes']} votes, {threads[0]} thread(s)"
        + (f" ({threads[1]} for the batched ones)" if threads[1] != threads[0] else "")
        + f", best of {r['repeats']} alternating rounds"
        + (f", load average {min(load)}-{max(load)}" if load else "")
        + (f", {r['wall_s']:.0f} s in all" if "wall_s" in r else "")
    )
    return "\n".join([*lines, "", f"({how}; `benchmarks/results/{stem}.json`)"])


def ttt_workers_block() -> str:
    """Evaluation with test-time training: tasks fine-tuned in turn vs several at once."""
    r = _load("ttt_workers")
    n = r["threads"]
    names = {
        "one_thread": "every task in turn, 1 thread",
        "threads": f"every task in turn, {n} threads",
        "workers": f"{n} tasks at once, 1 thread each (`ttt.workers`)",
    }
    lines = [
        "| scoring | tasks/s | vs one thread | pass@2 | same records as one thread |",
        "|---|---|---|---|---|",
    ]
    for k, v in r["tasks_per_s"].items():
        lines.append(
            f"| {names.get(k, k)} | {v:.2f} | **{r['speedup_vs_one_thread'][k]:.2f}x** | "
            f"{_pct(r['pass@2'][k])} | {'yes' if r['same_records'][k] else 'no'} |"
        )
    load = r["load_average_1min"]
    t = r["eval_config"]["ttt"]
    how = (
        f"{r['tasks']} held-out easy tasks, {r['eval_config']['votes']} votes, {t['steps']} TTT steps of "
        f"{t['batch_size']} examples, {r['amp']}; best of {r['repeats']} alternating rounds, load average "
        f"{min(load)}-{max(load)}, {r['wall_s']:.0f} s in all"
    )
    return "\n".join([*lines, "", f"({how}; `benchmarks/results/ttt_workers.json`)"])


def grokfast_block(stem: str) -> Callable[[], str]:
    return lambda: exp.grokfast_summary(RESULTS / f"{stem}.json")


def generate_block() -> str:
    """RE-ARC generation, arcforge vs upstream's driver (benchmarks/results/generate.json)."""
    r = _load("generate")
    lines = [
        "| run | seconds | kept examples | examples/s | marginal examples/s | CPU s | load before/after "
        "| peak memory MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, name in (
        ("upstream", "upstream `main.py generate_dataset`"),
        ("arcforge_workers_1", "arcforge `--workers 1`"),
        ("arcforge_workers_2", "arcforge `--workers 2`"),
    ):
        x = r[key]
        lines.append(
            f"| {name} | {x['seconds']:.1f} | {x['kept']:,} | {x['examples_per_s']:.1f} | "
            f"{x['marginal_examples_per_s']:.1f} | {x['cpu_s']:.1f} | {x['load_before']:.1f} / "
            f"{x['load_after']:.1f} | {x['peak_mb']:.0f} |"
        )
    e, p = r["extrapolated_published_size"], r["profile"]
    lines += [
        "",
        f"{r['what']}; {r['machine']}. Ratio arcforge `--workers 2` / upstream: "
        f"**{r['ratio_workers_2_vs_upstream']}x** end to end, {r['marginal_ratio_workers_2_vs_upstream']}x "
        f"at the margin (fixed costs taken off: upstream {r['upstream']['fixed_s']:.1f} s of imports, "
        f"arcforge {r['arcforge_workers_2']['fixed_s']:.1f} s for the same build without generating). "
        f"`--workers 1` and `2` wrote byte-identical shards: {r['byte_identical_workers_1_2']}.",
        "",
        f"CPU per kept example: upstream's driver {p['upstream_driver_cpu_ms_per_kept']:.2f} ms (its "
        f"generators, verifiers and difficulty measures); arcforge {p['arcforge_total_cpu_ms_per_kept']:.2f} "
        "ms "
        f"= sandbox workers {p['sandbox_workers_cpu_ms_per_kept']:.2f} ms (upstream's code and the worker's "
        f"part) + build process {p['build_process_cpu_ms_per_kept']:.2f} ms "
        f"({p['arcforge_over_upstream_cpu']:.2f}x upstream's CPU).",
        "",
        f"{e['label']}: upstream about {e['upstream_minutes']:.0f} min, arcforge `--workers 2` about "
        f"{e['arcforge_workers_2_minutes']:.0f} min on this shared machine. On 2 otherwise idle cores, from "
        f"CPU time: upstream's own code needs {e['floor_minutes_2_cores']:.0f} min of both cores (its CPU "
        f"per kept example x 400,000 / 2: the floor), arcforge {e['arcforge_cpu_minutes_2_cores']:.0f} min "
        f"(`benchmarks/results/generate.json`).",
    ]
    return "\n".join(lines)


def generate_published_block() -> str:
    """RE-ARC at its published size, measured (benchmarks/results/generate_published.json)."""
    r = _load("generate_published")
    lines = [
        "| run | generators x examples | minutes | kept examples | examples/s | CPU s | peak memory MB "
        "| load before/after |",
        "|---|---|---|---|---|---|---|---|",
    ]
    runs = (
        ("arcforge_workers_2", "arcforge `--workers 2`", r["generators"]),
        ("upstream", "upstream `main.py generate_dataset` (one process)", r["generators"]),
        ("arcforge_workers_1_subset", "arcforge `--workers 1`, identity check", None),
    )
    n = r["examples"]
    for key, name, keys in runs:
        if key not in r:
            lines.append(f"| {name} | not measured | | | | | | |")
            continue
        x = r[key]
        lines.append(
            f"| {name} | {keys or x['keys']} x {n:,} | {x['seconds'] / 60:.1f} | {x['kept']:,} | "
            f"{x['examples_per_s']:.1f} | {x['cpu_s']:.0f} | {x['peak_mb']:,.0f} | "
            f"{x['load_before']:.1f} / {x['load_after']:.1f} |"
        )
    w2 = r["arcforge_workers_2"]
    ratio = r.get("ratio_workers_2_vs_upstream")
    lines += [
        "",
        f"{r['what']}, on {r['cpus']} CPUs. arcforge `--workers 2`: {w2['kept']:,} kept examples "
        f"({w2['counts'].get('tasks', 0):,} tasks) of {w2['counts'].get('attempts', 0):,} attempts in "
        f"{w2['seconds'] / 60:.1f} min, peak {w2['peak_mb'] / 1024:.2f} GB for the whole process tree"
        + (f"; **{ratio}x** upstream's kept examples per second" if ratio else "; upstream not measured")
        + ". Identity: the `--workers 1` run's tasks equal the `--workers 2` run's tasks of the same keys "
        f"(every column, {r.get('identity_tasks_compared', 0):,} tasks): "
        f"{r.get('identical_tasks_workers_1_2', 'not measured')}. Counts per filter "
        f"(`--workers 2`): "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(w2["counts"].items()))
        + " (`benchmarks/results/generate_published.json`, `python benchmarks/bench_generate_full.py`).",
        "",
        "Goals at this size: " + _published_goals(r) + ".",
    ]
    return "\n".join(lines)


def _published_goals(r: dict) -> str:
    w2, ratio, same = (
        r["arcforge_workers_2"],
        r.get("ratio_workers_2_vs_upstream"),
        r.get("identical_tasks_workers_1_2"),
    )

    def said(ok: bool | None) -> str:
        return "not measured" if ok is None else ("met" if ok else "**not met**")

    return "; ".join(
        (
            f"at most 20 min on 2 CPUs: {said(w2['seconds'] <= 1200)} ({w2['seconds'] / 60:.1f} min)",
            f"at least 1.8x upstream's examples per second: {said(None if ratio is None else ratio >= 1.8)}"
            + (f" ({ratio}x)" if ratio else ""),
            f"peak memory at most 4 GB: {said(w2['peak_mb'] <= 4096)} ({w2['peak_mb'] / 1024:.2f} GB)",
            f"the same output with `--workers 1` and `2`: {said(same)}",
        )
    )


BLOCKS: dict[str, Callable[[], str]] = {
    "sources": sources_block,
    "generate_published": generate_published_block,
    "hub_jsonl": hub_jsonl_block,
    "generate": generate_block,
    "demo": demo_block,
    "demo_real": demo_real_block,
    "install": install_block,
    "inference": inference_block,
    "inference_2threads": lambda: inference_block("inference_2threads"),
    "inference_votes_model": lambda: inference_block("inference_votes_model"),
    "inference_votes_model_2threads": lambda: inference_block("inference_votes_model_2threads"),
    "ttt_workers": ttt_workers_block,
    "grokfast_modarith": grokfast_block("grokfast_modarith"),
    "grokfast_modarith_torchinit": grokfast_block("grokfast_modarith_torchinit"),
    "rope_headline": lambda: exp.rope_headline(RESULTS / "rope_extension.json"),
    "rope_full": lambda: exp.rope_table(RESULTS / "rope_extension.json").rstrip(),
    "scale": lambda: scale_tables.scale_block(RESULTS / "scale.json"),
    "decontamination": decon_tables.disguise_block,
    "export": lambda: export_tables.export_block(RESULTS / "export.json"),
    "data_value": dvt.data_value_block,
    "data_value_mix": dvt.mix_block,
    "data_value_readme": dvt.readme_block,
    "data_value_shift": dvt.shift_block,
    "rules": lambda: rules_tables.rules_block(RESULTS / "rules.json"),
    "million": lambda: million_tables.million_block(RESULTS / "million.json"),
}


# --- docs/benchmarks.md ---------------------------------------------------------------------------------
def _records_table(rows: list[dict]) -> str:
    cols = list(dict.fromkeys(k for r in rows for k in r))
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    out += ["| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |" for r in rows]
    return "\n".join(out)


def _flatten(d, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v and len(v) <= 40:
            out += _flatten(v, key + ".")
        else:
            out.append((key, v))
    return out


def generic(data) -> str:
    """Any JSON: a list of records as one table, an object as key/value rows (lists of records as tables)."""
    if isinstance(data, list) and data and all(isinstance(x, dict) for x in data):
        return _records_table([{k: v for k, v in x.items()} for x in data])
    if not isinstance(data, dict):
        return f"`{_fmt(data)}`"
    scalars, tables = [], []
    for k, v in _flatten(data):
        if isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            tables.append(f"`{k}`:\n\n{_records_table(v)}")
        else:
            scalars.append(f"| {k} | {_fmt(v)} |")
    parts = ["| key | value |", "|---|---|", *scalars] if scalars else []
    return "\n\n".join(["\n".join(parts), *tables] if parts else tables)


SECTIONS: dict[str, Callable[[], str]] = {
    "data_value": lambda: dvt.data_value_block() + "\n\n" + dvt.mix_block(),
    "decontamination": decon_tables.disguise_block,
    "export": lambda: export_tables.export_block(RESULTS / "export.json"),
    "rules": lambda: rules_tables.rules_block(RESULTS / "rules.json"),
    "sources": sources_block,
    "hub_jsonl": hub_jsonl_block,
    "demo": demo_block,
    "demo_real": demo_real_block,
    "install": install_block,
    "grokfast_modarith": lambda: (
        exp.grokfast_summary(RESULTS / "grokfast_modarith.json")
        + "\n\n"
        + exp.grokfast_table(RESULTS / "grokfast_modarith.json")
    ),
    "grokfast_modarith_torchinit": lambda: (
        exp.grokfast_summary(RESULTS / "grokfast_modarith_torchinit.json")
        + "\n\n"
        + exp.grokfast_table(RESULTS / "grokfast_modarith_torchinit.json")
    ),
    "rope_extension": lambda: (
        exp.rope_headline(RESULTS / "rope_extension.json")
        + "\n\n"
        + exp.rope_table(RESULTS / "rope_extension.json").rstrip()
    ),
    "scale": lambda: scale_tables.scale_block(RESULTS / "scale.json"),
    "million": lambda: million_tables.million_block(RESULTS / "million.json"),
}


def benchmarks_md() -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `python benchmarks/tables.py` from `benchmarks/results/*.json`; do not edit by hand",
        "(a test fails when this file is out of date). Each section names its results file; the scripts",
        "that write them are `benchmarks/bench_*.py` and `python -m experiments ...` (see "
        "docs/experiments.md).",
        "Timings come from a shared, noisy 2-core CPU: compare the ratios measured within one run.",
        "",
    ]
    for path in sorted(RESULTS.glob("*.json")):
        name = path.stem
        body = SECTIONS[name]() if name in SECTIONS else generic(json.loads(path.read_text()))
        out += [f"## {name}", "", f"`benchmarks/results/{path.name}`", "", body.rstrip(), ""]
        if (png := path.with_suffix(".png")).is_file():
            out += [f"![{name}](../benchmarks/results/{png.name})", ""]
    return "\n".join(out)


def render_file(text: str) -> str:
    def sub(m: re.Match) -> str:
        name = m.group("name")
        if name not in BLOCKS:
            raise SystemExit(f"unknown tables block {name!r} (known: {', '.join(BLOCKS)})")
        return f"{m.group(1)}{BLOCKS[name]().rstrip()}\n{m.group(4)}"

    return MARK.sub(sub, text)


def targets() -> dict[Path, str]:
    """Every generated file and what it should contain."""
    want = {ROOT / "docs" / "benchmarks.md": benchmarks_md()}
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        if path.name == "benchmarks.md" or not path.is_file():
            continue
        text = path.read_text()
        if MARK.search(text):
            want[path] = render_file(text)
    return want


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for path, text in targets().items():
        if not path.is_file() or path.read_text() != text:
            stale.append(path.relative_to(ROOT).as_posix())
            if not check:
                path.write_text(text)
    if check and stale:
        print(f"out of date (run `python benchmarks/tables.py`): {', '.join(stale)}", file=sys.stderr)
        return 1
    if not check:
        print("updated: " + (", ".join(stale) or "nothing"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
