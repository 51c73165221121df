"""Which datasets copy which: a source x source matrix of shared tasks, read from a built ``out`` folder.

Inputs are the dedup reports the build writes (``arcforge.build.reports``): ``excluded`` (a non-evaluation
task and the evaluation tasks it copies), ``duplicates`` (a dropped copy and the task kept in its place)
and ``reported`` (evaluation tasks equal to each other; trivial leaked pairs are not counted). Each
report row links two sources; ``matrix[a][b]`` counts the rows linking a and b, so the matrix is
symmetric and its diagonal counts copies within one source. The counting is one polars lazy query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from arcforge.build.reports import has_report, readable, report_path, scan_report
from arcforge.errors import DedupError

REPORTS = ("excluded", "duplicates", "reported")


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


def links(out: Path) -> pl.LazyFrame:
    """One row per (report row, other source): columns ``a`` (the copy's source), ``b``, ``level``."""
    eval_sources = (
        pl.when(pl.col("eval_sources").list.len().fill_null(0) > 0)
        .then(pl.col("eval_sources"))
        .otherwise(pl.col("eval_ids").list.eval(pl.element().str.split("/").list.first()))
    )
    parts = [
        scan_report(out, "excluded")
        .select(a=pl.col("source"), b=eval_sources.list.unique(maintain_order=True), level=pl.col("level"))
        .explode("b"),
        scan_report(out, "duplicates").select(
            a=pl.col("dropped_source"), b=pl.col("kept_source"), level=pl.col("level")
        ),
    ]
    if has_report(out, "reported"):
        parts.append(
            scan_report(out, "reported")
            .filter(pl.col("reason").str.starts_with("reference"))
            .select(
                a=pl.col("source"),
                b=pl.col("eval_sources").list.unique(maintain_order=True),
                level=pl.col("level"),
            )
            .explode("b")
        )
    return pl.concat(parts).filter(pl.col("b").is_not_null())


def overlap(out: Path) -> Overlap:
    """The overlap matrix of a built dataset folder (the ``--out`` of ``arcforge build``)."""
    out = Path(out)
    missing = [str(report_path(out, n).relative_to(out)) for n in REPORTS[:2] if not has_report(out, n)]
    if missing:
        raise DedupError(
            f"{out}: no {' or '.join(missing)} (not a built dataset folder?)",
            hint="run `arcforge build --out DIR` first (with --exclude-eval for the eval reports)",
        )
    lf = links(out)
    with readable(out, REPORTS):
        pair_counts, level_counts = pl.collect_all(
            [
                lf.group_by("a", "b").len(),
                lf.group_by("level").len().sort("level"),
            ]
        )
    sources = sorted(set(pair_counts["a"].to_list()) | set(pair_counts["b"].to_list()))
    index = {s: i for i, s in enumerate(sources)}
    matrix = [[0] * len(sources) for _ in sources]
    for a, b, n in pair_counts.iter_rows():  # one row per pair of sources, not per task
        i, j = index[a], index[b]
        matrix[i][j] += n
        if i != j:
            matrix[j][i] += n
    return Overlap(sources, matrix, dict(level_counts.iter_rows()))


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
            box = (
                margin + j * cell,
                margin + i * cell,
                margin + (j + 1) * cell - 1,
                margin + (i + 1) * cell - 1,
            )
            draw.rectangle(box, fill=(shade, shade, 255), outline=(200, 200, 200))
            if v:
                draw.text(
                    (box[0] + 6, box[1] + cell // 2 - 6), str(v), fill="black" if shade > 120 else "white"
                )
    img.save(path, format="PNG")
