"""Tokenization of ARC tasks: one example = the train pairs, then one test input; target = its output.

Vocabulary (16 ids)::

    0-9  colors            10 PAD          11 ROW (end of a grid row)
    12 GRID_START          13 GRID_END     14 INPUT (an input grid follows)
    15 OUTPUT (an output grid follows)     16 BOS    17 EOS

Layout of one example (a task with n train pairs and test input ``k``)::

    BOS  INPUT GRID_START <rows of input 1> GRID_END  OUTPUT GRID_START <rows of output 1> GRID_END ...
         INPUT GRID_START <test input k> GRID_END  OUTPUT GRID_START <test output k> GRID_END  EOS

where a grid of h x w cells is h rows of ``w`` color tokens each followed by ``ROW``.

Every token carries six position numbers ``(seq, row, col, h, w, pair)``: ``seq`` is its index inside the
example (restarting at 0 for every example in a packed row); ``row``/``col`` locate it inside its grid,
shifted by one so that GRID_START sits at (0, 0): cell (r, c) -> (r + 1, c + 1), ``ROW`` after row r ->
(r + 1, w + 1), GRID_END -> (h + 1, 0); markers (BOS, INPUT, OUTPUT, EOS) get (0, 0). ``h, w`` is the
size of the grid for the cells of *input* grids and (0, 0) for every other token: the model's symmetry
frames move those keys only (``arcforge.train.rope.frame_rc``), and an output grid's size is never known
before it is generated. ``pair`` is the index of the demonstration pair the token belongs to (the test
pair is the last; BOS sits in pair 0): the model's ``pair_seq`` rotates by it instead of ``seq``, so that an
output cell and the cells of its own input grid are a zero sequence offset apart. The model's RoPE mode
picks which of (seq, row, col) it uses (see ``arcforge.train.model``); ``POS_DIMS`` is the width of a
position, and ``POS`` names its columns (with the frame lookups and evidence that follow the six).

The loss mask marks *target* tokens (the tokens the model must predict): by default the test output
(its GRID_START, cells, ROW tokens, GRID_END and the final EOS); with ``loss_on="outputs"`` also every
train output grid.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from arcforge.grids import Grid
from arcforge.task import MAX_GRID_SIDE, Task

N_COLORS = 10
PAD, ROW, GRID_START, GRID_END, INPUT, OUTPUT, BOS, EOS = range(10, 18)
VOCAB_SIZE = 18
# Frame lookups: for every token, the color that each frame (the 8 symmetries of the square, then the 4
# edge frames: ``arcforge.train.rope.FRAMES``, then the input tiled over the whole plane) of its pair's
# input grid puts at the token's own cell and at the cell it predicts (``next_rc``); NO_CELL where that
# frame puts no cell there. The first MAPPED_FRAMES send each cell to one place; TILE_FRAME repeats it.
MAPPED_FRAMES = 12
TILE_FRAME = MAPPED_FRAMES
LOOKUP_FRAMES = TILE_FRAME + 1
NO_CELL = 10
TABLE_SIDE = 64  # lookup tables cover rows/cols 0-63 (edge frames reach twice a 30-cell side)
# The largest grid side the trainer takes (ARC's limit): the edge frames send a cell up to twice the side
# away (2 * 30 + 1 < TABLE_SIDE) and the decoder writes at most 30x30. A task with a larger grid (1D-ARC
# rows of up to 93 cells, tama's large grids) is left out of training and evaluation, named with
# ``grid_too_large``'s reason, never cut or wrapped around the tables: ``arcforge.task.MAX_GRID_SIDE``.
# Frame evidence: for every token, per frame, the percentage of the output cells of the demonstration
# pairs *before* its pair that the frame of their own input explains (-1: no earlier pair). Tokens of the
# test pair see every demonstration; a decoded token copies it from the prompt's last token.


class PositionColumns(NamedTuple):
    """Where each part of a token's position sits (``[..., POS_DIMS]``): an int names one column, a slice
    several. The model and the decoder read positions by these names only."""

    seq: int = 0  # index inside the example (the model's ``pair_seq`` puts the pair here)
    row: int = 1  # (row, col) inside the grid, GRID_START at (0, 0)
    col: int = 2
    h: int = 3  # the grid's size, on input-grid cells only (0 elsewhere)
    w: int = 4
    pair: int = 5  # the demonstration pair (the test pair is the last)
    place: slice = slice(0, 3)  # (seq, row, col): what RoPE reads
    rc: slice = slice(1, 3)  # (row, col)
    size: slice = slice(3, 5)  # (h, w)
    copied: slice = slice(3, 6)  # (h, w, pair): what a decoded token takes from its prompt's last token
    own: slice = slice(6, 6 + LOOKUP_FRAMES)  # frame lookups at the token's own cell
    next: slice = slice(6 + LOOKUP_FRAMES, 6 + 2 * LOOKUP_FRAMES)  # ... at the cell it predicts
    lookups: slice = slice(6, 6 + 2 * LOOKUP_FRAMES)  # own then next
    evidence: slice = slice(6 + 2 * LOOKUP_FRAMES, 6 + 3 * LOOKUP_FRAMES)  # frame evidence


POS = PositionColumns()
POS_DIMS = POS.evidence.stop
LOOKUPS, EVIDENCE = POS.lookups, POS.evidence
TOKEN_NAMES = [str(i) for i in range(10)] + [
    "<pad>",
    "<row>",
    "<grid>",
    "</grid>",
    "<in>",
    "<out>",
    "<bos>",
    "<eos>",
]


@dataclass
class Example:
    """One tokenized (task, test index). Arrays are aligned: one entry per token."""

    tokens: np.ndarray  # [T] int64
    positions: np.ndarray  # [T, POS_DIMS] int64 (seq, row, col, h, w, pair, lookups, evidence)
    targets: np.ndarray  # [T] bool: this token is predicted (loss / accuracy)
    task_id: str = ""
    test_index: int = 0
    n_train: int = 0  # train pairs kept (may be fewer than the task's when truncated to fit)

    def __len__(self) -> int:
        return int(self.tokens.shape[0])


def grid_too_large(task: Task) -> str | None:
    """Why the trainer leaves ``task`` out (a grid side past ``MAX_GRID_SIDE``), or None when it fits."""
    shapes = [g.shape for p in (*task.train, *task.test) for g in (p.input, p.output) if g is not None]
    big = max(shapes, key=max, default=(0, 0))
    if max(big) <= MAX_GRID_SIDE:
        return None
    return (
        f"a {big[0]}x{big[1]} grid: past the trainer's {MAX_GRID_SIDE}-cell side "
        "(its frame tables and decoder)"
    )


def grid_tokens(grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Tokens and (row, col) positions of one grid including GRID_START/GRID_END: ``[h*(w+1)+2]``."""
    h, w = grid.shape
    body = np.empty((h, w + 1), dtype=np.int64)
    body[:, :w] = grid
    body[:, w] = ROW
    rows = np.broadcast_to(np.arange(1, h + 1)[:, None], (h, w + 1))
    cols = np.broadcast_to(np.arange(1, w + 2)[None, :], (h, w + 1))
    toks = np.concatenate([[GRID_START], body.ravel(), [GRID_END]])
    rc = np.concatenate([[[0, 0]], np.stack([rows.ravel(), cols.ravel()], 1), [[h + 1, 0]]]).astype(np.int64)
    return toks, rc


