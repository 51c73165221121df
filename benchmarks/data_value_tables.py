"""Tables and the plot of the data ablation (``benchmarks/results/data_value.json``), for ``tables.py``.

A difference between two arms counts only when it is larger than the seed spread (max - min over seeds)
of both arms; otherwise it is called noise.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image, ImageDraw

RESULTS = Path(__file__).resolve().parent / "results"
METRICS = {
    "arc1_eval_token_accuracy": "ARC-AGI-1 eval, token acc.",
    "arc1_small100_pass2": "100 smallest, pass@2",
    "arc1_small100_pass2_ttt": "pass@2 with TTT",
    "arc2_eval_token_accuracy": "ARC-AGI-2 eval, token acc.",
}
PALETTE = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75)]
ORDER = (
    "arc1_training",
    "corpus",
    "corpus_contaminated",
    "corpus_generated",
    "corpus_no_frames",
    "corpus_no_tama",
    "corpus_sample",
)
LABEL = {
    "arc1_training": "ARC-AGI-1 training only",
    "corpus": "corpus (`--exclude-eval`)",
    "corpus_contaminated": "corpus **without** `--exclude-eval` (contaminated)",
    "corpus_generated": "corpus + generated",
    "corpus_no_frames": "corpus, frame features off",
    "corpus_no_tama": "corpus without `neoneye_tama` (a check of the mix)",
    "corpus_sample": "398 corpus tasks at random (a check of repetition)",
}


def load(path: Path | None = None) -> dict:
    return json.loads((path or RESULTS / "data_value.json").read_text())


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def _cell(runs: list[dict], m: str) -> str:
    vals = [r[m] for r in runs]
    mean = sum(vals) / len(vals)
    return f"**{_pct(mean)}** ({' / '.join(_pct(v) for v in vals)})" if len(vals) > 1 else _pct(mean)


def spread(runs: list[dict], m: str) -> float | None:
    return max(r[m] for r in runs) - min(r[m] for r in runs) if len(runs) > 1 else None


def compare(doc: dict, a: str, b: str, m: str = "arc1_eval_token_accuracy") -> dict | None:
    """Arm ``b`` minus arm ``a`` on ``m`` (means over seeds), the larger seed spread, and if it counts."""
    ra, rb = doc["arms"].get(a), doc["arms"].get(b)
    if not ra or not rb:
        return None
    diff = sum(r[m] for r in rb) / len(rb) - sum(r[m] for r in ra) / len(ra)
    spreads = [s for s in (spread(ra, m), spread(rb, m)) if s is not None]
    sp = max(spreads) if spreads else None
    return {
        "diff": diff,
        "spread": sp,
        "noise": sp is None or abs(diff) <= sp,
        "seeds": min(len(ra), len(rb)),
    }


def _verdict(c: dict | None) -> str:
    if c is None:
        return "not measured"
    if c["spread"] is None:
        return f"{100 * c['diff']:+.1f} points (one seed: the spread is not known yet)"
    word = "noise" if c["noise"] else "larger than the spread"
    return f"{100 * c['diff']:+.1f} points (seed spread {100 * c['spread']:.1f} points: {word})"


def _setup(doc: dict) -> str:
    c = doc["config"]
    runs = [r for rs in doc["arms"].values() for r in rs]
    toks = sorted({r["train_tokens"] for r in runs})
    s_step = [r["s_per_step"] for r in runs]
    load_ = [r.get("load_average_1min", 0) for r in runs]
    a1 = runs[0]["arc1_eval"] if runs else {}
    a2 = runs[0]["arc2_eval"] if runs else {}
    return (
        f"Profile `{doc['profile']}` on {doc['device']}, {doc['threads']} thread(s): d_model {c['d_model']}, "
        f"{c['n_layers']} layers, {c['n_heads']} heads, rows of {c['seq_len']} tokens, {c['batch_size']} per "
        f"step, {c['steps']} steps at lr {c['lr']:g} ({toks[0]:,}-{toks[-1]:,} training tokens a run), "
        f"loss on every output grid, the trainer's default augmentation and sampling; "
        f"{min(s_step):.2f}-{max(s_step):.2f} s a step (load average {min(load_):.1f}-{max(load_):.1f}). "
        f"Scored: {a1.get('scored', 0)} of {a1.get('scored', 0) + a1.get('too_long', 0)} ARC-AGI-1 "
        "evaluation "
        f"test outputs and {a2.get('scored', 0)} of {a2.get('scored', 0) + a2.get('too_long', 0)} ARC-AGI-2 "
        f"ones fit {c['seq_len']} tokens (train pairs dropped from the end until they do); pass@2 over "
        f"{c['votes']} votes, test-time training {c['ttt_steps']} steps of {c['ttt_batch_size']} examples "
        f"at lr {c['ttt_lr']:g} per task (the demo's recipe)." + _precision(doc)
    )


def _precision(doc: dict) -> str:
    """Which arms trained in bf16: before the profiles fixed ``amp``, the trainer's ``auto`` probe chose it
    by speed, which depends on the machine's load."""
    bf16 = [n for n, runs in doc["arms"].items() if any(r.get("bf16") for r in runs)]
    if not bf16:
        return ""
    return (
        " Precision: " + ", ".join(f"`{n}`" for n in bf16) + " trained in bf16 (chosen by the trainer's "
        "`amp auto` speed probe under load, before the profile fixed `amp`), the other arms in fp32."
    )


