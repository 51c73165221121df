"""The training loader: shards -> tasks -> augmented examples -> packed rows -> batches.

Data is read ONLY through ``arcforge.shards.iter_batches`` (streamed record batches). Parts: under
torchrun each rank, and inside a rank each DataLoader worker, reads the disjoint part
``rank * num_workers + worker`` of ``world_size * num_workers`` (rows ``i % n_parts == part``).

Each part is an endless, deterministic stream (seed, epoch, part): every epoch reads the shards' row groups
in a permuted order, permutes windows of ``shuffle_tasks`` tasks (the stored order is sorted by source and
id, so without this a chunk would hold one source or one synthetic family) and cuts them into *chunks* of
``chunk_tasks`` tasks: a chunk is shuffled, every task gets its own augmentation (drawn from a generator
seeded by seed/epoch/part/chunk/index), every test pair becomes an example, and the chunk is packed into rows
(first-fit-decreasing) which are shuffled and emitted. The position of a stream is
``DataPosition(epoch, chunk, row)`` = the next row to emit; it is saved in checkpoints and resuming
skips ``chunk * chunk_tasks`` tasks at the Arrow level and ``row`` rows of the regenerated chunk, so a
resumed run sees exactly the rows an uninterrupted one would.

Examples longer than ``seq_len`` lose train pairs from the end (at least one is kept); if still too
long they are dropped. Both are counted (``truncated``/``dropped``) and reported by the trainer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from arcforge.errors import TrainError
from arcforge.shards import iter_batches
from arcforge.task import Task, tasks_from_batch
from arcforge.train.augment import random_transform
from arcforge.train.config import DataConfig, TrainConfig
from arcforge.train.pack import PackedRows, pack, stack
from arcforge.train.tokenize import MAX_GRID_SIDE, encode_task, example_length, grid_too_large

ARROW_BATCH = 256  # rows per Arrow record batch read from the shards


@dataclass(frozen=True)
class DataPosition:
    epoch: int = 0
    chunk: int = 0  # chunks of this epoch already fully emitted
    row: int = 0  # rows of the current chunk already emitted

    def tasks_consumed(self, chunk_tasks: int) -> int:
        return self.chunk * chunk_tasks


def _skip_tasks(batches: Iterator, n: int) -> Iterator:
    """Drop the first ``n`` rows of a record-batch stream without converting them to Tasks."""
    for b in batches:
        if n >= b.num_rows:
            n -= b.num_rows
            continue
        yield b.slice(n) if n else b
        n = 0


def window_tasks(cfg: DataConfig) -> int:
    """Tasks per shuffle window: ``shuffle_tasks`` rounded up to whole chunks (at least one chunk)."""
    return max(1, -(-cfg.shuffle_tasks // cfg.chunk_tasks)) * cfg.chunk_tasks


def _chunks(cfg: DataConfig, epoch: int, part: int, n_parts: int, skip_chunks: int) -> Iterator[list[Task]]:
    """The chunks of one epoch of one part, from chunk ``skip_chunks`` on.

    Two levels of shuffling make a chunk a fair sample of the whole dataset, whose stored order is sorted
    (by source, then id: one source, or one synthetic family, after another): the shards' row groups are
    read in an order permuted per (seed, epoch), and the part's stream is cut into windows of
    ``window_tasks`` tasks, each permuted (seed, epoch, part, window) before it is cut into chunks.
    Resuming at chunk c skips whole windows at the Arrow level and regenerates the window holding c.
    """
    win = window_tasks(cfg)
    per_win = win // cfg.chunk_tasks
    first_win, skip_in_win = divmod(skip_chunks, per_win)
    batches = iter_batches(
        Path(cfg.root),
        sources=cfg.sources,
        splits=cfg.splits,
        rank=part,
        world_size=n_parts,
        batch_size=ARROW_BATCH,
        shuffle_seed=(cfg.seed, epoch),
    )

    def emit(buf: list[Task], w: int) -> Iterator[list[Task]]:
        order = np.random.default_rng([cfg.seed, epoch, part, w, 2]).permutation(len(buf))
        shuffled = [buf[int(i)] for i in order]
        start = skip_in_win if w == first_win else 0
        for c in range(start * cfg.chunk_tasks, len(shuffled), cfg.chunk_tasks):
            yield shuffled[c : c + cfg.chunk_tasks]

    buf: list[Task] = []
    w = first_win
    for b in _skip_tasks(batches, first_win * win):
        buf.extend(tasks_from_batch(b))
        while len(buf) >= win:
            yield from emit(buf[:win], w)
            buf, w = buf[win:], w + 1
    if buf:
        yield from emit(buf, w)


@dataclass
class ChunkStats:
    examples: int = 0
    truncated: int = 0  # examples that lost train pairs to fit seq_len
    dropped: int = 0  # examples that could not fit at all
    left_out: int = 0  # tasks with a grid past the trainer's side (tokenize.grid_too_large)


def chunk_rows(
    cfg: DataConfig, tasks: list[Task], epoch: int, part: int, chunk: int, stats: ChunkStats | None = None
) -> list[PackedRows]:
    """The packed rows of one chunk (deterministic in its arguments)."""
    rng = np.random.default_rng([cfg.seed, epoch, part, chunk])
    order = rng.permutation(len(tasks))
    examples = []
    for j in order:
        task = tasks[int(j)]
        if grid_too_large(task):
            if stats is not None:
                stats.left_out += 1
            continue
        trng = np.random.default_rng([cfg.seed, epoch, part, chunk, int(j), 1])
        task = random_transform(trng, len(task.train), cfg.augment).task(task)
        for k in range(len(task.test)):
            ex = encode_task(task, k, max_len=cfg.seq_len, loss_on=cfg.loss_on)
            if stats is not None and task.test[k].output is not None:
                full = [(p.input, p.output) for p in task.train]
                if ex is None:
                    stats.dropped += 1
                elif example_length(full, task.test[k].input, task.test[k].output) > cfg.seq_len:
                    stats.truncated += 1
            if ex is not None:
                examples.append(ex)
    if stats is not None:
        stats.examples += len(examples)
    rows = pack(examples, cfg.seq_len)
    return [rows[int(i)] for i in rng.permutation(len(rows))]


def iter_rows(
    cfg: DataConfig,
    part: int,
    n_parts: int,
    start: DataPosition = DataPosition(),
    stats: ChunkStats | None = None,
) -> Iterator[tuple[PackedRows, DataPosition]]:
    """Endless stream of ``([1, L] row, position after it)`` for one part, starting at ``start``."""
    epoch, first_chunk, first_row = start.epoch, start.chunk, start.row
    while True:
        emitted = False
        for c, tasks in enumerate(_chunks(cfg, epoch, part, n_parts, first_chunk), start=first_chunk):
            rows = chunk_rows(cfg, tasks, epoch, part, c, stats)
            for r in range(first_row, len(rows)):
                emitted = True
                last = r + 1 == len(rows)
                yield rows[r], DataPosition(epoch, c + 1, 0) if last else DataPosition(epoch, c, r + 1)
            first_row = 0
        if not emitted and first_chunk == 0:
            left = (
                f" ({stats.left_out} tasks left out: a grid side past {MAX_GRID_SIDE} cells)"
                if stats is not None and stats.left_out
                else ""
            )
            raise TrainError(
                f"{cfg.root}: data part {part}/{n_parts} holds no example that fits "
                f"seq_len={cfg.seq_len}{left}",
                hint="use fewer workers/ranks or a longer --seq-len",
            )
        epoch, first_chunk, first_row = epoch + 1, 0, 0


def to_torch(rows: PackedRows) -> dict[str, torch.Tensor]:
    return {
        "tokens": torch.from_numpy(rows.tokens),
        "positions": torch.from_numpy(rows.positions),
        "targets": torch.from_numpy(rows.targets),
        "segments": torch.from_numpy(rows.segments),
    }


def dist_rank_world() -> tuple[int, int]:
    """(rank, world_size) from torch.distributed when initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class PackedBatches(IterableDataset):
    """Endless batches ``{"tokens" [B,L], "positions" [B,L,3], "targets" [B,L], "segments" [B,L],
    "worker": int, "position": (epoch, chunk, row), "stats": (examples, truncated, dropped, left_out)}``.

    Use with ``DataLoader(ds, batch_size=None, num_workers=W)``; pass the same ``num_workers`` here.
    ``positions`` (logical worker -> DataPosition) and ``first_worker`` come from a checkpoint: the
    DataLoader always starts at its worker 0, so worker ids are rotated so that the logical worker
    whose turn it was comes first.
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        num_workers: int = TrainConfig.num_workers,
        rank: int | None = None,
        world_size: int | None = None,
        positions: dict[int, DataPosition] | None = None,
        first_worker: int = 0,
    ) -> None:
        super().__init__()
        r, w = dist_rank_world()
        self.cfg = cfg
        self.rank = r if rank is None else rank
        self.world_size = w if world_size is None else world_size
        self.num_workers = max(1, num_workers)
        self.positions = positions or {}
        self.first_worker = first_worker

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        wid = info.id if info is not None else 0
        logical = (wid + self.first_worker) % self.num_workers
        part = self.rank * self.num_workers + logical
        n_parts = self.world_size * self.num_workers
        stats = ChunkStats()
        rows = iter_rows(self.cfg, part, n_parts, self.positions.get(logical, DataPosition()), stats)
        while True:
            got = [next(rows) for _ in range(self.cfg.batch_size)]
            batch = to_torch(stack([g[0] for g in got]))
            pos = got[-1][1]
            batch.update(
                worker=logical,
                position=(pos.epoch, pos.chunk, pos.row),
                stats=(stats.examples, stats.truncated, stats.dropped, stats.left_out),
            )
            yield batch
