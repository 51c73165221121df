"""The build's worker pool: run a function over work items in other processes, results in input order.

``WorkerPool(n)`` with ``n == 1`` runs everything in this process (no pool, same code path), so a serial
build and a parallel one execute the same functions on the same items; the output cannot depend on the
worker count as long as the caller merges results in order (``imap`` guarantees that order).

At most ``window`` items are in flight, so memory stays bounded by a few results whatever the input size.
Workers ignore Ctrl-C: the parent gets the ``KeyboardInterrupt``, cancels the queued chunks, waits for the
ones in progress (small by design) and re-raises, so the build's own cleanup (keep the previous output)
runs once, in one place. Any error in a worker is re-raised
in the parent as itself (typed ``ArcforgeError``s stay typed).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import TypeVar

from arcforge.errors import BuildError

T = TypeVar("T")
R = TypeVar("R")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask: honours taskset, cgroups cpusets, CI limits)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0 -> every available CPU; a negative count is a usage error."""
    if workers is None or workers == 0:
        return available_cpus()
    if workers < 0:
        raise BuildError(f"--workers {workers} must be at least 1 (0 = every available CPU)")
    return workers


def _init_worker(parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker once its parent is gone (killed without a chance to stop the pool): an orphan
    would otherwise wait for work forever."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _context() -> mp.context.BaseContext:
    # fork: workers start in milliseconds and inherit the registered formats (plug-ins included).
    methods = mp.get_all_start_methods()
    return mp.get_context("fork" if "fork" in methods else "spawn")


def forks() -> bool:
    """True when workers start by ``fork`` (they inherit the parent's memory, memory-mapped tables too)."""
    return _context().get_start_method() == "fork"


class WorkerPool:
    """A lazily started process pool shared by every stage of one build (see the module docstring)."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = resolve_workers(workers)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Workers start with Ctrl-C blocked and then ignore it, so a Ctrl-C that comes while they start
            # cannot break one half-way; the parent alone handles it.
            old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                self._pool = ProcessPoolExecutor(
                    self.workers, mp_context=_context(), initializer=_init_worker, initargs=(os.getpid(),)
                )
                self._pool.submit(int).result()  # start the workers now, while Ctrl-C is blocked
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, old)
        return self._pool

    def imap(self, fn: Callable[[T], R], items: Iterable[T], *, window: int | None = None) -> Iterator[R]:
        """``map(fn, items)`` over the workers, yielding results in input order, ``window`` in flight."""
        if self.workers <= 1:
            yield from map(fn, items)
            return
        window = window or 2 * self.workers
        pool = self._executor()
        pending: deque[Future] = deque()
        it = iter(items)
        try:
            for item in it:
                pending.append(pool.submit(fn, item))
                if len(pending) >= window:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:  # an error, Ctrl-C, or the consumer stopped early: no work left running
            for f in pending:
                f.cancel()
            self.close()
            raise

    def submit(self, fn: Callable[[T], R], item: T) -> Future:
        """``fn(item)`` in a worker (or here, now, with one worker); its result from ``.result()``."""
        if self.workers <= 1:
            f: Future = Future()
            f.set_result(fn(item))
            return f
        return self._executor().submit(fn, item)

    def close(self) -> None:
        """Cancel queued work, let the chunks being worked on finish (each is small), stop the workers.

        Workers are not killed: one killed while sending its result would leave the pipe half-written,
        and the pool would wait on it forever."""
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
