"""A small line-plot helper on Pillow (no matplotlib dependency): panels of named (x, y) series -> PNG."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


@dataclass
class Panel:
    """One chart: a title, axis labels and series ``name -> (xs, ys)``; ``log_x`` plots x on a log scale."""

    title: str
    xlabel: str
    ylabel: str
    series: dict[str, tuple[Sequence[float], Sequence[float]]] = field(default_factory=dict)
    log_x: bool = False
    y_range: tuple[float, float] | None = None


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    start = math.ceil(lo / step) * step
    return [start + i * step for i in range(int((hi - start) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 10 or v == int(v) else f"{v:.2g}"


def draw_panels(panels: Sequence[Panel], path: Path, *, width: int = 560, height: int = 380) -> Path:
    """Draw panels side by side (one shared legend per panel) and save a PNG at ``path``."""
    img = Image.new("RGB", (width * len(panels), height), "white")
    d = ImageDraw.Draw(img)
    for i, p in enumerate(panels):
        ox = i * width
        left, right, top, bottom = ox + 60, ox + width - 20, 30, height - 50
        xs_all = [x for xs, _ in p.series.values() for x in xs]
        ys_all = [y for _, ys in p.series.values() for y in ys if y == y]  # drop NaN
        if not xs_all or not ys_all:
            continue
        tx = (lambda v: math.log10(max(v, 1e-9))) if p.log_x else (lambda v: v)
        x0, x1 = tx(min(xs_all)), tx(max(xs_all))
        y0, y1 = p.y_range or (min(ys_all), max(ys_all))
        x1, y1 = (x1 if x1 > x0 else x0 + 1), (y1 if y1 > y0 else y0 + 1)

        def px(v: float, x0=x0, x1=x1, left=left, right=right, tx=tx) -> float:
            return left + (tx(v) - x0) / (x1 - x0) * (right - left)

        def py(v: float, y0=y0, y1=y1, top=top, bottom=bottom) -> float:
            return bottom - (v - y0) / (y1 - y0) * (bottom - top)

        d.rectangle([left, top, right, bottom], outline="black")
        for t in _ticks(y0, y1):
            d.line([left - 4, py(t), left, py(t)], fill="black")
            d.line([left, py(t), right, py(t)], fill=(230, 230, 230))
            d.text((ox + 5, py(t) - 6), _fmt(t), fill="black")
        xt = [10**e for e in range(math.floor(x0), math.ceil(x1) + 1)] if p.log_x else _ticks(x0, x1)
        for t in xt:
            if x0 <= tx(t) <= x1:
                d.line([px(t), bottom, px(t), bottom + 4], fill="black")
                d.text((px(t) - 10, bottom + 6), _fmt(t), fill="black")
        d.text((ox + width // 2 - 4 * len(p.title), 8), p.title, fill="black")
        d.text((ox + width // 2 - 3 * len(p.xlabel), height - 22), p.xlabel, fill="black")
        d.text((ox + 5, top - 20), p.ylabel, fill="black")
        for j, (name, (xs, ys)) in enumerate(p.series.items()):
            color = PALETTE[j % len(PALETTE)]
            pts = [(px(x), py(y)) for x, y in zip(xs, ys, strict=True) if y == y]
            if len(pts) > 1:
                d.line(pts, fill=color, width=2)
            elif pts:
                d.ellipse([pts[0][0] - 3, pts[0][1] - 3, pts[0][0] + 3, pts[0][1] + 3], fill=color)
            d.line([left + 8, top + 10 + 14 * j, left + 28, top + 10 + 14 * j], fill=color, width=3)
            d.text((left + 32, top + 4 + 14 * j), name, fill="black")
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path