def grid_length(grid: Grid) -> int:
    """Number of tokens ``grid_tokens`` produces (without the INPUT/OUTPUT marker)."""
    h, w = grid.shape
    return h * (w + 1) + 2


def example_length(train: list[tuple[Grid, Grid]], test_in: Grid, test_out: Grid | None) -> int:
    """Tokens of an example (with the test output when given), computed from shapes only."""
    # BOS, the train pairs (two markers each), INPUT + test input, OUTPUT
    n = 1 + sum(2 + grid_length(i) + grid_length(o) for i, o in train) + 1 + grid_length(test_in) + 1
    return n + (grid_length(test_out) + 1 if test_out is not None else 1)  # output + EOS | GRID_START


def frame_table(r: Any, c: Any, h: Any, w: Any) -> tuple[tuple[Any, Any], ...]:
    """Where each frame (``FRAMES`` order) sends 1-based cells ``(r, c)`` of ``h x w`` grids: one ``(row,
    col)`` per frame, for numpy arrays and torch tensors alike (the one definition of the frames' geometry;
    ``frame_images`` and ``rope.frame_rc`` read it)."""
    rr, cc = h + 1 - r, w + 1 - c  # flipped row / col
    return (
        (r, c),
        (r, cc),
        (rr, c),
        (rr, cc),
        (c, r),
        (cc, rr),
        (cc, r),
        (c, rr),
        (r, w + cc),
        (h + rr, c),
        (r, w + c),
        (h + r, c),
    )


