"""Tokenizer, augmentation, packing and the loader, on real ARC-AGI-1 tasks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from arcforge.shards import read_tasks
from arcforge.train.augment import Transform, random_transform, voting_transforms
from arcforge.train.config import AugmentConfig, DataConfig
from arcforge.train.data import DataPosition, PackedBatches, iter_rows
from arcforge.train.pack import first_fit_decreasing, pack
from arcforge.train.tokenize import (
    GRID_START,
    INPUT,
    OUTPUT,
    ROW,
    decode,
    encode,
    encode_task,
    example_length,
    frame_evidence,
    grid_tokens,
    lookup_table,
)
from tests import train_fixtures
from tests.train_fixtures import small_tasks

arc_shards = train_fixtures.arc_shards  # the shared fixture
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tasks():
    return small_tasks("training", 30, max_side=30, difficulty="hard")


def test_tokenize_round_trip_and_positions(tasks):
    for task in tasks:
        for k, pair in enumerate(task.test):
            ex = encode_task(task, k, loss_on="test")
            assert len(ex) == example_length(
                [(p.input, p.output) for p in task.train], pair.input, pair.output
            )
            back = decode(ex.tokens)
            assert len(back["train"]) == len(task.train)
            for (i, o), p in zip(back["train"], task.train, strict=True):
                assert np.array_equal(i, p.input) and np.array_equal(o, p.output)
            assert np.array_equal(back["test"][0], pair.input) and np.array_equal(
                back["test"][1], pair.output
            )
            seq, row, col, gh, gw, pair_of = ex.positions.T[:6]
            cells = ex.tokens < 10
            assert np.array_equal(seq, np.arange(len(ex)))
            # the pair index: 0 up to BOS and the first pair, then one more at every <in> marker
            assert np.array_equal(pair_of, np.maximum(0, np.cumsum(ex.tokens == INPUT) - 1))
            # the grid size sits on input cells only: exactly the cells of every input grid
            sized = gh > 0
            assert sized.sum() == sum(p.input.size for p in task.train) + pair.input.size
            assert (cells[sized]).all() and (gw[sized] > 0).all() and not (gw[~sized]).any()
            assert (row[sized] <= gh[sized]).all() and (col[sized] <= gw[sized]).all()
            cells = ex.tokens < 10
            # every cell of the test output sits at (r+1, c+1) of its own grid
            start = len(ex) - (pair.output.shape[0] * (pair.output.shape[1] + 1) + 3)
            assert ex.tokens[start - 1] == OUTPUT and ex.tokens[start] == GRID_START
            h, w = pair.output.shape
            out_cells = np.nonzero(cells[start:])[0] + start
            assert np.array_equal(row[out_cells] - 1, np.repeat(np.arange(h), w))
            assert np.array_equal(col[out_cells] - 1, np.tile(np.arange(w), h))
            assert np.array_equal(ex.tokens[out_cells], pair.output.ravel())
            assert (col[ex.tokens == ROW] >= 2).all()
            # loss only on the test output (GRID_START .. EOS), never on inputs or train outputs
            assert ex.targets[start:].all() and not ex.targets[:start].any()


def test_loss_on_outputs_marks_every_output_grid(tasks):
    ex = encode_task(tasks[0], 0, loss_on="outputs")
    n_out = sum(p.output.size for p in tasks[0].train) + tasks[0].test[0].output.size
    assert int((ex.targets & (ex.tokens < 10)).sum()) == n_out


def test_truncation_drops_train_pairs_to_fit(tasks):
    task = max(
        tasks,
        key=lambda t: example_length(
            [(p.input, p.output) for p in t.train], t.test[0].input, t.test[0].output
        ),
    )
    full = len(encode_task(task, 0, loss_on="test"))
    ex = encode_task(task, 0, max_len=full - 1, loss_on="test")
    assert ex is not None and len(ex) <= full - 1 and ex.n_train < len(task.train)
    assert encode_task(task, 0, max_len=10, loss_on="test") is None


def test_augmentation_invertible_and_consistent(tasks):
    rng = np.random.default_rng(0)
    for task in tasks[:10]:
        t = random_transform(rng, len(task.train), AugmentConfig())
        aug = t.task(task)
        assert sorted(t.order) == list(range(len(task.train)))
        for j, src in enumerate(t.order):  # the same transform on every grid, pairs reordered
            p, q = task.train[src], aug.train[j]
            assert np.array_equal(t.invert(q.input), p.input) and np.array_equal(t.invert(q.output), p.output)
            assert np.array_equal(q.input, t.grid(p.input))
        assert np.array_equal(t.invert(aug.test[0].output), task.test[0].output)
        assert t.perm[0] == 0  # keep_zero
    g = tasks[0].train[0].input
    for t in voting_transforms(12, keep_zero=False):
        assert np.array_equal(t.invert(t.grid(g)), g)
    assert Transform().is_identity


def test_packing_utilization_and_disjoint_segments(tasks):
    exs = [encode_task(t, 0, max_len=2048, loss_on="test") for t in tasks]
    exs = [e for e in exs if e is not None]
    rows = pack(exs, 2048)
    total_real = sum(r.real_tokens for r in rows)
    assert total_real == sum(len(e) for e in exs)  # nothing lost or duplicated
    assert total_real / (2048 * len(rows)) > 0.85  # few rows here; the benchmark measures the full set
    for r in rows:
        segs = r.segments[0]
        assert (np.diff(segs[segs > 0]) >= 0).all()
    bins = first_fit_decreasing([5, 3, 3, 2, 7], 8)
    assert sorted(i for b in bins for i in b) == [0, 1, 2, 3, 4] and len(bins) == 3


def _task_ids_of_rows(cfg, part, n_parts, n_rows):
    # map the examples of emitted rows back to their task ids through a deterministic re-encode
    rows = [r for r, _ in zip(iter_rows(cfg, part, n_parts), range(n_rows), strict=False)]
    return [r[0].tokens.tobytes() for r in rows]


def test_loader_parts_are_disjoint_and_deterministic(arc_shards):
    n = 4
    ids = [
        {t.id for t in read_tasks(arc_shards, splits=["training"], rank=p, world_size=n)} for p in range(n)
    ]
    assert sum(len(s) for s in ids) == 48 and len(set().union(*ids)) == 48
    cfg = DataConfig(root=str(arc_shards), seq_len=1024, batch_size=2, chunk_tasks=8, seed=3)
    a = _task_ids_of_rows(cfg, 1, 4, 6)
    assert a == _task_ids_of_rows(cfg, 1, 4, 6)  # same seed, same rows
    assert a != _task_ids_of_rows(DataConfig(**{**cfg.__dict__, "seed": 4}), 1, 4, 6)
    # two DataLoader workers on rank 1 of 2 read parts 2 and 3 of 4, alternating
    ds = PackedBatches(cfg, num_workers=2, rank=1, world_size=2)
    got = [b for b, _ in zip(DataLoader(ds, batch_size=None, num_workers=2), range(4), strict=False)]
    assert [b["worker"] for b in got] == [0, 1, 0, 1]
    direct = {
        w: [r.tokens for (r, _), _ in zip(iter_rows(cfg, 2 + w, 4), range(4), strict=False)] for w in (0, 1)
    }
    assert np.array_equal(got[0]["tokens"].numpy(), np.concatenate(direct[0][:2]))
    assert np.array_equal(got[1]["tokens"].numpy(), np.concatenate(direct[1][:2]))
    assert np.array_equal(got[2]["tokens"].numpy(), np.concatenate(direct[0][2:4]))


def test_loader_resumes_mid_epoch_at_the_same_row(arc_shards):
    cfg = DataConfig(root=str(arc_shards), seq_len=1024, batch_size=1, chunk_tasks=8, seed=1)
    stream = [(r.tokens, p) for (r, p), _ in zip(iter_rows(cfg, 0, 1), range(40), strict=False)]
    epochs = {p.epoch for _, p in stream}
    assert len(epochs) >= 2  # the stream crosses an epoch boundary
    for cut in (3, 17, 33):
        pos = stream[cut - 1][1]
        resumed = [r.tokens for (r, _), _ in zip(iter_rows(cfg, 0, 1, pos), range(5), strict=False)]
        for a, b in zip(resumed, [t for t, _ in stream[cut : cut + 5]], strict=True):
            assert np.array_equal(a, b)
    assert DataPosition(0, 2, 0).tasks_consumed(8) == 16
    assert torch.from_numpy(stream[0][0]).dtype == torch.int64


def test_chunks_mix_sources_stored_one_after_another(tmp_path):
    """Shards store one synthetic family after another (sorted ids); every chunk must still mix them."""
    from arcforge import synthetic
    from arcforge.build.shard_writer import write_shards
    from arcforge.task import tasks_to_table
    from arcforge.train.data import _chunks

    fams = ["border", "color_map", "flip", "gravity"]
    tasks = list(synthetic.generate(512, seed=0, families=fams, difficulty="easy"))
    write_shards(tasks_to_table(tasks), tmp_path, row_group_rows=32)
    stored = [synthetic.family_of(t) for t in read_tasks(tmp_path)]
    assert stored == sorted(stored)  # 128 border, then 128 color_map, ...
    cfg = DataConfig(root=str(tmp_path), chunk_tasks=32, shuffle_tasks=256, seed=0)
    chunks = list(_chunks(cfg, 0, 0, 1, 0))
    assert sum(len(c) for c in chunks) == 512
    for c in chunks:  # each chunk of 32 holds at least 3 of the 4 families, none more than 2/3 of it
        counts = synthetic.family_counts(c)
        assert len(counts) >= 3 and max(counts.values()) <= 21, counts
    assert [t.id for t in chunks[0]] != [t.id for t in next(iter(_chunks(cfg, 1, 0, 1, 0)))]  # per epoch


def test_resume_inside_a_shuffle_window(arc_shards):
    # 4 chunks per window: cut at chunks inside the first and the second window
    cfg = DataConfig(
        root=str(arc_shards), seq_len=1024, batch_size=1, chunk_tasks=4, shuffle_tasks=16, seed=2
    )
    stream = [(r.tokens, p) for (r, p), _ in zip(iter_rows(cfg, 0, 1), range(60), strict=False)]
    cuts = [i for i in range(1, 59) if stream[i - 1][1].chunk in (2, 5, 6) and stream[i - 1][1].row]
    assert cuts
    for cut in cuts[:: max(1, len(cuts) // 4)]:
        pos = stream[cut - 1][1]
        resumed = [r.tokens for (r, _), _ in zip(iter_rows(cfg, 0, 1, pos), range(3), strict=False)]
        for a, b in zip(resumed, [t for t, _ in stream[cut : cut + 3]], strict=False):
            assert np.array_equal(a, b), pos


# ------------------------------------------------------------------------------------------ frame lookups
FRAME_NUMPY = [
    lambda g: g,
    np.fliplr,
    np.flipud,
    lambda g: np.rot90(g, 2),
    lambda g: g.T,
    lambda g: np.rot90(g, 2).T,
    lambda g: np.rot90(g, 1),
    lambda g: np.rot90(g, 3),
    lambda g: np.hstack([g, np.fliplr(g)]),
    lambda g: np.vstack([g, np.flipud(g)]),
    lambda g: np.hstack([g, g]),
    lambda g: np.vstack([g, g]),
]


@pytest.mark.parametrize("shape", [(3, 5), (4, 4), (1, 7), (30, 30)])
def test_lookup_table_holds_each_frame_of_the_grid(shape):
    """Entry (f, r, c) of a grid's lookup table is what numpy's flip / rotation / transpose / mirrored or
    repeated concatenation of the grid has at 1-based (r, c) (edge frames: the part beyond the edge), and
    NO_CELL everywhere else; the tiling frame is ``np.tile`` of the grid over the whole table from (1, 1)."""
    from arcforge.train.tokenize import LOOKUP_FRAMES, NO_CELL, TABLE_SIDE, TILE_FRAME

    g = np.random.default_rng(shape[0]).integers(0, 10, shape).astype(np.int8)
    h, w = shape
    table = lookup_table(g)
    assert len(FRAME_NUMPY) + 1 == LOOKUP_FRAMES == TILE_FRAME + 1
    tiled = np.tile(g, (TABLE_SIDE // h + 1, TABLE_SIDE // w + 1))
    assert np.array_equal(table[TILE_FRAME, 1:, 1:], tiled[: TABLE_SIDE - 1, : TABLE_SIDE - 1])
    assert (table[TILE_FRAME, 0] == NO_CELL).all() and (table[TILE_FRAME, :, 0] == NO_CELL).all()
    for f, fn in enumerate(FRAME_NUMPY):
        full = fn(g)
        r0, c0 = (0, 0) if f < 8 else ((0, w) if f in (8, 10) else (h, 0))
        part = full[r0:, c0:] if f >= 8 else full
        oh, ow = part.shape
        assert np.array_equal(table[f, r0 + 1 : r0 + oh + 1, c0 + 1 : c0 + ow + 1], part), f
        assert (table[f] != NO_CELL).sum() == h * w, f


def test_the_right_frames_next_lookup_is_the_answer_and_the_decoder_assigns_the_same():
    """On a real transpose task, the transpose frame's lookup at the cell each test-output token predicts is
    exactly the token that comes next (the other frames' are not); and the decoder's positions for the
    output tokens (``output_positions``) equal the tokenizer's, so training and decoding see the same."""
    from arcforge import synthetic
    from arcforge.train.decode import output_positions
    from arcforge.train.tokenize import (
        LOOKUP_FRAMES,
        LOOKUPS,
        N_COLORS,
        encode,
        input_table,
    )

    task = next(iter(synthetic.generate(1, seed=5, families=["transpose"], difficulty="easy")))
    train = [(p.input, p.output) for p in task.train]
    t_in, t_out = task.test[0].input, task.test[0].output
    full = encode(train, t_in, t_out, loss_on="test")
    prompt_ex = encode(train, t_in, None, loss_on="test")
    n = len(prompt_ex)  # the prompt ends with the output's GRID_START; its body follows
    nxt = full.positions[:, LOOKUPS][:, LOOKUP_FRAMES:]  # [T, F]: next-cell lookups
    cells = [j for j in range(n, len(full)) if full.tokens[j] < N_COLORS]
    for f in range(LOOKUP_FRAMES):
        hits = np.mean([nxt[j - 1, f] == full.tokens[j] for j in cells])
        assert hits == 1.0 if f == 4 else hits < 1.0, (f, hits)  # frame 4: transpose
    toks, rc = grid_tokens(t_out)
    body = slice(1, len(toks) - 1 + 1)  # the body after GRID_START, GRID_END included
    decoded = output_positions(prompt_ex.positions[-1], n, rc[body], toks[body], input_table(prompt_ex))
    assert np.array_equal(decoded, full.positions[n : n + len(toks) - 1])


@pytest.mark.parametrize(("family", "frames"), [("transpose", {4}), ("flip", {1, 2}), ("rotate", {3, 6, 7})])
def test_frame_evidence_names_the_frame_of_a_geometric_task_from_earlier_pairs_only(family, frames):
    """On real generated tasks, the test pair's tokens see 100% for the frame the task uses (one of
    ``frames``: flips are left-right or up-down, rotations a quarter, half or three-quarter turn), the
    first pair's tokens see no evidence (-1), and a demonstration pair's tokens see only the pairs before."""
    from arcforge import synthetic
    from arcforge.train.tokenize import EVIDENCE, encode_task

    for task in synthetic.generate(6, seed=11, families=[family], difficulty="easy"):
        ex = encode_task(task, 0, loss_on="test")
        pair = ex.positions[:, 5]
        ev = ex.positions[:, EVIDENCE]
        test = ev[pair == pair.max()]
        assert (test == test[0]).all()  # one value for the whole test pair
        full = {f for f in range(12) if test[0, f] == 100}
        assert len(full & frames) == 1, (full, test[0].tolist())
        assert (ev[pair == 0] == -1).all()
        first = [(p.input, p.output) for p in task.train][:1]
        only_first = frame_evidence(np.stack([lookup_table(first[0][0])]), [first[0][1]])[1]
        assert (ev[pair == 1] == only_first).all()


def _reference_encode():
    """``benchmarks/bench_encode.py``'s ``reference_encode``: the tokenizer spelled out part by part."""
    spec = importlib.util.spec_from_file_location("bench_encode", ROOT / "benchmarks" / "bench_encode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.reference_encode


def test_encode_equals_the_tokenizer_spelled_out(tasks):
    """The vectorized ``encode`` (cached grid layouts, one preallocated array) equals the plain composition
    of its parts, for training examples (both loss settings), decoding prompts and a task with no
    demonstrations."""
    cases = [([(p.input, p.output) for p in t.train], t.test[0].input, t.test[0].output) for t in tasks[:12]]
    cases += [(train, test_in, None) for train, test_in, _ in cases[:6]] + [
        ([], tasks[0].test[0].input, None)
    ]
    reference = _reference_encode()
    for train, test_in, test_out in cases:
        for loss_on in ("test", "outputs"):
            ex = encode(train, test_in, test_out, loss_on=loss_on)
            tokens, positions, targets = reference(train, test_in, test_out, loss_on)
            assert np.array_equal(ex.tokens, tokens) and np.array_equal(ex.targets, targets)
            assert np.array_equal(ex.positions, positions)


def test_the_named_position_columns_tile_a_position_and_say_what_the_tokenizer_writes(tasks):
    """``POS`` names every column of a position once (the six numbers, then own lookups, next lookups and
    evidence), its wider names are the columns they say, and on generated tasks each name holds what the
    module docstring says: seq counts tokens, (row, col) is GRID_START's (0, 0) and a cell's 1-based place,
    (h, w) the size on input cells only, pair the demonstration index, the lookups the frames' colors."""
    from arcforge.train.tokenize import (
        GRID_END,
        LOOKUP_FRAMES,
        NO_CELL,
        POS,
        POS_DIMS,
        frame_lookups,
        input_table,
        next_rc,
    )

    singles = [POS.seq, POS.row, POS.col, POS.h, POS.w, POS.pair]
    cols = (
        singles
        + list(range(POS_DIMS))[POS.own]
        + list(range(POS_DIMS))[POS.next]
        + list(range(POS_DIMS))[POS.evidence]
    )
    assert cols == list(range(POS_DIMS))
    idx = np.arange(POS_DIMS)
    assert idx[POS.place].tolist() == [POS.seq, POS.row, POS.col]
    assert idx[POS.rc].tolist() == [POS.row, POS.col] and idx[POS.size].tolist() == [POS.h, POS.w]
    assert idx[POS.copied].tolist() == [POS.h, POS.w, POS.pair]
    assert idx[POS.lookups].tolist() == idx[POS.own].tolist() + idx[POS.next].tolist()
    assert len(idx[POS.own]) == len(idx[POS.evidence]) == LOOKUP_FRAMES
    for task in tasks[:6]:
        ex = encode_task(task, 0, loss_on="test")
        pos = ex.positions
        assert pos[:, POS.seq].tolist() == list(range(len(ex)))
        starts, ends = ex.tokens == GRID_START, ex.tokens == GRID_END
        assert (pos[starts][:, POS.rc] == 0).all() and (pos[ends][:, POS.col] == 0).all()
        inputs = np.flatnonzero(ex.tokens == INPUT)
        sized = pos[:, POS.h] > 0
        assert sized.sum() == sum(int(np.prod(p.input.shape)) for p in [*task.train, task.test[0]])
        assert (pos[sized][:, POS.rc] >= 1).all() and (pos[sized][:, POS.rc] <= pos[sized][:, POS.size]).all()
        assert pos[inputs, POS.pair].tolist() == list(range(len(task.train) + 1))
        test = pos[:, POS.pair] == len(task.train)
        grid = slice(inputs[-1] + 1, np.flatnonzero(test & ends)[0] + 1)  # the test input's tokens
        rc = pos[grid][:, POS.rc]
        want = frame_lookups(input_table(ex), rc, next_rc(ex.tokens[grid], rc))
        assert np.array_equal(pos[grid][:, POS.lookups], want)
        assert (pos[ex.tokens == INPUT][:, POS.own] == NO_CELL).all()