def epochs(doc: dict, name: str) -> str:
    """How many times a run went through its arm's data: training tokens over the tokens of one epoch."""
    one = doc["arm_data"][name]["length_limits"].get("tokens")
    runs = doc["arms"][name]
    return f"{sum(r['train_tokens'] for r in runs) / len(runs) / one:.2f}" if one else "-"


def main_table(doc: dict) -> str:
    lines = [
        "| arm | training tasks | epochs | " + " | ".join(METRICS.values()) + " |",
        "|---" * (3 + len(METRICS)) + "|",
    ]
    for name in ORDER:
        runs = doc["arms"].get(name)
        if not runs:
            continue
        tasks = doc["arm_data"][name]["tasks"]
        lines.append(
            f"| {LABEL[name]} | {tasks:,} | {epochs(doc, name)} | "
            + " | ".join(_cell(runs, m) for m in METRICS)
            + " |"
        )
    return "\n".join(lines)


def data_value_block() -> str:
    doc = load()
    cc = doc["contamination_check"]
    out = [
        main_table(doc),
        "",
        "Mean over seeds in bold, then each seed (seeds per arm: "
        + ", ".join(f"`{n}` {len(r)}" for n, r in doc["arms"].items())
        + "). pass@2 counts the test inputs of "
        f"the {doc['config']['small_tasks']} smallest tasks. " + _setup(doc),
        "",
    ]
    out += ["| comparison (ARC-AGI-1 evaluation token accuracy) | difference |", "|---|---|"]
    for a, b, what in (
        ("corpus", "corpus_contaminated", "contamination: without `--exclude-eval` vs with"),
        ("arc1_training", "corpus", "the corpus vs ARC-AGI-1 training alone"),
        ("corpus", "corpus_generated", "the corpus plus generated tasks vs the corpus"),
        ("corpus", "corpus_no_frames", "frame features off vs on"),
        ("arc1_training", "corpus_no_tama", "the corpus without `neoneye_tama` vs ARC-AGI-1 training"),
        (
            "arc1_training",
            "corpus_sample",
            "398 corpus tasks vs the 398 of ARC-AGI-1 training (same repetition)",
        ),
        (
            "corpus",
            "corpus_sample",
            "398 corpus tasks vs all of them (same mix, about 20 times the repetition)",
        ),
    ):
        if b not in doc["arms"] or a not in doc["arms"]:
            continue
        out.append(f"| {what} | {_verdict(compare(doc, a, b))} |")
    out += [
        "",
        f"The contaminated build's training rows hold {cc['in_contaminated_training_rows']} of the "
        f"{cc['arc2_training_copies_of_arc1_eval']} ARC-AGI-2 training copies of ARC-AGI-1 evaluation "
        f"tasks; the within-collection dedup dropped {len(cc['dropped_by_dedup'])}, each as a copy of a "
        f"training row that stays ("
        + ", ".join(f"`{k}` = `{v}`" for k, v in cc["dropped_by_dedup"].items())
        + "). `--exclude-eval` removed "
        + f"{cc['clean_excluded']:,} tasks from the clean build.",
        "",
    ]
    if g := doc.get("generated"):
        per = "; ".join(
            f"`{src}`: {c.get('tasks', 0):,} tasks from {c.get('kept', 0):,} kept examples of "
            f"{c.get('attempts', 0):,} attempts"
            for src, c in sorted(g.get("generated", {}).items())
        )
        out += [
            "`corpus_generated`'s build: `--exclude-eval "
            + " ".join(f"--generate {k}={v}" for k, v in g["generate"].items())
            + f"` ({per}), {g.get('build_s', 0):.0f} s on 2 "
            "workers; its rule level did not run (cold, it executes every program on the 520 evaluation "
            "tasks: "
            f"most of an hour here), so generated tasks whose program implements an evaluation rule stay; "
            f"lineage, exact and near-copy exclusion ran.",
            "",
        ]
    for name, why in doc.get("not_run", {}).items():
        out.append(f"Not run: `{name}`: {why}.")
    return "\n".join(out)


