"""Drawing tasks: terminal cells in the ARC palette and a PNG whose pixels are the grid colors."""

from __future__ import annotations

import numpy as np
from PIL import Image

from arcforge.inspect.render import PALETTE, save_png, task_text
from arcforge.task import Pair, Task


def _task() -> Task:
    g = np.array([[0, 1, 2], [3, 4, 5]], np.int8)
    return Task("s/x", "s", "training", [Pair(g, g[::-1])], [Pair(np.array([[9]], np.int8), None)])


def test_terminal_text_uses_the_palette():
    text = task_text(_task())
    assert text.startswith("s/x  (s/training, 1 train, 1 test)")
    r, g, b = PALETTE[2]
    assert f"\x1b[48;2;{r};{g};{b}m  " in text
    assert "train[0]  2x3 -> 2x3" in text and "test[0]  1x1 -> ?" in text
    # each input row of the first pair is 3 colored cells
    first_row = text.splitlines()[3]
    assert first_row.count("\x1b[48;2;") == 6 and first_row.count("\x1b[0m") == 2


def test_png_pixels(tmp_path):
    path = save_png(_task(), tmp_path / "t.png", cell=10)
    img = Image.open(path).convert("RGB")
    # first grid starts at margin 8 with a 1 px grid line: cell (r, c) center
    center = lambda r, c: (8 + 1 + c * 11 + 5, 8 + 1 + r * 11 + 5)  # noqa: E731
    assert img.getpixel(center(0, 0)) == PALETTE[0]
    assert img.getpixel(center(0, 2)) == PALETTE[2]
    assert img.getpixel(center(1, 1)) == PALETTE[4]
    assert img.width > 2 * 3 * 11 and img.height > 2 * 2 * 11
