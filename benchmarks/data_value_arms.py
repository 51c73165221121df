"""The data of ``bench_data_value.py``: the two builds of every mirrored source, the arms that train on them,
and the check that the contaminated build really holds the ARC-AGI-2 training copies of ARC-AGI-1
evaluation tasks.

- ``clean``: ``build --exclude-eval`` (the default corpus);
- ``contaminated``: the same sources without ``--exclude-eval`` (contaminated on purpose).

An arm trains on every *training* split of its build (every split whose name does not say "evaluation"),
or on ARC-AGI-1 training alone. Generated data (``corpus_generated``) comes from a third build, ``build
--exclude-eval --generate`` (RE-ARC's generators, BARC's seed programs: their ``generated`` splits), made
only when that arm runs; ``generated_sources`` says whether a build holds any.

``corpus_sample`` (a check run on request) trains on as many tasks as ``arc1_training``, drawn at random from
the corpus: the corpus's mix, repeated as often as ARC-AGI-1 training is at the same token budget.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from arcforge.build import shard_writer
from arcforge.build.pipeline import build
from arcforge.build.reports import read_report
from arcforge.shards import read_table, read_tasks
from arcforge.sources.fetch import fetch_sources
from arcforge.sources.manifest import load_manifests
from arcforge.task import tasks_to_table
from arcforge.train.tokenize import example_length

ROOT = Path(__file__).resolve().parent.parent
MIRROR = ROOT.parent / "shared" / "arc-sources"
ARC1 = Path("fchollet") / "ARC-AGI" / "data"  # in the mirror
ARC2 = Path("arcprize") / "ARC-AGI-2" / "data"
ARMS = ("arc1_training", "corpus", "corpus_contaminated", "corpus_generated", "corpus_no_frames")
# checks run on request (--arms): the corpus without neoneye_tama (most of its tasks); as many corpus tasks,
# drawn at random, as ARC-AGI-1 training holds (the corpus's mix at ARC-AGI-1 training's repetition)
EXTRA_ARMS = ("corpus_no_tama", "corpus_sample")
SAMPLE_SEED = 0
# the frame features (docs/training.md): symmetry-frame keys, edge frames, frame lookups and votes
NO_FRAMES = {"key_frames": False, "edge_frames": False, "frame_lookups": 0, "frame_votes": False}
# splits of generated tasks (RE-ARC's generated examples, BARC's synthetic problems)
GENERATED_SPLITS = {("re_arc", "generated"), ("barc", "generated")}
# ``--max-grid 30``: the model's grids are at most 30 a side; 1D-ARC and TAMA hold rows up to 69 cells long,
# which the tokenizer's frame tables do not take
MAX_GRID = 30


@dataclass
class Arm:
    """One arm: which build, which sources and splits it trains on, and the model options it changes."""

    name: str
    build: str  # "clean" | "contaminated" | "generated" | "sample"
    sources: list[str] | None
    splits: list[str]
    model: dict = field(default_factory=dict)
    mix: dict[str, int] = field(default_factory=dict)  # source -> training tasks
    length: dict = field(default_factory=dict)  # length_limits at the profile's seq_len

    def summary(self) -> dict:
        return {
            "build": self.build,
            "sources": self.sources,
            "splits": self.splits,
            "model_changes": self.model,
            "mix": self.mix,
            "tasks": sum(self.mix.values()),
            "length_limits": self.length,
        }


def fetch_and_build(work: Path, mirror: Path, generate: dict[str, int] | None, workers: int | None) -> dict:
    """Fetch every source from ``mirror`` into ``work/home`` and build it twice (``--max-grid 30``), and a
    third time with ``--exclude-eval --generate`` when ``generate`` asks for examples; returns what was built.

    The generating build skips the rule level (``check_rules=False``): run cold, it executes every program
    on the 520 evaluation tasks, most of an hour on 2 cores; lineage, exact and near-copy exclusion run.
    ``workers``: build processes (None: every CPU); the shards do not depend on it."""
    os.environ["ARCFORGE_HOME"] = str(work / "home")
    fetched = [r.name for r in fetch_sources(load_manifests().values(), mirror=str(mirror)) if r.ok]
    out: dict = {"fetched": fetched}
    gen = {k: v for k, v in (generate or {}).items() if k in fetched and v > 0}
    for name, exclude, g in (("clean", True, None), ("contaminated", False, None), ("generated", True, gen)):
        if name == "generated" and not gen:
            continue
        t0 = time.perf_counter()
        stats = build(
            work / name,
            sources=fetched,
            exclude_eval=exclude,
            max_grid=MAX_GRID,
            workers=max(2, workers) if g and workers else workers,
            generate=g,
            check_rules=False if g else None,
        )
        out[name] = {
            "path": work / name,
            "excluded": stats.excluded,
            "duplicates": stats.duplicates,
            "oversize_dropped": stats.oversize_dropped,
        }
        if g:
            out[name].update(
                generate=g, generated=stats.generated, build_s=round(time.perf_counter() - t0, 1)
            )
    return out


def sample_build(built: dict, arm: Arm, n: int, work: Path) -> None:
    """``built["sample"]``: ``n`` of ``arm``'s tasks drawn at random (``SAMPLE_SEED``), written as shards."""
    tasks = sorted(
        read_tasks(built[arm.build]["path"], sources=arm.sources, splits=arm.splits), key=lambda t: t.id
    )
    pick = random.Random(SAMPLE_SEED).sample(tasks, min(n, len(tasks)))
    shard_writer.write_shards(tasks_to_table(sorted(pick, key=lambda t: t.id)), work / "sample")
    built["sample"] = {"path": work / "sample", "drawn_from": arm.name, "seed": SAMPLE_SEED}


