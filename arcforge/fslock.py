"""Inter-process locks and "is that process still alive" checks for arcforge's own folders and files.

``locked(path)`` holds an exclusive ``flock`` on ``path`` (a file it creates, or an existing folder) for
the duration of a ``with`` block (``exclusive`` tries once, without waiting): it serialises read-modify-write
of shared files (the home ``digests.lock``) and the short swap/recovery steps of ``build`` and ``fetch``
between processes. The OS drops the lock when the process dies, so a killed holder never blocks the next run.

Leftover working folders carry the id of the process that made them (``...-<pid>``); ``pid_alive`` tells
whether that process still runs, so a leftover is only touched once its owner is gone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - non-POSIX: no inter-process locking available
    fcntl = None  # type: ignore[assignment]


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created empty if missing; a folder is locked as is)."""
    path = Path(path)
    if path.is_dir():
        fd = os.open(path, os.O_RDONLY)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
            except OSError as e:  # a file system without locks (some network mounts): go on unlocked
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
        yield
    finally:
        os.close(fd)  # closing releases the flock


@contextlib.contextmanager
def exclusive(folder: Path) -> Iterator[bool]:
    """Try to hold an exclusive lock on ``folder`` (which must exist) without waiting: yields True while
    held, False at once when another process holds it. The one-writer lock of a run folder: held for a
    whole run, dropped by the OS when the process dies."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        got = True
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                got = False
            except OSError as e:  # a file system without locks: go on unlocked, as ``locked`` does
                if e.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
        yield got
    finally:
        os.close(fd)


def pid_alive(pid: int) -> bool:
    """True if a process with this id runs (ours included); unknown -> True (leave its files alone)."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists but belongs to someone else
        return True
    return True


def owner_pid(name: str, pattern: re.Pattern[str]) -> int | None:
    """The pid in a working folder's name, read by ``pattern``'s ``pid`` group; None if it does not match."""
    m = pattern.fullmatch(name)
    return int(m.group("pid")) if m else None


def abandoned(pid: int | None) -> bool:
    """True when the process that made a working folder is gone (an unknown owner counts as gone)."""
    return pid is None or (pid != os.getpid() and not pid_alive(pid))
