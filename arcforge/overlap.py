"""Which datasets copy which: a source x source matrix of shared tasks, read from a built ``out`` folder.

Inputs are the dedup reports the build writes: ``excluded.parquet`` (a non-evaluation task and the
evaluation tasks it copies), ``duplicates.parquet`` (a dropped copy and the task kept in its place) and,
when present, ``reported.parquet`` (evaluation tasks equal to each other; trivial leaked pairs are not
counted). Each report row links two sources; ``matrix[a][b]`` counts the rows linking a and b, so the
matrix is symmetric and its diagonal counts copies within one source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from arcforge.errors import DedupError
from arcforge.shards import read_file

REPORTS = ("excluded.parquet", "duplicates.parquet", "reported.parquet")


@dataclass
class Overlap:
    sources: list[str]
    matrix: list[list[int]]  # matrix[i][j]: tasks shared between sources[i] and sources[j]
    by_level: dict[str, int] = field(default_factory=dict)  # report rows per level

    def to_json(self) -> dict:
        pairs = [
            {"a": a, "b": b, "shared": self.matrix[i][j]}
            for i, a in enumerate(self.sources)
            for j, b in enumerate(self.sources)
            if j >= i and self.matrix[i][j]
        ]
        return {"sources": self.sources, "matrix": self.matrix, "pairs": pairs, "by_level": self.by_level}


def _links(out: Path) -> list[tuple[str, str, str]]:
    links: list[tuple[str, str, str]] = []
    ex = read_file(out / "excluded.parquet", required=("source", "level", "eval_ids")).to_pylist()
    for r in ex:
        for s in dict.fromkeys(r.get("eval_sources") or [e.split("/", 1)[0] for e in r["eval_ids"]]):
            links.append((r["source"], s, r["level"]))
    for r in read_file(out / "duplicates.parquet", required=("dropped_source", "kept_source", "level")).to_pylist():
        links.append((r["dropped_source"], r["kept_source"], r["level"]))
    if (out / "reported.parquet").is_file():
        for r in read_file(out / "reported.parquet", required=("source", "level", "eval_sources")).to_pylist():
            if str(r.get("reason", "")).startswith("reference"):
                for s in dict.fromkeys(r["eval_sources"]):
                    links.append((r["source"], s, r["level"]))
    return links


def overlap(out: Path) -> Overlap:
    """The overlap matrix of a built dataset folder (the ``--out`` of ``arcforge build``)."""
    out = Path(out)
    missing = [n for n in REPORTS[:2] if not (out / n).is_file()]
    if missing:
        raise DedupError(f"{out}: no {' or '.join(missing)} (not a built dataset folder?)",
                         hint="run `arcforge build --out DIR` first (with --exclude-eval for the eval reports)")
    links = _links(out)
    sources = sorted({s for a, b, _ in links for s in (a, b)})
    index = {s: i for i, s in enumerate(sources)}
    matrix = [[0] * len(sources) for _ in sources]
    by_level: dict[str, int] = {}
    for a, b, level in links:
        i, j = index[a], index[b]
        matrix[i][j] += 1
        if i != j:
            matrix[j][i] += 1
        by_level[level] = by_level.get(level, 0) + 1
    return Overlap(sources, matrix, by_level)


def heatmap_png(ov: Overlap, path: Path, *, cell: int = 56) -> None:
    """Write the matrix as a PNG heatmap (Pillow): darker = more shared tasks, counts in the cells."""
    from PIL import Image, ImageDraw

    n = len(ov.sources)
    margin = max([len(s) for s in ov.sources] + [4]) * 7 + 12
    size = (margin + n * cell + 8, margin + n * cell + 8)
    img = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(img)
    peak = max([max(row) for row in ov.matrix] + [1])
    for i, a in enumerate(ov.sources):
        draw.text((4, margin + i * cell + cell // 2 - 6), a, fill="black")
        label = Image.new("RGB", (margin, 14), "white")
        ImageDraw.Draw(label).text((2, 1), a, fill="black")
        img.paste(label.rotate(90, expand=True), (margin + i * cell + cell // 2 - 7, 4))
        for j in range(n):
            v = ov.matrix[i][j]
            shade = int(255 - 215 * (v / peak) ** 0.5) if v else 255
            box = (margin + j * cell, margin + i * cell, margin + (j + 1) * cell - 1, margin + (i + 1) * cell - 1)
            draw.rectangle(box, fill=(shade, shade, 255), outline=(200, 200, 200))
            if v:
                draw.text((box[0] + 6, box[1] + cell // 2 - 6), str(v), fill="black" if shade > 120 else "white")
    img.save(path, format="PNG")
