"""Data for the dedup benchmark and probe set: every mirrored source, and generated tasks built as Arrow.

``generate`` builds n random ARC-like tasks directly as Arrow columns (numpy, no per-task Python), a
fraction of which are disguised copies (random symmetry + color permutation + pair reordering) of other
generated tasks, so the expected numbers of excluded and duplicate rows are known.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa

from arcforge import formats
from arcforge.formats import Member, RawTask
from arcforge.sources.manifest import glob_match, load_manifests, split_archive_glob
from arcforge.task import PAIRS_TYPE, TASK_SCHEMA, Task, TaskFormatError, tasks_to_table


def _members(root: Path, pattern: str) -> list[Member]:
    outer, inner = split_archive_glob(pattern)
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if not p.is_file() or not glob_match(rel, outer):
            continue
        if inner is None:
            out.append(Member(rel, p.read_bytes))
            continue
        zf = zipfile.ZipFile(io.BytesIO(p.read_bytes()))
        for name in sorted(zf.namelist()):
            if glob_match(name, inner):
                out.append(Member(f"{rel}!{name}", lambda zf=zf, name=name: zf.read(name)))
    return out


def load_mirrored(shared: Path) -> pa.Table:
    """Every task of every source mirrored in ``shared`` (as the build would read them, minus quarantine)."""
    tasks: list[Task] = []
    for m in load_manifests().values():
        root = shared / m.owner / m.repo_name
        if not root.is_dir():
            continue
        for tg in m.tasks:
            fmt = formats.get(tg.format or m.format)
            id_root = m.id_root if tg.id_root is None else tg.id_root
            for pattern in tg.include:
                for mem in _members(root, pattern):
                    try:
                        items = list(fmt.read(mem, tg.options))
                    except TaskFormatError:
                        continue
                    rel = mem.inner_path
                    if id_root and rel.startswith(id_root + "/"):
                        rel = rel[len(id_root) + 1 :]
                    base = f"{m.name}/{rel.rsplit('.', 1)[0]}"
                    for it in items:
                        if isinstance(it, RawTask):
                            tid = f"{base}/{it.key}" if it.key else base
                            tasks.append(Task(tid, m.name, tg.split, it.train, it.test, path=mem.path))
    return tasks_to_table(tasks)


# --- generated tasks ----------------------------------------------------------------------------------------
def _src_index(i: np.ndarray, j: np.ndarray, h: np.ndarray, w: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Flat source index in an (h, w) grid of output cell (i, j) of ``apply_symmetry(grid, s)``."""
    cases = [
        (i, j),
        (j, w - 1 - i),
        (h - 1 - i, w - 1 - j),
        (h - 1 - j, i),
        (i, w - 1 - j),
        (h - 1 - i, j),
        (j, i),
        (h - 1 - j, w - 1 - i),
    ]
    si = np.select([s == k for k in range(8)], [c[0] for c in cases])
    sj = np.select([s == k for k in range(8)], [c[1] for c in cases])
    return si * w + sj


def _grid_array(values: np.ndarray, h: np.ndarray, w: np.ndarray) -> pa.Array:
    """list<list<int8>> from flat row-major cells and per-grid shapes."""
    row_len = np.repeat(w, h)
    rows = pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(row_len)], pa.int32()), pa.array(values))
    return pa.ListArray.from_arrays(pa.array(np.r_[0, np.cumsum(h)], pa.int32()), rows)


def generate(
    n: int,
    *,
    dup_frac: float = 0.1,
    ref_frac: float = 0.01,
    seed: int = 0,
    max_side: int = 22,
    chunk: int = 50_000,
) -> tuple[pa.Table, dict[str, int]]:
    """n generated tasks; returns (table, expected counts of excluded and duplicate rows).

    Made in chunks of ``chunk`` tasks (bounded memory). In each chunk the first ``ref_frac`` of the tasks
    are the reference (split "evaluation" of source "gen_eval") and the last ``dup_frac`` are disguised
    copies of random earlier tasks of the chunk (half of them of reference tasks).
    """
    tables, expected = [], {"excluded": 0, "duplicates": 0}
    for k, lo in enumerate(range(0, n, chunk)):
        t, e = _generate_chunk(
            min(chunk, n - lo), dup_frac, ref_frac, np.random.default_rng([seed, k]), max_side, lo
        )
        tables.append(t)
        for key in expected:
            expected[key] += e[key]
    return pa.concat_tables(tables), expected