def mix_block() -> str:
    doc = load()
    names = [n for n in ORDER if n in doc["arm_data"]]
    sources = sorted({s for n in names for s in doc["arm_data"][n]["mix"]})
    lines = ["| source | " + " | ".join(f"`{n}`" for n in names) + " |", "|---" * (1 + len(names)) + "|"]

    def cell(n: str, s: str) -> str:
        tasks = doc["arm_data"][n]["mix"].get(s, 0)
        share = doc["arm_data"][n]["length_limits"].get("token_share", {}).get(s)
        return f"{tasks:,}" + (f" ({100 * share:.0f}%)" if share is not None and tasks else "")

    for s in sources:
        lines.append(f"| `{s}` | " + " | ".join(cell(n, s) for n in names) + " |")
    lim = {n: doc["arm_data"][n]["length_limits"] for n in names}
    for key, what in (
        ("whole", "fit whole"),
        ("truncated", "fit after losing train pairs"),
        ("dropped", "cannot fit (dropped)"),
    ):
        lines.append(
            f"| test pairs that {what} at {lim[names[0]]['seq_len']} tokens | "
            + " | ".join(f"{lim[n][key]:,}" for n in names)
            + " |"
        )
    return "\n".join(lines)


def shift_block() -> str:
    """What "copy the input" gets right (``shift`` in the results): per arm, weighted by each source's share
    of the tokens a run sees, beside the held-out sets; then the sources that weigh most."""
    doc = load()
    sh = doc.get("shift")
    if not sh:
        return "Not measured."
    ho = sh["held_out"]
    names = {"arc1": "ARC-AGI-1 evaluation (held out)", "arc2": "ARC-AGI-2 evaluation (held out)"}
    lines = [
        "| data | output cells equal to the input cell | pairs of the input's shape | output cells a pair | "
        "ARC-AGI-1 eval, token acc. |",
        "|---|---|---|---|---|",
    ]
    for k, v in ho.items():
        lines.append(
            f"| {names.get(k, k)} | {_pct(v['copy_share'])} | {_pct(v['same_shape'])} | "
            f"{v['out_cells_per_pair']:.0f} | - |"
        )
    for n in ORDER:
        a = sh["arms"].get(n)
        if a is None or n not in doc["arms"] or n == "corpus_no_frames":
            continue
        runs = doc["arms"][n]
        acc = sum(r["arc1_eval_token_accuracy"] for r in runs) / len(runs)
        lines.append(
            f"| `{n}` (weighted by token share) | {_pct(a['copy_share_token_weighted'])} | | | {_pct(acc)} |"
        )
    srcs = sh["arms"].get("corpus", {}).get("sources", {})
    share = doc["arm_data"].get("corpus", {}).get("length_limits", {}).get("token_share", {})
    for s in sorted(srcs, key=lambda s: -share.get(s, 0))[:6]:
        v = srcs[s]
        lines.append(
            f"| `{s}` ({_pct(share.get(s, 0))} of the corpus's tokens) | {_pct(v['copy_share'])} | "
            f"{_pct(v['same_shape'])} | {v['out_cells_per_pair']:.0f} | |"
        )
    return "\n".join(lines)