@functools.lru_cache(maxsize=1024)
def frame_images(h: int, w: int) -> np.ndarray:
    """``[MAPPED_FRAMES, h, w, 2]``: the 1-based (row, col) that each frame sends cell (r, c) of an h x w grid
    to (numpy twin of ``arcforge.train.rope.frame_rc``, same frame order). Cached per size, read-only."""
    r, c = np.meshgrid(np.arange(1, h + 1), np.arange(1, w + 1), indexing="ij")
    out = np.stack([np.stack(i, -1) for i in frame_table(r, c, h, w)])
    out.flags.writeable = False
    return out


def lookup_table(grid: Grid) -> np.ndarray:
    """``[LOOKUP_FRAMES, TABLE_SIDE, TABLE_SIDE]`` uint8: entry (f, r', c') is the color of the cell of
    ``grid`` that frame f sends to (r', c'), NO_CELL where it sends none; the tiling frame puts the grid's
    cell ((r' - 1) mod h, (c' - 1) mod w) at every (r', c') from (1, 1) on."""
    h, w = grid.shape
    g = np.asarray(grid, np.uint8)
    table = np.full((LOOKUP_FRAMES, TABLE_SIDE, TABLE_SIDE), NO_CELL, np.uint8)
    table.reshape(-1)[_image_index(h, w)] = np.tile(g.ravel(), MAPPED_FRAMES)
    side = TABLE_SIDE - 1
    table[TILE_FRAME, 1:, 1:] = np.tile(g, (-(-side // h), -(-side // w)))[:side, :side]
    return table


@functools.lru_cache(maxsize=1024)
def _image_index(h: int, w: int) -> np.ndarray:
    """``[MAPPED_FRAMES * h * w]``: where ``frame_images`` sends each cell (flat lookup-table indices)."""
    img = frame_images(h, w)  # [F, h, w, 2]
    f = np.arange(MAPPED_FRAMES)[:, None, None]
    out = ((f * TABLE_SIDE + img[..., 0]) * TABLE_SIDE + img[..., 1]).ravel()
    out.flags.writeable = False
    return out


def next_rc(tokens: np.ndarray, rc: np.ndarray) -> np.ndarray:
    """``[T, 2]`` (row, col) of the place each token predicts (numpy twin of
    ``arcforge.train.model.next_cell_positions``): after a cell (r, c + 1), after a ROW (r + 1, 1), after
    GRID_START (1, 1), else the token's own."""
    r, c = rc[:, 0].copy(), rc[:, 1].copy()
    cell, row, start = tokens < N_COLORS, tokens == ROW, tokens == GRID_START
    c[cell] += 1
    r[row] += 1
    r[start] = 1
    c[row | start] = 1
    return np.stack([r, c], 1)


def frame_lookups(table: np.ndarray, rc: np.ndarray, nrc: np.ndarray) -> np.ndarray:
    """``[n, 2 * LOOKUP_FRAMES]``: ``table``'s colors at each (row, col) of ``rc``, ``nrc`` (``[n, 2]``)."""
    flat = table.reshape(LOOKUP_FRAMES, -1)
    return np.concatenate([flat[:, _table_index(rc)].T, flat[:, _table_index(nrc)].T], 1).astype(np.int64)


def frame_evidence(tables: Sequence[np.ndarray], outputs: list[Grid]) -> np.ndarray:
    """``[len(outputs) + 1, LOOKUP_FRAMES]`` int64: row p is, per frame, the percentage (0-100) of the cells
    of ``outputs[:p]`` that the frame of their pair's input (``tables[j]``) puts there; row 0 is -1 (no
    evidence yet)."""
    hits = np.zeros((len(outputs) + 1, LOOKUP_FRAMES), np.int64)
    cells = np.zeros(len(outputs) + 1, np.int64)
    for j, o in enumerate(outputs):
        h, w = o.shape
        hits[j + 1] = (tables[j][:, 1 : h + 1, 1 : w + 1] == np.asarray(o, np.uint8)).sum((1, 2))
        cells[j + 1] = h * w
    hits, cells = hits.cumsum(0), cells.cumsum(0)
    out = np.full_like(hits, -1)
    out[1:] = (100 * hits[1:]) // np.maximum(cells[1:, None], 1)
    return out


def input_table(ex: Example, pair: int = -1) -> np.ndarray:
    """The lookup table of an example's input grid of ``pair`` (default: the test pair, the last)."""
    pairs = ex.positions[:, POS.pair]
    p = int(pairs.max()) if pair < 0 else pair
    cells = (ex.positions[:, POS.h] > 0) & (pairs == p)
    h, w = ex.positions[cells][0, POS.size]
    grid = np.zeros((h, w), np.int8)
    grid[ex.positions[cells, POS.row] - 1, ex.positions[cells, POS.col] - 1] = ex.tokens[cells]
    return lookup_table(grid)


@functools.lru_cache(maxsize=4096)
def _grid_layout(h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For the ``h*(w+1)+2`` tokens of an h x w grid (``grid_tokens``): their (row, col) ``[n, 2]``; where
    their own and their next (``next_rc``) lookups sit in a flattened lookup table ``[n]`` each; and the
    indices of the cells among the tokens ``[h*w]``. Cached per size, read-only."""
    body = np.zeros((h, w + 1), np.int64)  # any color for the cells; ROW closes each row
    body[:, w] = ROW
    toks = np.concatenate([[GRID_START], body.ravel(), [GRID_END]])
    rc = grid_tokens(np.zeros((h, w), np.int8))[1]
    own, nxt = (_table_index(x) for x in (rc, next_rc(toks, rc)))
    cells = 1 + (np.arange(h)[:, None] * (w + 1) + np.arange(w)[None, :]).ravel()
    for a in (rc, own, nxt, cells):
        a.flags.writeable = False
    return rc, own, nxt, cells


def _table_index(rc: np.ndarray) -> np.ndarray:
    """``[n]`` flat indices into a ``[TABLE_SIDE * TABLE_SIDE]`` table of 1-based (row, col) ``[n, 2]``."""
    return rc[:, 0].clip(0, TABLE_SIDE - 1) * TABLE_SIDE + rc[:, 1].clip(0, TABLE_SIDE - 1)


class _Writer:
    """Writes one example's tokens, positions and targets into preallocated arrays of ``total`` entries,
    left to right: every token looks into its pair's input (``tables``, one lookup table per pair) and
    carries its pair's frame ``evidence`` (``frame_evidence``)."""

    def __init__(self, total: int, tables: list[np.ndarray], evidence: np.ndarray) -> None:
        self.tokens = np.empty(total, np.int64)
        self.positions = np.zeros((total, POS_DIMS), np.int64)
        self.targets = np.zeros(total, bool)
        self.flat = [t.reshape(LOOKUP_FRAMES, -1) for t in tables]
        self.evidence = evidence
        self.o = 0  # the next token's index

    def lookups(self, pair: int, at: np.ndarray) -> np.ndarray:
        """``[k, F]``: the colors of ``pair``'s input under every frame at flat table indices ``at [k]``."""
        return self.flat[pair][:, at].T

    def marker(self, token: int, pair: int, target: bool) -> None:
        """One token outside a grid (BOS, INPUT, OUTPUT, EOS): at (0, 0), where no frame puts a cell."""
        o = self.o
        self.tokens[o], self.targets[o] = token, target
        pos = self.positions[o]
        pos[POS.pair], pos[POS.lookups], pos[POS.evidence] = pair, NO_CELL, self.evidence[pair]
        self.o += 1

    def grid(self, g: Grid, kind: int, target: bool, pair: int) -> None:
        """``kind`` (INPUT or OUTPUT) then grid ``g`` (``grid_tokens``' layout, cached per size); input
        cells carry their grid's size (the symmetry frames' keys)."""
        self.marker(kind, pair, False)
        h, w = g.shape
        rc, own, nxt, cells = _grid_layout(h, w)
        o, k = self.o, len(rc)
        t, pos = self.tokens[o : o + k], self.positions[o : o + k]
        t[0], t[-1] = GRID_START, GRID_END
        body = t[1:-1].reshape(h, w + 1)
        body[:, :w], body[:, w] = g, ROW
        pos[:, POS.rc], pos[:, POS.pair] = rc, pair
        if kind == INPUT:
            pos[cells, POS.h], pos[cells, POS.w] = h, w
        pos[:, POS.own] = self.lookups(pair, own)
        pos[:, POS.next] = self.lookups(pair, nxt)
        pos[:, POS.evidence] = self.evidence[pair]
        self.targets[o : o + k] = target
        self.o += k

    def prompt_end(self, pair: int) -> None:
        """``OUTPUT GRID_START``: the decoding prompt's end. GRID_START predicts cell (1, 1) of the output:
        its next lookups are the test input's there."""
        self.marker(OUTPUT, pair, False)
        self.marker(GRID_START, pair, False)
        at = _table_index(np.array([[1, 1]]))
        self.positions[self.o - 1, POS.next] = self.lookups(pair, at)[0]


def encode(
    train: list[tuple[Grid, Grid]],
    test_in: Grid,
    test_out: Grid | None,
    *,
    loss_on: str,
    task_id: str = "",
    test_index: int = 0,
) -> Example:
    """Encode grids into an ``Example``. With ``test_out=None`` the sequence is the decoding prompt:
    it ends with ``OUTPUT GRID_START`` of the test output. ``loss_on``: a ``arcforge.train.config.LossOn``
    value (``DataConfig.loss_on`` for training), which tokens are targets.

    Written straight into preallocated arrays (the layout of a grid's tokens is cached per size): the
    evaluator encodes every vote transform of every test input, and the trainer every example it packs."""
    every_output = loss_on == "outputs"  # LossOn.outputs: every output grid is a target
    if not every_output and loss_on != "test":  # LossOn.test: the test output only
        raise ValueError(f"loss_on must be a LossOn value (test or outputs), not {loss_on!r}")
    n = len(train)  # the test pair's index
    total = example_length(train, test_in, test_out)
    tables = [lookup_table(g) for g in [i for i, _ in train] + [test_in]]  # [F, S, S] per pair's input
    w = _Writer(total, tables, frame_evidence(tables[:n], [o for _, o in train]))  # evidence [n + 1, F]
    w.marker(BOS, 0, False)
    for j, (i, out) in enumerate(train):
        w.grid(i, INPUT, False, j)
        w.grid(out, OUTPUT, every_output, j)
    w.grid(test_in, INPUT, False, n)
    if test_out is not None:
        w.grid(test_out, OUTPUT, True, n)
        w.marker(EOS, n, True)
    else:  # prompt for decoding: the model continues after GRID_START
        w.prompt_end(n)
    assert w.o == total
    w.positions[:, POS.seq] = np.arange(total)
    return Example(w.tokens, w.positions, w.targets, task_id, test_index, n)


def encode_task(task: Task, test_index: int, *, loss_on: str, max_len: int | None = None) -> Example | None:
    """Encode test pair ``test_index`` of ``task``; train pairs are dropped from the end until the example
    fits ``max_len`` (at least one is kept). Returns None when it cannot fit (or has no test output)."""
    pair = task.test[test_index]
    if pair.output is None:
        return None
    train = [(p.input, p.output) for p in task.train if p.output is not None]
    if max_len is not None:
        while len(train) > 1 and example_length(train, pair.input, pair.output) > max_len:
            train.pop()
        if example_length(train, pair.input, pair.output) > max_len:
            return None
    return encode(train, pair.input, pair.output, loss_on=loss_on, task_id=task.id, test_index=test_index)


def decode(tokens: np.ndarray) -> dict:
    """Parse a full example back into ``{"train": [(in, out), ...], "test": (in, out)}`` (exact inverse of
    ``encode`` for well-formed sequences; raises ValueError otherwise)."""
    grids: list[tuple[int, Grid]] = []
    toks = [int(t) for t in tokens]
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in (INPUT, OUTPUT):
            if i + 1 >= len(toks) or toks[i + 1] != GRID_START:
                raise ValueError(f"marker at {i} is not followed by <grid>")
            end = toks.index(GRID_END, i + 2)
            g = parse_grid_tokens(toks[i + 2 : end])
            if g is None:
                raise ValueError(f"grid at {i} is not rectangular")
            grids.append((t, g))
            i = end + 1
        else:
            i += 1
    if len(grids) < 2 or len(grids) % 2:
        raise ValueError("an example holds input/output grid pairs")
    pairs = [(grids[j][1], grids[j + 1][1]) for j in range(0, len(grids), 2)]
    return {"train": pairs[:-1], "test": pairs[-1]}


def parse_grid_tokens(toks: list[int]) -> Grid | None:
    """Cells of a grid body (color tokens with ROW after each row, no GRID_START/END) -> grid, or None
    when the tokens do not form a non-empty rectangle."""
    rows: list[list[int]] = []
    cur: list[int] = []
    for t in toks:
        if t == ROW:
            rows.append(cur)
            cur = []
        elif 0 <= t < N_COLORS:
            cur.append(t)
        else:
            return None
    if cur or not rows or not rows[0] or any(len(r) != len(rows[0]) for r in rows):
        return None
    return np.asarray(rows, dtype=np.int8)


def padded_30x30_tokens(task: Task) -> int:
    """Tokens of the HRM/TRM scheme: every grid padded to 30x30 = 900 tokens (for utilization reports)."""
    return 900 * sum(1 for _ in task.grids())
