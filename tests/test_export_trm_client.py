"""The exports against the real TRM client (../shared/clients/TinyRecursiveModels, imported or run from there,
never copied): TRM's own ``dataset/build_arc_dataset.py`` on arcforge's ``kaggle`` export, and TRM's
``PuzzleDataset`` on arcforge's ``trm`` export, compared with the builder's output on the same tasks."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from arcforge.export.config import ExportConfig
from arcforge.export.run import export
from tests.conftest import SHARED_ROOT

CLIENT = SHARED_ROOT / "clients" / "TinyRecursiveModels"
SUBSETS = ("training=arc_agi_1:training", "evaluation=arc_agi_1:evaluation", "concept=concept_arc/corpus/*")
BUILDER_TIMEOUT = 600


@pytest.fixture(scope="module")
def trm(shared_sources: Path) -> Path:
    if not (CLIENT / "dataset" / "build_arc_dataset.py").is_file():
        pytest.fail(f"{CLIENT}: TRM's client is missing from ../shared/clients")
    return CLIENT


@pytest.fixture(scope="module")
def arc_build(mirror_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ARC-AGI-1 and ConceptARC built from the mirror."""
    import os

    from arcforge.build.pipeline import build

    out = tmp_path_factory.mktemp("trm_build") / "data"
    old = os.environ.get("ARCFORGE_HOME")
    os.environ["ARCFORGE_HOME"] = str(mirror_home)
    try:
        build(out, sources=["arc_agi_1", "concept_arc"], workers=1)
    finally:
        if old is None:
            os.environ.pop("ARCFORGE_HOME", None)
        else:
            os.environ["ARCFORGE_HOME"] = old
    return out