def readme_block() -> str:
    doc = load()
    c = compare(doc, "corpus", "corpus_contaminated")
    if c is None:
        return (
            "These are synthetic families the frame features fit; on real ARC the contamination effect is "
            "not "
            "measured yet ([docs/data_value.md](docs/data_value.md))."
        )
    mean = {
        n: sum(r["arc1_eval_token_accuracy"] for r in doc["arms"][n]) / len(doc["arms"][n])
        for n in ("corpus", "corpus_contaminated")
    }
    if c["spread"] is None:
        sp = "one seed, spread not known"
    else:
        sp = f"seed spread {100 * c['spread']:.1f}: {'noise' if c['noise'] else 'more than the spread'}"
    return (
        f"These are synthetic families the frame features fit. On real ARC, trained without "
        f"`--exclude-eval`, the same small model scores {_pct(mean['corpus_contaminated'])} "
        f"teacher-forced token accuracy on ARC-AGI-1 evaluation instead of {_pct(mean['corpus'])}, "
        f"{100 * c['diff']:+.1f} points ({sp}), at a small CPU budget"
        + (f", {ep} epochs of its data" if (ep := epochs(doc, "corpus_contaminated")) != "-" else "")
        + " ([docs/data_value.md](docs/data_value.md))."
    )


def plot(doc: dict, path: Path, width: int = 1100, height: int = 360) -> Path:
    """One panel per metric: a bar per arm at its mean over seeds, a dot per seed."""
    names = [n for n in ORDER if doc["arms"].get(n)]
    img = Image.new("RGB", (width, height), "white")
    d = ImageDraw.Draw(img)
    pw = width // len(METRICS)
    top, bottom = 40, height - 70
    for i, (m, title) in enumerate(METRICS.items()):
        x0 = i * pw + 40
        hi = max([r[m] for n in names for r in doc["arms"][n]] + [0.01]) * 1.15
        d.text((x0, 10), title, fill="black")
        d.line([(x0, top), (x0, bottom), (x0 + pw - 60, bottom)], fill="black")
        d.text((x0 - 36, top - 6), f"{100 * hi:.0f}%", fill="black")
        bw = (pw - 80) // max(1, len(names))
        for j, n in enumerate(names):
            vals = [r[m] for r in doc["arms"][n]]
            bx = x0 + 10 + j * bw
            y = bottom - (bottom - top) * (sum(vals) / len(vals)) / hi
            d.rectangle([bx, y, bx + bw - 8, bottom], fill=PALETTE[j % len(PALETTE)])
            for v in vals:
                yv = bottom - (bottom - top) * v / hi
                d.ellipse([bx + bw // 2 - 7, yv - 3, bx + bw // 2 - 1, yv + 3], fill="black")
    for j, n in enumerate(names):
        lx = 40 + j * (width - 80) // max(1, len(names))
        d.rectangle([lx, height - 40, lx + 12, height - 28], fill=PALETTE[j % len(PALETTE)])
        d.text((lx + 18, height - 40), n, fill="black")
    d.text((40, height - 20), "bar: mean over seeds; dots: each seed", fill="black")
    img.save(path)
    return path


if __name__ == "__main__":
    print(plot(load(), RESULTS / "data_value.png"))
