"""The one-command demo as a library function: fetch -> build --exclude-eval -> train -> per-family eval
-> pictures.

DRAFT (synthetic branch): written against the fetch, build and trainer APIs as they stood in their
branches while they were being written; not run or tested yet. The lead wires ``arcforge demo`` to it.

Offline is normal here: when neither GitHub nor ``ARCFORGE_MIRROR`` answers, ``notice`` says so in one
line and the dataset is built from the built-in synthetic source alone. The model trains on the
synthetic training tasks and is scored on *held-out* synthetic tasks (another seed, fingerprints not in
the training set), per family, so "well above chance on the easy families" is measured, not assumed.
torch is imported only inside ``run_demo`` (through ``arcforge.train``), so importing this module is cheap.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from arcforge import synthetic
from arcforge.errors import ArcforgeError
from arcforge.progress import NULL_PROGRESS, Progress
from arcforge.task import Task

DEMO_DIFFICULTY = "easy"  # 3x3..5x5 grids: a small transformer learns the easy families in minutes on CPU
SEQ_LEN = 1024  # a whole easy task (5 pairs of <= 15x15 grids) fits


@dataclass
class DemoResult:
    out_dir: Path
    data_dir: Path
    run_dir: Path
    fetched: list[str]  # real sources that were fetched or cached (empty offline)
    notice: str | None  # the one-line offline notice, if any
    per_family: dict[str, dict[str, Any]] = field(default_factory=dict)  # family -> tasks, exact, easy
    exact_easy: float = 0.0
    exact_all: float = 0.0
    loss_png: Path | None = None
    gallery_png: Path | None = None
    metrics_json: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}


def _fetch(mirror: str | None, progress: Progress) -> tuple[list[str], str | None]:
    """Fetch the mirrored real sources; offline (or any fetch failure) -> ([], notice)."""
    from arcforge.fetch import fetch_sources
    from arcforge.manifest import load_manifests

    try:
        results = fetch_sources(load_manifests().values(), mirror=mirror, progress=progress)
    except ArcforgeError as e:
        return [], f"fetch unavailable ({e.message}); using the built-in synthetic source alone"
    ok = [r.name for r in results if r.ok]
    if not ok:
        return [], "GitHub and ARCFORGE_MIRROR are unreachable; using the built-in synthetic source alone"
    return ok, None


def _held_out(n: int, seed: int, train_fps: set[str]) -> list[Task]:
    """``n`` synthetic tasks from another seed whose fingerprints are not in the training set."""
    out = []
    for t in synthetic.generate(2 * n, seed=seed + 1_000_003, difficulty=DEMO_DIFFICULTY):
        if t.fingerprint not in train_fps:
            out.append(t)
            if len(out) == n:
                break
    return out


def run_demo(
    out_dir: Path,
    *,
    steps: int = 600,
    tasks: int = 4000,
    seed: int = 0,
    mirror: str | None = None,
    progress: Progress | None = None,
    eval_tasks: int = 240,
    gallery_rows: int = 16,
) -> DemoResult:
    """Run the whole pipeline into ``out_dir`` (data/, run/, loss.png, gallery.png, demo.json)."""
    from arcforge.build import build
    from arcforge.demo_images import GalleryRow, gallery_png, loss_curve_png
    from arcforge.shards import read_tasks
    from arcforge.train.data import DataConfig
    from arcforge.train.evaluate import evaluate_tasks, submission_key
    from arcforge.train.loop import TrainConfig, train
    from arcforge.train.model import ModelConfig
    from arcforge.train.runner import load_model

    progress = progress or NULL_PROGRESS
    out_dir = Path(out_dir)
    data_dir, run_dir = out_dir / "data", out_dir / "run"
    fetched, notice = _fetch(mirror, progress)

    # 1. Build: the real sources that arrived, decontaminated against the eval splits, plus synthetic.
    # TODO(lead): the build takes no synthetic difficulty yet; the demo wants DEMO_DIFFICULTY ("easy").
    build(
        data_dir,
        sources=[*fetched, synthetic.SOURCE_NAME],
        exclude_eval=bool(fetched),
        synthetic_tasks=tasks,
        seed=seed,
        progress=progress,
    )

    # 2. Train a small model on the synthetic training tasks only (minutes on CPU).
    data_cfg = DataConfig(
        root=str(data_dir),
        sources=[synthetic.SOURCE_NAME],
        splits=["training"],
        seq_len=SEQ_LEN,
        batch_size=8,
        seed=seed,
    )
    model_cfg = ModelConfig(d_model=128, n_layers=3, n_heads=4, max_seq_len=SEQ_LEN)
    train_cfg = TrainConfig(
        out=str(run_dir),
        max_steps=steps,
        warmup_steps=max(1, steps // 10),
        log_every=max(1, steps // 60),
        ckpt_every=steps,
        eval_every=0,
        eval_tasks=0,
        device="cpu",
        seed=seed,
        tensorboard=False,
    )
    train(model_cfg, data_cfg, train_cfg, progress=progress)

    # 3. Evaluate per family on held-out synthetic tasks.
    train_fps = {t.fingerprint for t in read_tasks(data_dir, sources=[synthetic.SOURCE_NAME])}
    held = _held_out(eval_tasks, seed, train_fps)
    model, _ = load_model(run_dir, "cpu")
    res = evaluate_tasks(
        model,
        held,
        seq_len=SEQ_LEN,
        device=next(model.parameters()).device,
        votes=1,
        progress=progress,
        total=len(held),
    )
    easy = set(synthetic.families(easy_only=True))
    per_family: dict[str, dict[str, Any]] = {}
    for rec in res.per_task:
        fam = rec["task"].split("/")[1]
        f = per_family.setdefault(fam, {"tasks": 0, "exact": 0, "easy": fam in easy})
        f["tasks"] += 1
        f["exact"] += int(rec.get("exact", False))
    for f in per_family.values():
        f["exact_match"] = f["exact"] / max(1, f["tasks"])

    def rate(fams: list[dict[str, Any]]) -> float:
        return sum(f["exact"] for f in fams) / max(1, sum(f["tasks"] for f in fams))

    # 4. Pictures: the loss curve from metrics.jsonl and one test pair per family.
    history = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    loss_png = loss_curve_png([(r["step"], r["loss"]) for r in history if "loss" in r], out_dir / "loss.png")
    rows, seen = [], set()
    for t in held:
        fam = t.id.split("/")[1]
        if fam in seen or len(rows) >= gallery_rows:
            continue
        seen.add(fam)
        pred = res.submission.get(submission_key(t), [{}])[0].get("attempt_1")
        pred_grid = np.asarray(pred, dtype=np.int8) if pred else None
        ok = pred_grid is not None and np.array_equal(pred_grid, t.test[0].output)
        rows.append(
            GalleryRow(f"{fam} ({'exact' if ok else 'wrong'})", t.test[0].input, pred_grid, t.test[0].output)
        )
    gallery = gallery_png(rows, out_dir / "gallery.png")

    result = DemoResult(
        out_dir,
        data_dir,
        run_dir,
        fetched,
        notice,
        dict(sorted(per_family.items())),
        rate([f for f in per_family.values() if f["easy"]]),
        rate(list(per_family.values())),
        loss_png,
        gallery,
        out_dir / "demo.json",
    )
    (out_dir / "demo.json").write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    return result