@pytest.fixture(scope="module")
def kaggle(arc_build: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trm_kaggle") / "kaggle"
    export(arc_build, out, ExportConfig("kaggle", subsets=SUBSETS))
    return out


def run_builder(trm: Path, prefix: Path, out: Path, num_aug: int) -> str:
    """TRM's builder as its README runs it (ARC-AGI-1 + ConceptARC, evaluation as the test set)."""
    cmd = [
        sys.executable,
        "-m",
        "dataset.build_arc_dataset",
        "--input-file-prefix",
        str(prefix),
        "--output-dir",
        str(out),
        "--subsets",
        "training",
        "evaluation",
        "concept",
        "--test-set-name",
        "evaluation",
        "--num-aug",
        str(num_aug),
    ]
    res = subprocess.run(cmd, cwd=trm, capture_output=True, text=True, timeout=BUILDER_TIMEOUT, check=False)
    assert res.returncode == 0, res.stderr[-2000:]
    return res.stdout


def _content(prefix: Path, subset: str) -> dict[str, str]:
    """Task id -> canonical JSON of its pairs, outputs included (plain json, not arcforge's code)."""
    chal = json.loads(Path(f"{prefix}_{subset}_challenges.json").read_text())
    sols = json.loads(Path(f"{prefix}_{subset}_solutions.json").read_text())
    out = {}
    for tid, task in chal.items():
        test = [{"input": p["input"], "output": o} for p, o in zip(task["test"], sols[tid], strict=True)]
        out[tid] = json.dumps({"train": task["train"], "test": test}, sort_keys=True)
    return out


def test_trm_builder_reads_the_kaggle_export_like_its_own_files(trm: Path, kaggle: Path, tmp_path: Path):
    own = trm / "kaggle" / "combined" / "arc-agi"
    ours = kaggle / "arc-agi"
    for subset in ("training", "evaluation", "concept"):  # the same tasks, by content (and by id)
        a, b = _content(own, subset), _content(ours, subset)
        assert sorted(a.values()) == sorted(b.values()) and a == b, subset
    logs = {
        name: run_builder(trm, prefix, tmp_path / name, num_aug=0)
        for name, prefix in (("own", own), ("ours", ours))
    }
    counts = {name: re.search(r"Total puzzles: (\d+)", log)[1] for name, log in logs.items()}
    assert counts == {"own": "960", "ours": "960"}
    for split in ("train", "test"):
        assert json.loads((tmp_path / "own" / split / "dataset.json").read_text()) == json.loads(
            (tmp_path / "ours" / split / "dataset.json").read_text()
        )
    assert json.loads((tmp_path / "own" / "test_puzzles.json").read_text()) == json.loads(
        (tmp_path / "ours" / "test_puzzles.json").read_text()
    )
    assert sorted(json.loads((tmp_path / "own" / "identifiers.json").read_text())) == sorted(
        json.loads((tmp_path / "ours" / "identifiers.json").read_text())
    )


def _load(folder: Path, split: str) -> dict[str, np.ndarray]:
    return {
        k: np.load(folder / split / f"all__{k}.npy")
        for k in ("inputs", "labels", "puzzle_identifiers", "puzzle_indices", "group_indices")
    }


def _untranslate(seq: np.ndarray) -> np.ndarray:
    """A 900-cell example moved to the top left corner (undoes TRM's translation augment)."""
    grid = seq.reshape(30, 30)
    r0, c0 = int(np.argmax(grid.any(1))), int(np.argmax(grid.any(0)))
    out = np.zeros_like(grid)
    out[: 30 - r0, : 30 - c0] = grid[r0:, c0:]
    return out


def _corner_grid(canvas: np.ndarray) -> np.ndarray:
    """The colors of a grid placed at the top left corner of a 30x30 canvas (cells are color + 2)."""
    h = int(np.argmax(canvas[:, 0] < 2)) or 30
    w = int(np.argmax(canvas[0] < 2)) or 30
    return (canvas[:h, :w] - 2).astype(np.uint8)


def _puzzles(folder: Path, split: str) -> dict[str, list[tuple[np.ndarray, np.ndarray]]]:
    """Puzzle name -> its examples (input, label) as stored (900 cells each)."""
    names = json.loads((folder / "identifiers.json").read_text())
    d = _load(folder, split)
    out = {}
    for p, ident in enumerate(d["puzzle_identifiers"]):
        lo, hi = d["puzzle_indices"][p], d["puzzle_indices"][p + 1]
        out[names[ident]] = list(zip(d["inputs"][lo:hi], d["labels"][lo:hi], strict=True))
    return out


def _grid(seq: np.ndarray) -> np.ndarray:
    """The colors of the grid of one stored example, wherever the translation put it."""
    return _corner_grid(_untranslate(seq))


def _offset(seq: np.ndarray) -> tuple[int, int]:
    grid = seq.reshape(30, 30) > 1
    return int(np.argmax(grid.any(1))), int(np.argmax(grid.any(0)))


def _groups(folder: Path, split: str) -> dict[str, int]:
    """Task name -> how many puzzles (versions) its group holds."""
    names = json.loads((folder / "identifiers.json").read_text())
    d = _load(folder, split)
    g = d["group_indices"]
    return {names[d["puzzle_identifiers"][g[i]]]: int(g[i + 1] - g[i]) for i in range(len(g) - 1)}


def test_puzzle_dataset_loads_the_trm_export_like_the_builders_output(
    trm: Path, arc_build: Path, kaggle: Path, tmp_path: Path, monkeypatch
):
    monkeypatch.syspath_prepend(str(trm))
    from dataset.build_arc_dataset import PuzzleIdSeparator, inverse_aug, np_grid_to_seq_translational_augment
    from puzzle_dataset import PuzzleDataset, PuzzleDatasetConfig

    ours, theirs = tmp_path / "ours", tmp_path / "builder"
    export(arc_build, ours, ExportConfig("trm", subsets=SUBSETS, num_aug=2, eval_demos_in_train=True))
    run_builder(trm, kaggle / "arc-agi", theirs, num_aug=2)

    for split in ("train", "test"):
        a = json.loads((ours / split / "dataset.json").read_text())
        b = json.loads((theirs / split / "dataset.json").read_text())
        assert a.keys() == b.keys() and a == b, split  # vocabulary, sizes, counts: the builder's
        ga, gb = _groups(ours, split), _groups(theirs, split)
        assert ga == gb and all(PuzzleIdSeparator not in name for name in ga)  # a group: a task, itself first
        pa, pb = _puzzles(ours, split), _puzzles(theirs, split)
        for name in ga:  # the unaugmented puzzle holds the same grids (wherever translated)
            assert len(pa[name]) == len(pb[name])
            for (ia, la), (ib, lb) in zip(pa[name], pb[name], strict=True):
                assert np.array_equal(_grid(ia), _grid(ib)) and np.array_equal(_grid(la), _grid(lb)), name
        moved = 0
        for name, examples in pa.items():  # every stored example is what TRM's encoder makes at its offset
            for i, label in examples[:3]:
                offset = _offset(i)
                moved += offset != (0, 0)
                with monkeypatch.context() as m:
                    m.setattr(np.random, "randint", lambda lo, hi, draws=iter(offset): next(draws))
                    want = np_grid_to_seq_translational_augment(_grid(i), _grid(label), do_translation=True)
                assert np.array_equal(want[0], i) and np.array_equal(want[1], label), name
        assert (moved > 0) == (split == "train")  # the translation augment: training examples only
    names = json.loads((ours / "identifiers.json").read_text())
    assert names[0] == "<blank>" and len(names) == len(set(names))
    plain = {
        name: [(_untranslate(i), _untranslate(o)) for i, o in ex]
        for name, ex in _puzzles(ours, "test").items()
    }
    checked = 0
    for name, examples in plain.items():  # TRM's inverse_aug maps every version back to the task
        if PuzzleIdSeparator not in name:
            continue
        base, undo = inverse_aug(name)
        for got, want in zip(examples, plain[base], strict=True):
            for g, w in zip(got, want, strict=True):  # input, then label
                assert np.array_equal(undo(_corner_grid(g)), _corner_grid(w)), name
            checked += 1
    assert checked > 2 * len(ga)

    for split, mode in (("train", False), ("test", True)):
        meta = json.loads((ours / split / "dataset.json").read_text())
        cfg = PuzzleDatasetConfig(
            seed=0,
            dataset_paths=[str(ours)],
            global_batch_size=64,
            test_set_mode=mode,
            epochs_per_iter=1,
            rank=0,
            num_replicas=1,
        )
        seen = 0
        for set_name, batch, size in PuzzleDataset(cfg, split=split):
            assert set_name == "all" and batch["inputs"].shape == batch["labels"].shape == (64, 900)
            assert int(batch["inputs"].max()) <= 11 and int(batch["inputs"].min()) >= 0
            ids = batch["puzzle_identifiers"][:size]
            assert int(ids.min()) >= 1 and int(ids.max()) < meta["num_puzzle_identifiers"]
            seen += size
            if not mode and seen >= 64 * 20:
                break
        assert seen == (
            np.load(ours / split / "all__inputs.npy", mmap_mode="r").shape[0] if mode else 64 * 20
        )
