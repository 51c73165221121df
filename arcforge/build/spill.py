"""Parsed tasks on disk instead of in memory: one Arrow IPC file per source, read back memory-mapped.

The build streams each source's tasks into a ``SpillWriter`` as they are parsed, so the memory a build
needs does not grow with the dataset: what stays resident are file-backed pages the kernel can drop.

Layout is canonical: record batches of exactly ``BATCH_ROWS`` rows (the last one shorter), each one
contiguous, whatever the sizes of the pieces written. Every later step (dedup, byte counts in the card,
shard writing) sees the same chunking for the same rows, which is what keeps a build's output
byte-identical whatever the number of workers that produced the pieces.

A build that is killed (SIGKILL, a power cut) cannot remove its spill folder; ``spill_dir()`` names each
folder after the process that made it, and ``recover()`` (run by the next build) removes the folders and
unfinished files whose process is gone, as ``arcforge.sources.staging.recover`` does for fetches.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from pathlib import Path

import pyarrow as pa

from arcforge import fslock, paths
from arcforge.task import TASK_SCHEMA

_EMPTY = pa.RecordBatch.from_pylist([], schema=TASK_SCHEMA)
BATCH_ROWS = 8192  # rows per record batch: a few MB of grids, the unit every later step streams over


class SpillWriter:
    """Append tables of ``TASK_SCHEMA`` rows; ``close()`` publishes the file atomically (temp + rename)."""

    def __init__(self, path: Path, *, batch_rows: int = BATCH_ROWS) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f"{self.path.name}.tmp-{os.getpid()}")
        self._sink = pa.OSFile(str(self._tmp), "wb")
        self._writer = pa.ipc.new_file(self._sink, TASK_SCHEMA)
        self._batch_rows = batch_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if not table.num_rows:
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        if self._pending_rows >= self._batch_rows:
            self._flush(final=False)

    def _flush(self, *, final: bool) -> None:
        table = pa.concat_tables(self._pending) if len(self._pending) > 1 else self._pending[0]
        start = 0
        while table.num_rows - start >= self._batch_rows or (final and start < table.num_rows):
            n = min(self._batch_rows, table.num_rows - start)
            # Concatenating with an empty batch builds fresh, exactly sized buffers (a slice would carry its
            # parent's buffers and offsets into the file); the same bytes as take(), several times faster.
            part = pa.Table.from_batches([*table.slice(start, n).to_batches(), _EMPTY], schema=TASK_SCHEMA)
            self._writer.write_batch(part.combine_chunks().to_batches()[0])
            self.rows += n
            start += n
        rest = table.slice(start)
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> None:
        """Write what is pending and move the file into place."""
        if self._pending:
            self._flush(final=True)
        self._writer.close()
        self._sink.close()
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the unfinished file (an error or Ctrl-C while parsing)."""
        try:
            self._writer.close()
            self._sink.close()
        except (OSError, pa.ArrowException):
            pass
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> SpillWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def read_spill(path: Path) -> pa.Table:
    """The rows of a spill file, memory-mapped (nothing is copied into memory until it is used)."""
    with pa.memory_map(str(path)) as src:
        return pa.ipc.open_file(src).read_all()


# --- working folders and their leftovers --------------------------------------------------------------------
_DIR_RE = re.compile(r"build-(?P<pid>\d+)-\w+")  # a spill folder: build-<pid>-<random>
_TMP_RE = re.compile(r".+\.tmp-(?P<pid>\d+)")  # a file being written: <name>.tmp-<pid> (spill, cache)
LEGACY_AGE_S = 24 * 3600  # a spill folder without a pid in its name (older arcforge) is removed this old


def spill_dir() -> Path:
    """A new spill folder in ``ARCFORGE_HOME/tmp`` that names this process (``build-<pid>-<random>``)."""
    return Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=paths.tmp_dir()))


def recover(cache_dir: Path | None = None) -> list[str]:
    """Remove the spill folders in ``ARCFORGE_HOME/tmp`` and the unfinished ``*.tmp-<pid>`` files in
    ``cache_dir`` left by builds whose process is gone. A running build's files (its process is alive)
    and anything arcforge did not name are left alone. Returns what was removed (names only)."""
    done: list[str] = []
    tmp = paths.home() / "tmp"
    if tmp.is_dir():
        with fslock.locked(tmp):  # the same lock as fetch's recovery: one cleaner at a time
            for d in sorted(tmp.iterdir()):
                if not d.name.startswith("build-") or not d.is_dir() or d.is_symlink():
                    continue
                if _spill_gone(d):
                    shutil.rmtree(d, ignore_errors=True)
                    done.append(d.name)
    if cache_dir is not None and cache_dir.is_dir():
        done += _remove_unfinished(cache_dir)
    return done


def _spill_gone(d: Path) -> bool:
    """Whether a spill folder's build is gone: its process ended, or (no pid in the name: an older
    arcforge's) it is older than ``LEGACY_AGE_S``."""
    pid = fslock.owner_pid(d.name, _DIR_RE)
    if pid is not None:
        return fslock.abandoned(pid)
    try:
        return time.time() - d.stat().st_mtime > LEGACY_AGE_S
    except OSError:
        return False


def _remove_unfinished(cache_dir: Path) -> list[str]:
    """Remove the ``*.tmp-<pid>`` files in ``cache_dir`` whose process is gone; their names."""
    done = []
    for f in sorted(cache_dir.iterdir()):
        pid = fslock.owner_pid(f.name, _TMP_RE)
        if pid is not None and f.is_file() and not f.is_symlink() and fslock.abandoned(pid):
            f.unlink(missing_ok=True)
            done.append(f.name)
    return done