def _generate_chunk(
    n: int, dup_frac: float, ref_frac: float, rng: np.random.Generator, max_side: int, id_base: int
) -> tuple[pa.Table, dict[str, int]]:
    n_dup, n_ref = int(n * dup_frac), max(1, int(n * ref_frac))
    n_base = n - n_dup
    npairs = rng.integers(3, 7, n_base)  # pairs per base task (the last one is the test pair)
    p = int(npairs.sum())
    hi, wi = rng.integers(2, max_side + 1, p), rng.integers(2, max_side + 1, p)
    same = rng.random(p) < 0.7
    ho = np.where(same, hi, rng.integers(2, max_side + 1, p))
    wo = np.where(same, wi, rng.integers(2, max_side + 1, p))
    h = np.r_[hi, ho]  # grids: inputs of all pairs, then outputs
    w = np.r_[wi, wo]
    area = h * w
    # background 0 with probability 16/25, else a color 1-9 (a lookup keeps this one pass over int8)
    lut = np.r_[np.arange(10), np.zeros(15)].astype(np.int8)
    cells = lut[rng.integers(0, 25, int(area.sum()), dtype=np.int8)]
    start = np.r_[0, np.cumsum(area)[:-1]]
    pair_off = np.r_[0, np.cumsum(npairs)]

    # disguised copies: source task, symmetry, color permutation, pairs in reverse order
    src = rng.integers(0, n_base, n_dup)
    src[: n_dup // 2] = rng.integers(0, n_ref, n_dup // 2)
    sym = rng.integers(0, 8, n_dup)
    perm = np.argsort(rng.random((n_dup, 10)), axis=1).astype(np.int8)
    dn = npairs[src]
    dpair = np.repeat(pair_off[src + 1], dn) - 1 - (np.arange(dn.sum()) - np.repeat(np.cumsum(dn) - dn, dn))
    dtask = np.repeat(np.arange(n_dup), dn)
    dg = np.r_[dpair, dpair + p]  # source grids of the copies: inputs, then outputs
    gt = np.r_[dtask, dtask]
    swap = np.isin(sym[gt], [1, 3, 6, 7])
    dh, dw = np.where(swap, w[dg], h[dg]), np.where(swap, h[dg], w[dg])
    darea = dh * dw
    cg = np.repeat(np.arange(len(dg)), darea)  # per copied cell: its grid
    q = np.arange(int(darea.sum())) - np.repeat(np.cumsum(darea) - darea, darea)
    ci, cj = q // dw[cg], q % dw[cg]
    srcflat = start[dg][cg] + _src_index(ci, cj, h[dg][cg], w[dg][cg], sym[gt][cg])
    dcells = perm[gt[cg], cells[srcflat]]

    all_np = np.r_[npairs, dn]
    m = len(dpair)
    gin_h, gin_w = np.r_[hi, dh[:m]], np.r_[wi, dw[:m]]
    gout_h, gout_w = np.r_[ho, dh[m:]], np.r_[wo, dw[m:]]
    base_in = cells[: int((hi * wi).sum())]
    base_out = cells[int((hi * wi).sum()) :]
    din = dcells[: int(darea[:m].sum())]
    dout = dcells[int(darea[:m].sum()) :]
    inputs = _grid_array(np.r_[base_in, din], gin_h, gin_w)
    outputs = _grid_array(np.r_[base_out, dout], gout_h, gout_w)
    structs = pa.StructArray.from_arrays([inputs, outputs], names=["input", "output"])
    # train = all pairs but the last; test = the last pair of each task
    tot = len(all_np)
    off = np.r_[0, np.cumsum(all_np)]
    is_test = np.zeros(int(off[-1]), bool)
    is_test[off[1:] - 1] = True
    train_idx, test_idx = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    train = pa.ListArray.from_arrays(
        pa.array(np.r_[0, np.cumsum(all_np - 1)], pa.int32()), structs.take(pa.array(train_idx))
    ).cast(PAIRS_TYPE)
    test = pa.ListArray.from_arrays(
        pa.array(np.arange(tot + 1), pa.int32()), structs.take(pa.array(test_idx))
    ).cast(PAIRS_TYPE)
    is_ref = np.arange(tot) < n_ref
    ids = pa.array([f"gen/{i + id_base:07d}" for i in range(tot)])
    source = pa.array(np.where(is_ref, "gen_eval", "gen"))
    split = pa.array(np.where(is_ref, "evaluation", "training"))
    empty = pa.nulls(tot, pa.string())
    curation = [pa.nulls(tot, TASK_SCHEMA.field(c).type) for c in TASK_SCHEMA.names[11:]]
    table = pa.Table.from_arrays(
        [
            ids,
            source,
            split,
            train,
            test,
            empty,
            empty,
            empty,
            empty,
            empty,
            pa.array(["{}"] * tot),
            *curation,
        ],
        schema=TASK_SCHEMA,
    )
    n_copy_ref = int((src < n_ref).sum())
    expected = {"excluded": n_copy_ref, "duplicates": n_dup - n_copy_ref}
    return table, expected
