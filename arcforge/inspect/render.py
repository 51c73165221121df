"""Draw tasks: colored cells for a terminal (ANSI 24-bit), digits for anything else, and a PNG (Pillow).

Layout (all three): one row per pair, ``input -> output``; train pairs first, then test pairs. A hidden
test output is drawn as ``?``. No rich here: the CLI decides whether the output is a color terminal
and prints the returned text as is. Pillow is imported only when a picture is drawn (extra ``png``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from arcforge.task import Task

# The palette of the official ARC viewer (index = color).
PALETTE: tuple[tuple[int, int, int], ...] = (
    (0x00, 0x00, 0x00),  # 0 black
    (0x00, 0x74, 0xD9),  # 1 blue
    (0xFF, 0x41, 0x36),  # 2 red
    (0x2E, 0xCC, 0x40),  # 3 green
    (0xFF, 0xDC, 0x00),  # 4 yellow
    (0xAA, 0xAA, 0xAA),  # 5 grey
    (0xF0, 0x12, 0xBE),  # 6 magenta
    (0xFF, 0x85, 0x1B),  # 7 orange
    (0x7F, 0xDB, 0xFF),  # 8 light blue
    (0x87, 0x0C, 0x25),  # 9 maroon
)
RESET = "\x1b[0m"


def _cell(c: int) -> str:
    r, g, b = PALETTE[c]
    return f"\x1b[48;2;{r};{g};{b}m  "


def grid_lines(grid: np.ndarray | None, *, color: bool = True) -> list[str]:
    """One string per grid row, two characters per cell: two spaces on the cell's color's background
    (``color``), or the color's digit and a space (plain text, for files, pipes and dumb terminals)."""
    if grid is None:
        return [" ?"]
    if not color:
        return ["".join(f"{int(c)} " for c in row) for row in grid]
    return ["".join(_cell(int(c)) for c in row) + RESET for row in grid]


def _width(grid: np.ndarray | None) -> int:
    return 2 if grid is None else 2 * grid.shape[1]


def task_text(task: Task, *, color: bool = True) -> str:
    """The task as text: a header, then each pair's grids side by side (ANSI colors or digits)."""
    out = [f"{task.id}  ({task.source}/{task.split}, {len(task.train)} train, {len(task.test)} test)"]
    for role, pairs in (("train", task.train), ("test", task.test)):
        for i, p in enumerate(pairs):
            out.append("")
            shape = lambda g: "?" if g is None else f"{g.shape[0]}x{g.shape[1]}"  # noqa: E731
            out.append(f"{role}[{i}]  {shape(p.input)} -> {shape(p.output)}")
            left, right = grid_lines(p.input, color=color), grid_lines(p.output, color=color)
            pad = " " * _width(p.input)
            for j in range(max(len(left), len(right))):
                a = left[j] if j < len(left) else pad
                b = right[j] if j < len(right) else ""
                out.append(f"{a}   {b}")
    return "\n".join(out) + "\n"


def task_image(task: Task, *, cell: int = 16, gap: int = 1, margin: int = 8):
    """The task as a Pillow image: pairs as rows, input left, output right, grid lines in grey."""
    from PIL import Image, ImageDraw

    pairs = [*task.train, *task.test]

    def size(g: np.ndarray | None) -> tuple[int, int]:
        h, w = (1, 1) if g is None else g.shape
        return w * (cell + gap) + gap, h * (cell + gap) + gap

    col_w = [max(size(p.input)[0] for p in pairs), max(size(p.output)[0] for p in pairs)]
    row_h = [max(size(p.input)[1], size(p.output)[1]) for p in pairs]
    width = margin * 3 + sum(col_w) + margin
    height = margin * (len(pairs) + 1) + sum(row_h) + margin * (len(task.test) > 0)
    img = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    y = margin
    for i, p in enumerate(pairs):
        if i == len(task.train):
            y += margin  # a gap between train and test
            draw.line([(margin, y - margin // 2 - 1), (width - margin, y - margin // 2 - 1)], (0, 0, 0), 1)
        x = margin
        for k, g in enumerate((p.input, p.output)):
            _draw_grid(draw, g, x, y, cell, gap)
            x += col_w[k] + margin * 2
        y += row_h[i] + margin
    return img


def _draw_grid(draw, grid: np.ndarray | None, x0: int, y0: int, cell: int, gap: int) -> None:
    if grid is None:  # hidden answer: a grey box with a question mark
        draw.rectangle([x0, y0, x0 + cell + 2 * gap, y0 + cell + 2 * gap], fill=(200, 200, 200))
        draw.text((x0 + cell // 3, y0 + cell // 6), "?", fill=(0, 0, 0))
        return
    h, w = grid.shape
    draw.rectangle(
        [x0, y0, x0 + w * (cell + gap) + gap - 1, y0 + h * (cell + gap) + gap - 1], fill=(85, 85, 85)
    )
    for r in range(h):
        for c in range(w):
            x, y = x0 + gap + c * (cell + gap), y0 + gap + r * (cell + gap)
            draw.rectangle([x, y, x + cell - 1, y + cell - 1], fill=PALETTE[int(grid[r, c])])


def save_png(task: Task, path: Path, *, cell: int = 16) -> Path:
    """Write the task image to ``path`` (PNG)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    task_image(task, cell=cell).save(path, format="PNG")
    return path