def mix(folder: Path, sources: list[str] | None, splits: list[str]) -> dict[str, int]:
    t = read_table(folder).select(["source", "split"]).to_pylist()
    return dict(
        sorted(
            Counter(
                r["source"] for r in t if r["split"] in splits and (sources is None or r["source"] in sources)
            ).items()
        )
    )


def training_splits(folder: Path) -> list[str]:
    return sorted({s for s in read_table(folder).column("split").to_pylist() if "evaluation" not in s})


def generated_sources(folder: Path) -> list[str]:
    """The generated splits (``source/split``) a build holds."""
    t = read_table(folder).select(["source", "split"]).to_pylist()
    return sorted({f"{r['source']}/{r['split']}" for r in t if (r["source"], r["split"]) in GENERATED_SPLITS})


def arms(built: dict, work: Path | None = None) -> tuple[list[Arm], dict]:
    """The arms that can run on these builds, and ``not_run``: arm -> why not. With ``work``, the
    ``corpus_sample`` arm's shards are written there."""
    clean, dirty = built["clean"]["path"], built["contaminated"]["path"]
    splits = training_splits(clean)
    out = [
        Arm("arc1_training", "clean", ["arc_agi_1"], ["training"]),
        Arm("corpus", "clean", None, splits),
        Arm("corpus_contaminated", "contaminated", None, training_splits(dirty)),
        Arm("corpus_no_frames", "clean", None, splits, model=dict(NO_FRAMES)),
    ]
    for a in out:
        a.mix = mix(built[a.build]["path"], a.sources, a.splits)
    no_tama = [s for s in out[1].mix if s != "neoneye_tama"]
    out.append(Arm("corpus_no_tama", "clean", no_tama, splits, mix=mix(clean, no_tama, splits)))
    if work is not None:
        sample_build(built, out[1], sum(out[0].mix.values()), work)
        out.append(
            Arm("corpus_sample", "sample", None, splits, mix=mix(built["sample"]["path"], None, splits))
        )
    if "generated" in built and generated_sources(built["generated"]["path"]):
        gsplits = training_splits(built["generated"]["path"])
        out.append(
            Arm(
                "corpus_generated",
                "generated",
                None,
                gsplits,
                mix=mix(built["generated"]["path"], None, gsplits),
            )
        )
        return out, {}
    return out, {
        "corpus_generated": "it needs a build with `--generate` (RE-ARC's generators, BARC's seed "
        "programs), which this profile does not run"
    }


