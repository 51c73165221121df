"""The demo's pictures (Pillow only): a loss curve and a gallery of input / prediction / target grids.

DRAFT: written before the build's ``arcforge.inspect.render`` landed on this branch; it takes the ARC palette
from there and is not tested yet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from arcforge.inspect.render import PALETTE

WHITE, GREY, DARK = (255, 255, 255), (200, 200, 200), (40, 40, 40)


@dataclass(frozen=True)
class GalleryRow:
    label: str  # e.g. "flip (exact)"
    input: np.ndarray  # (rows, cols) int8
    prediction: np.ndarray | None  # None when nothing could be decoded
    target: np.ndarray


def loss_curve_png(
    points: Sequence[tuple[int, float]], path: Path, *, size: tuple[int, int] = (640, 400)
) -> Path:
    """Draw training loss against step as a polyline with labelled min/max; returns ``path``."""
    from PIL import Image, ImageDraw

    w, h = size
    img = Image.new("RGB", size, WHITE)
    d = ImageDraw.Draw(img)
    left, right, top, bottom = 60, w - 20, 20, h - 40
    d.rectangle([left, top, right, bottom], outline=DARK)
    if points:
        steps = [s for s, _ in points]
        losses = [v for _, v in points]
        s0, s1 = min(steps), max(steps) or 1
        lo, hi = min(losses), max(losses)
        span = (hi - lo) or 1.0

        def xy(s: int, v: float) -> tuple[float, float]:
            x = left + (s - s0) / max(1, s1 - s0) * (right - left)
            return x, bottom - (v - lo) / span * (bottom - top)

        d.line([xy(s, v) for s, v in points], fill=(0, 116, 217), width=2)
        d.text((5, top), f"{hi:.3f}", fill=DARK)
        d.text((5, bottom - 10), f"{lo:.3f}", fill=DARK)
        d.text((left, bottom + 8), f"step {s0}", fill=DARK)
        d.text((right - 70, bottom + 8), f"step {s1}", fill=DARK)
    d.text((left + 5, top + 5), "training loss", fill=DARK)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


def _paste_grid(d, grid: np.ndarray | None, x0: int, y0: int, cell: int) -> None:
    if grid is None:
        d.text((x0, y0), "(none)", fill=DARK)
        return
    for r, row in enumerate(grid.tolist()):
        for c, v in enumerate(row):
            x, y = x0 + c * cell, y0 + r * cell
            d.rectangle([x, y, x + cell - 1, y + cell - 1], fill=PALETTE[v], outline=GREY)


def gallery_png(rows: Sequence[GalleryRow], path: Path, *, cell: int = 12) -> Path:
    """One line per row: label, then input | prediction | target side by side; returns ``path``."""
    from PIL import Image, ImageDraw

    gap, label_h = 16, 14

    def width(g: np.ndarray | None) -> int:
        return (g.shape[1] if g is not None else 4) * cell

    def height(r: GalleryRow) -> int:
        gs = [g for g in (r.input, r.prediction, r.target) if g is not None]
        return label_h + max(g.shape[0] for g in gs) * cell + gap

    col_w = [
        max((width(getattr(r, k)) for r in rows), default=cell) for k in ("input", "prediction", "target")
    ]
    total_w = sum(col_w) + gap * 4
    total_h = sum(height(r) for r in rows) + label_h + gap
    img = Image.new("RGB", (max(total_w, 320), max(total_h, 60)), WHITE)
    d = ImageDraw.Draw(img)
    xs = [gap, gap * 2 + col_w[0], gap * 3 + col_w[0] + col_w[1]]
    for x, title in zip(xs, ("input", "prediction", "target"), strict=True):
        d.text((x, 2), title, fill=DARK)
    y = label_h + 4
    for r in rows:
        d.text((gap, y), r.label, fill=DARK)
        for x, g in zip(xs, (r.input, r.prediction, r.target), strict=True):
            _paste_grid(d, g, x, y + label_h, cell)
        y += height(r)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
