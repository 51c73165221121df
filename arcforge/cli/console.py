"""Terminal output helpers for the CLI: one rich console, JSON printing, progress that hides itself."""

from __future__ import annotations

import json
import sys
import threading
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from arcforge.cli.logprogress import PlainProgress

console = Console()
err_console = Console(stderr=True)


def print_json(data: Any) -> None:
    """Write JSON to stdout (plain, so it pipes into jq)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    sys.stdout.flush()


def color_enabled() -> bool:
    """ANSI colors on stdout: only on a terminal, never with NO_COLOR set or TERM=dumb (rich's rules)."""
    return console.is_terminal and not console.no_color and not console.is_dumb_terminal


def progress_enabled(json_output: bool = False) -> bool:
    """Progress bars only on an interactive terminal, never with --json."""
    return not json_output and err_console.is_terminal


def make_progress(*, bytes_mode: bool = False, enabled: bool = True) -> Progress:
    """A rich Progress on stderr; ``disable=True`` when not a TTY so nothing is printed."""
    cols = [TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn()]
    cols += [DownloadColumn(), TransferSpeedColumn()] if bytes_mode else [MofNCompleteColumn()]
    cols.append(TimeRemainingColumn())
    return Progress(*cols, console=err_console, disable=not enabled, transient=False)


class RichProgress:
    """``arcforge.progress.Progress`` on top of rich; thread-safe (rich's Progress locks internally).

    Use as a context manager. Disabled (prints nothing) when ``enabled`` is False.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._items = make_progress(enabled=enabled)
        self._bytes = make_progress(bytes_mode=True, enabled=enabled)
        self._ids: dict[str, tuple[Progress, int]] = {}
        self.enabled = enabled

    def __enter__(self) -> RichProgress:
        if self.enabled:
            from rich.console import Group
            from rich.live import Live

            self._live = Live(Group(self._bytes, self._items), console=err_console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._live.__exit__(*exc)

    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        prog = self._bytes if unit == "bytes" else self._items
        self._ids[key] = (prog, prog.add_task(description, total=total))

    def advance(self, key: str, amount: float = 1) -> None:
        if key in self._ids:
            prog, tid = self._ids[key]
            prog.advance(tid, amount)

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None:
        if key in self._ids:
            prog, tid = self._ids[key]
            prog.update(tid, completed=completed, total=total)

    def finish(self, key: str) -> None:
        if key in self._ids:
            prog, tid = self._ids[key]
            t = prog.tasks[tid] if isinstance(prog.tasks, dict) else next(x for x in prog.tasks if x.id == tid)
            prog.update(tid, completed=t.total if t.total is not None else t.completed)


class LogProgress(PlainProgress):
    """Plain log lines on stderr for runs without a terminal (CI logs, ``nohup``, pipes): PlainProgress, plus
    a timer thread that writes a line for every running bar at least every ``interval`` seconds (30 by
    default, ``ARCFORGE_LOG_SECONDS``) even while the work reports nothing. Thread-safe (fetch reports from
    several threads)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LogProgress:
        if self.interval > 0:
            self._thread = threading.Thread(target=self._tick, name="arcforge-log", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _tick(self) -> None:
        while not self._stop.wait(min(self.interval, 1.0)):
            with self._lock:
                for key in list(self._bars):
                    self._maybe(key)

    def start(self, key: str, description: str, total: float | None = None, *, unit: str = "items") -> None:
        with self._lock:
            super().start(key, description, total, unit=unit)

    def advance(self, key: str, amount: float = 1) -> None:
        with self._lock:
            super().advance(key, amount)

    def update(self, key: str, *, completed: float | None = None, total: float | None = None) -> None:
        with self._lock:
            super().update(key, completed=completed, total=total)

    def finish(self, key: str) -> None:
        with self._lock:
            super().finish(key)


def cli_progress(json_output: bool = False) -> RichProgress | LogProgress:
    """The progress a command shows: rich bars on a terminal (none with --json), plain log lines on stderr
    when it is not a terminal (with --json too: they never touch stdout)."""
    if err_console.is_terminal:
        return RichProgress(enabled=not json_output)
    return LogProgress()