def contamination_check(built: dict) -> dict:
    """The ARC-AGI-2 training rows that ``--exclude-eval`` drops as exact copies of ARC-AGI-1 evaluation
    tasks, and how many of them the contaminated build's training rows hold (all, unless the
    within-collection dedup dropped them as copies of the evaluation rows)."""
    clean, dirty = built["clean"]["path"], built["contaminated"]["path"]
    copies = {
        e["id"]
        for e in read_report(clean, "excluded").to_pylist()
        if e["source"] == "arc_agi_2"
        and e["level"] == "exact"
        and any(i.startswith("arc_agi_1/evaluation/") for i in e["eval_ids"])
    }
    rows = read_table(dirty).select(["id", "split"]).to_pylist()
    held = {r["id"] for r in rows if r["split"] == "training"} & copies
    dropped = {
        d["dropped_id"]: d["kept_id"]
        for d in read_report(dirty, "duplicates").to_pylist()
        if d["dropped_id"] in copies
    }
    return {
        "arc2_training_copies_of_arc1_eval": len(copies),
        "in_contaminated_training_rows": len(held),
        "dropped_by_dedup": dropped,
        "clean_excluded": built["clean"]["excluded"],
        "contaminated_excluded": built["contaminated"]["excluded"],
    }


def _fit(train: list, test_in, test_out, seq_len: int) -> tuple[str, int]:
    """ "whole", "truncated" (fits after dropping train pairs from the end) or "dropped", and its tokens."""
    n = example_length(train, test_in, test_out)
    if n <= seq_len:
        return "whole", n
    cut = list(train)
    while len(cut) > 1 and n > seq_len:
        cut.pop()
        n = example_length(cut, test_in, test_out)
    return ("truncated", n) if n <= seq_len else ("dropped", 0)


def length_limits(folder: Path, sources: list[str] | None, splits: list[str], seq_len: int) -> dict:
    """How the tokenizer's length limit treats an arm's training tasks at ``seq_len``: test pairs that fit
    whole, that fit only after losing train pairs, and that cannot fit at all (dropped by the loader); and
    the tokens of the examples that fit (one epoch) and each source's share of them (what uniform sampling of
    tasks feeds)."""
    counts: Counter = Counter()
    tokens: Counter = Counter()
    for t in read_tasks(folder, sources=sources, splits=splits):
        full = [(p.input, p.output) for p in t.train if p.output is not None]
        for pair in t.test:
            if pair.output is not None:
                key, n = _fit(full, pair.input, pair.output, seq_len)
                counts[key] += 1
                tokens[t.source] += n
    total = max(1, sum(tokens.values()))
    return {
        "seq_len": seq_len,
        **{k: counts[k] for k in ("whole", "truncated", "dropped")},
        "tokens": sum(tokens.values()),
        "token_share": {s: round(v / total, 4) for s, v in sorted(tokens.items()) if v},
    }


def _copy_counts(tasks) -> Counter:
    """Over every pair with an output: pairs, those whose output has the input's shape, output cells, and
    output cells equal to the input cell at the same place (what "copy the input" gets right)."""
    c: Counter = Counter()
    for t in tasks:
        for p in (*t.train, *t.test):
            if p.output is None:
                continue
            c["pairs"] += 1
            c["out_cells"] += p.output.size
            if p.input.shape == p.output.shape:
                c["same_shape"] += 1
                c["copied"] += int((p.input == p.output).sum())
    return c


def _shares(c: Counter) -> dict:
    n, cells = max(1, c["pairs"]), max(1, c["out_cells"])
    return {
        "pairs": c["pairs"],
        "same_shape": round(c["same_shape"] / n, 4),
        "copy_share": round(c["copied"] / cells, 4),
        "out_cells_per_pair": round(c["out_cells"] / n, 1),
    }


def shift(arms: list[Arm], built: dict, held: dict[str, list]) -> dict:
    """How far each arm's data is from the held-out sets on what teacher-forced token accuracy rewards most:
    the share of output cells equal to the input cell at the same place (``copy_share``), per source and
    weighted by each source's share of the tokens a run sees (uniform task sampling, ``length_limits``)."""
    out = {"held_out": {k: _shares(_copy_counts(v)) for k, v in held.items() if k != "small"}, "arms": {}}
    per_source: dict[tuple[str, str], dict] = {}
    for arm in arms:
        srcs = {}
        for s in arm.mix:
            key = (arm.build, s)
            if key not in per_source:
                per_source[key] = _shares(
                    _copy_counts(read_tasks(built[arm.build]["path"], sources=[s], splits=arm.splits))
                )
            srcs[s] = per_source[key]
        w = arm.length.get("token_share") or {}
        weighted = sum(w.get(s, 0) * v["copy_share"] for s, v in srcs.items()) / max(1e-9, sum(w.values()))
        out["arms"][arm.name] = {"copy_share_token_weighted": round(weighted, 4), "sources": srcs}
    return out
