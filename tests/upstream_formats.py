"""Small files in the upstream layouts of the Hub and archive sources (BARC JSONL, simon-arc JSONL with
run-length-encoded grids, Parquet copies of ARC, neoneye's collection with its PQA zip and synth_riddles
tar.gz), made in the tests: none of these upstreams is in the offline mirror."""

from __future__ import annotations

import io
import json
import tarfile
import zipfile

import numpy as np


def grids(seed: int, n: int = 4, side: int = 3) -> list[tuple[list, list]]:
    """``n`` (input, output) pairs under the rule 'flip left-right'."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        g = rng.integers(0, 10, size=(side, side + 1)).tolist()
        out.append((g, [row[::-1] for row in g]))
    return out


def columns_first(grid: list[list[int]]) -> list[list[int]]:
    """A grid of rows as BARC's programs hold it, ``grid[x][y]``: the transpose (``np.ndarray.tolist``)."""
    return [list(col) for col in zip(*grid, strict=True)]


def barc_jsonl(n: int, *, bad_lines: dict[int, str] | None = None) -> bytes:
    """BARC's layout: one problem per line, ``examples`` = [[input, output], ...] (the last one the test),
    each grid ``.tolist()`` of a numpy grid its program indexes ``[x][y]`` (generate_problems.py's
    ``Problem.to_dict``): the pairs of ``grids(i)`` (rows), stored columns first."""
    lines = []
    for i in range(n):
        ex = [[columns_first(a), columns_first(b)] for a, b in grids(i)]
        lines.append(
            json.dumps(
                {
                    "uid": f"p{i:05d}",
                    "examples": ex,
                    "seeds": ["007bbfb7.py"],
                    "source": "def main(input_grid):\n    return input_grid[::-1, :]\n",
                }
            )
        )
    for at, text in sorted((bad_lines or {}).items()):
        lines.insert(at, text)
    return ("\n".join(lines) + "\n").encode()


def rle(grid: list[list[int]]) -> str:
    """simon-arc-lab's RLE of a grid: ``<width> <height> <rows>``, a row of one color is one digit, a row
    equal to the one above is empty, otherwise runs of ``[letter]digit`` (a=2 ... z=27)."""
    rows, prev = [], None
    for row in grid:
        if row == prev:
            rows.append("")
        elif len(set(row)) == 1:
            rows.append(str(row[0]))
        else:
            text, i = "", 0
            while i < len(row):
                j = i
                while j < len(row) and row[j] == row[i] and j - i < 27:
                    j += 1
                text += ("" if j - i == 1 else chr(ord("a") + j - i - 2)) + str(row[i])
                i = j
            rows.append(text)
        prev = row
    return f"{len(grid[0])} {len(grid)} {','.join(rows)}"


def simon_line(seed: int) -> dict:
    pairs = grids(seed, n=3)
    text = []
    for i, (a, b) in enumerate(pairs[:-1]):
        text += [f"I{i}", rle(a), f"O{i}", rle(b)]
    t = len(pairs) - 1
    text += [f"I{t}T", rle(pairs[-1][0]), f"O{t}T", "None"]
    return {
        "instruction": f"SimonsSolveColor, id {seed}",
        "input": "\n".join(text),
        "output": rle(pairs[-1][1]),
        "benchmark": "dataset=solve_color group=flip",
    }


def simon_jsonl(n: int, *, broken: dict[int, dict] | None = None) -> bytes:
    rows = [simon_line(i) for i in range(n)]
    for at, row in sorted((broken or {}).items()):
        rows.insert(at, row)
    return ("\n".join(json.dumps(r) for r in rows) + "\n").encode()


def arc_parquet(n: int, prefix: str = "t") -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = []
    for i in range(n):
        ps = [{"input": a, "output": b} for a, b in grids(1000 * ord(prefix[0]) + i)]
        rows.append({"id": f"{prefix}{i:04x}", "train": ps[:-1], "test": ps[-1:]})
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def task_json(seed: int) -> bytes:
    ps = [{"input": a, "output": b} for a, b in grids(seed)]
    return json.dumps({"train": ps[:-1], "test": ps[-1:]}).encode()


def zip_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def tar_gz_of(files: dict[str, bytes], extra: list[tarfile.TarInfo] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info)
    return buf.getvalue()


def collection_files() -> dict[str, bytes]:
    """neoneye/arc-dataset-collection's layout for the five archive-backed sources (a few tasks each)."""
    files: dict[str, bytes] = {}
    pqa = {f"PQA-dataset_10k/closure-filling/closure-filling-{i}.json": task_json(200 + i) for i in range(3)}
    files["dataset/PQA/PQA-dataset_10k.zip"] = zip_of(pqa)
    for name, seeds in (("rigid_15x15_depth_1_10k", range(300, 303)), ("unary_depth_2_10k", range(310, 312))):
        files[f"dataset/synth_riddles/{name}.tar.gz"] = tar_gz_of(
            {f"{name}/{s:08x}.json": task_json(s) for s in seeds}
        )
    files["dataset/synth_riddles/LICENSE"] = b"MIT License\n"
    for folder, seeds in (
        ("Sort-of-ARC", range(400, 402)),
        ("nosound", range(410, 413)),
        ("dbigham", range(420, 422)),
    ):
        for s in seeds:
            files[f"dataset/{folder}/data/{s:08x}.json"] = task_json(s)
    for folder in ("PQA", "synth_riddles", "Sort-of-ARC", "nosound", "dbigham"):
        files[f"dataset/{folder}/readme.md"] = f"# {folder}\n".encode()
    return files
