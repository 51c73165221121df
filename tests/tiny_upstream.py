"""A tiny hand-made upstream, for the tests that need no real data (publish, fetch over HTTP, the CLI).

Three fake GitHub repos in the offline-mirror layout (``<owner>/<repo>/<files>``), their manifests and a
``digests.lock`` pinning them, written into a folder:

- ``tiny_eval`` (``tiny-org/arc-eval``, Apache-2.0, role eval): 2 training and 3 evaluation tasks;
- ``tiny_train`` (``tiny-org/arc-more``, MIT): 5 tasks, of which one is an evaluation task rotated by
  90 degrees (``--exclude-eval`` removes it), one repeats another with its pairs reordered (a
  duplicate), one has a ragged grid (quarantined);
- ``tiny_unknown`` (``tiny-org/arc-odd``, license unknown): 2 tasks, in a folder of their own.

Everything is deterministic: the same files, digests and builds every time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcforge.sources import lock
from arcforge.sources.manifest import Manifest, load_manifests

COMMIT = {"tiny_eval": "1" * 40, "tiny_train": "2" * 40, "tiny_unknown": "3" * 40}


def _grid(seed: int, h: int, w: int) -> list[list[int]]:
    return np.random.default_rng(seed).integers(0, 10, size=(h, w)).tolist()


def _task(seed: int, n_train: int = 2, side: int = 3) -> dict:
    """A task whose rule is 'mirror left-right'; grids drawn from ``seed``."""
    pairs = []
    for i in range(n_train + 1):
        g = _grid(seed * 100 + i, side, side + (i % 2))
        pairs.append({"input": g, "output": [row[::-1] for row in g]})
    return {"train": pairs[:-1], "test": pairs[-1:]}


def _rot90(task: dict) -> dict:
    rot = lambda g: np.rot90(np.array(g)).tolist()  # noqa: E731
    return {k: [{"input": rot(p["input"]), "output": rot(p["output"])} for p in v] for k, v in task.items()}


def repos() -> dict[str, dict[str, bytes]]:
    """``{"owner/repo": {path: bytes}}`` of the three repos."""

    def js(obj) -> bytes:
        return json.dumps(obj).encode()

    ev = {f"data/evaluation/e{i}.json": _task(10 + i) for i in range(3)}
    tr = {f"data/training/t{i}.json": _task(20 + i, side=4) for i in range(2)}
    copy_of = _task(21, side=4)
    dup = {"train": list(reversed(copy_of["train"])), "test": copy_of["test"]}
    more = {
        "tasks/m0.json": _task(30),
        "tasks/m1.json": _task(31, n_train=3),
        "tasks/rotated_eval.json": _rot90(ev["data/evaluation/e1.json"]),
        "tasks/dup_of_t1.json": dup,
        "tasks/ragged.json": {
            "train": [{"input": [[1, 2], [3]], "output": [[1]]}],
            "test": [{"input": [[1]], "output": [[2]]}],
        },
    }
    odd = {"levels/o0.json": _task(40), "levels/o1.json": _task(41)}
    files = {
        "tiny-org/arc-eval": {**{k: js(v) for k, v in {**ev, **tr}.items()}, "LICENSE": b"Apache-2.0\n"},
        "tiny-org/arc-more": {**{k: js(v) for k, v in more.items()}, "LICENSE": b"MIT\n"},
        "tiny-org/arc-odd": {**{k: js(v) for k, v in odd.items()}, "README.md": b"# odd tasks, no license\n"},
    }
    return files


MANIFESTS = {
    "tiny_eval": """name = "tiny_eval"
title = "Tiny eval"
repo = "tiny-org/arc-eval"
commit = "{commit}"
license = "Apache-2.0"
description = "Hand-made test tasks with an evaluation split."
citation = "@misc{{tinyeval, title = {{Tiny eval}}}}"
format = "standard"
role = "eval"
files = ["data/training/*.json", "data/evaluation/*.json", "LICENSE"]
id_root = "data"

[[tasks]]
split = "training"
include = ["data/training/*.json"]

[[tasks]]
split = "evaluation"
include = ["data/evaluation/*.json"]
""",
    "tiny_train": """name = "tiny_train"
title = "Tiny train"
repo = "tiny-org/arc-more"
commit = "{commit}"
license = "MIT"
description = "Hand-made test tasks: a copy of an evaluation task, a duplicate, a ragged grid."
format = "standard"
files = ["tasks/*.json", "LICENSE"]
id_root = "tasks"

[[tasks]]
split = "training"
include = ["tasks/*.json"]
""",
    "tiny_unknown": """name = "tiny_unknown"
title = "Tiny unknown"
repo = "tiny-org/arc-odd"
commit = "{commit}"
license = "unknown"
description = "Hand-made test tasks with no license file."
format = "standard"
files = ["levels/*.json", "README.md"]
id_root = "levels"

[[tasks]]
split = "training"
include = ["levels/*.json"]
""",
}


@dataclass(frozen=True)
class Tiny:
    mirror: Path  # <owner>/<repo>/<files>, like ../shared/arc-sources
    manifests_dir: Path  # the three manifests and their digests.lock
    ms: dict[str, Manifest]


def make_tiny(root: Path) -> Tiny:
    """Write the mirror, the manifests and the lock under ``root`` (idempotent)."""
    mirror, mdir = root / "mirror", root / "manifests"
    for repo, files in repos().items():
        for rel, data in files.items():
            p = mirror / repo / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
    mdir.mkdir(parents=True, exist_ok=True)
    for name, text in MANIFESTS.items():
        (mdir / f"{name}.toml").write_text(text.format(commit=COMMIT[name]))
    ms = load_manifests(mdir)
    lock.write_lock(mdir / lock.LOCK_NAME, lock.pins_from_mirror(ms.values(), mirror))
    return Tiny(mirror, mdir, load_manifests(mdir))
